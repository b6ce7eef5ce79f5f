"""Features of labeled snapshots for the teachability predictor, computed without any rollout.

`compute_features(snapshots, config)` returns one row per snapshot: the tier-1 structural
features (`teachable.features.tier1`) followed, when `config.embedder` is not `none`, by the
tier-2 text embedding of the context (`teachable.features.tier2`). The column names depend only
on the config, and `feature_fingerprint(config)` (a hash of the names and the config) tells
whether two feature tables are the same feature set: a predictor refuses features whose
fingerprint differs from the one it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from teachable.features.tier1 import TIER1_NAMES, tier1_matrix
from teachable.features.tier2 import EMBEDDERS, MINILM_DIM, context_text, embed, embedding_names
from teachable.records import LabeledSnapshot

FEATURES_VERSION = 1


@dataclass
class FeatureConfig:
    """Which features the predictor sees."""

    embedder: str = field(default="hashing", metadata={"help": "tier-2 text embedding: hashing (no dependency), minilm (sentence-transformers) or none"})
    embed_dim: int = field(default=64, metadata={"help": "buckets of the hashing embedder"})
    feature_max_steps: int = field(default=15, metadata={"help": "episode step limit the steps_left feature counts down from"})

    def __post_init__(self) -> None:
        if self.embedder not in (*EMBEDDERS, "none"):
            raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)} or none, got {self.embedder!r}.")
        if self.embedder == "hashing" and self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1 for the hashing embedder, got {self.embed_dim}.")
        if self.feature_max_steps < 1:
            raise ValueError(f"feature_max_steps must be >= 1, got {self.feature_max_steps}.")

    def to_dict(self) -> dict[str, object]:
        """The feature fields only (a phase config that extends this one keeps its own fields out)."""
        return {name: getattr(self, name) for name in FeatureConfig.__dataclass_fields__}


def feature_names(config: FeatureConfig) -> list[str]:
    """The column names of `compute_features` under `config`, in order."""
    if config.embedder == "none":
        return list(TIER1_NAMES)
    dim = MINILM_DIM if config.embedder == "minilm" else config.embed_dim
    return [*TIER1_NAMES, *embedding_names(dim)]


def feature_fingerprint(config: FeatureConfig) -> str:
    """A short hash of the feature set: version, config and column names."""
    key = json.dumps({"version": FEATURES_VERSION, "config": config.to_dict(), "names": feature_names(config)},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def compute_features(snapshots: Sequence[LabeledSnapshot], config: FeatureConfig,
                     model_path: str = "") -> pd.DataFrame:
    """One row of features per snapshot, indexed by snapshot id, columns `feature_names(config)`.

    Args:
        snapshots: labeled (or merely mined) snapshots.
        config: the feature set.
        model_path: a local model folder for the `minilm` embedder (empty: the packaged one).

    Raises:
        ValueError: no snapshots.
        ImportError: the `minilm` embedder without sentence-transformers.
    """
    if not snapshots:
        raise ValueError("no snapshots to compute features for; label snapshots first.")
    parts = [np.asarray(tier1_matrix(snapshots, config.feature_max_steps), dtype=np.float64)]
    if config.embedder != "none":
        parts.append(embed([context_text(s) for s in snapshots], config.embedder, config.embed_dim, model_path))
    index = pd.Index([s.snapshot_id for s in snapshots], name="snapshot_id")
    return pd.DataFrame(np.hstack(parts), index=index, columns=feature_names(config))
