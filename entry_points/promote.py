"""Phase `promote`: move the `@champion` alias of the registered teachability predictor.

    mlflow run . -e promote --env-manager local                 # the challenger, if it is better
    mlflow run . -e promote --env-manager local -P version=3    # version 3, unconditionally

Without a version, the `@challenger` (set by `train_predictor`) becomes `@champion` when there
is no champion yet or when its validation NDCG@k (model version tag `validation_ndcg`) is higher
than the champion's; otherwise nothing changes. Logs `promoted` (1 or 0) and the versions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from entry_points.common import UpstreamError, log_metrics, parse_config, run_cli, start_phase
from entry_points.predictor_registry import (
    K_TAG,
    PREDICTOR_MODEL,
    VALIDATION_TAG,
    predictor_version,
)

PHASE = "promote"
log = logging.getLogger(__name__)


@dataclass
class PromoteConfig:
    """The `promote` phase."""

    version: str = field(default="", metadata={"help": "version to make champion (empty: the challenger, if it beats the champion)"})
    challenger: str = field(default="challenger", metadata={"help": "alias of the candidate when no version is given"})
    alias: str = field(default="champion", metadata={"help": "the alias to move"})

    def __post_init__(self) -> None:
        if self.version and not self.version.isdigit():
            raise ValueError(f"version must be a version number such as 3 (or empty), got {self.version!r}.")


CONFIG = PromoteConfig


def _ndcg(version) -> float:
    try:
        return float(version.tags.get(VALIDATION_TAG, "nan"))
    except ValueError:
        return math.nan


def decide(candidate_ndcg: float, champion_ndcg: float | None) -> bool:
    """Promote when there is no champion, or the candidate's NDCG is strictly higher.

    Raises:
        UpstreamError: the candidate's NDCG is NaN: there is nothing to compare, so it is refused.
    """
    if candidate_ndcg != candidate_ndcg:
        raise UpstreamError(
            "the challenger's validation NDCG is NaN (no validation snapshot has a positive ELP_net, so its ranking "
            "was never measured): it is not promoted. Label more snapshots, or a student in its competence band, and "
            "train the predictor again; or promote a version explicitly with version=<n>.")
    if champion_ndcg is None:
        return True
    return champion_ndcg != champion_ndcg or candidate_ndcg > champion_ndcg


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(PromoteConfig, argv, __doc__)
    with start_phase(PHASE, config):
        ref = f"models:/{PREDICTOR_MODEL}/{config.version}" if config.version else \
            f"models:/{PREDICTOR_MODEL}@{config.challenger}"
        candidate = predictor_version(ref, "version" if config.version else "challenger")
        try:
            champion = predictor_version(f"models:/{PREDICTOR_MODEL}@{config.alias}", "alias")
        except UpstreamError:
            champion = None
        if config.version:
            promote = True
        else:
            if champion and champion.tags.get(K_TAG) != candidate.tags.get(K_TAG):
                log.warning("the champion's NDCG is at k=%s, the challenger's at k=%s: compared all the same",
                            champion.tags.get(K_TAG), candidate.tags.get(K_TAG))
            promote = decide(_ndcg(candidate), _ndcg(champion) if champion else None)
        if promote:
            MlflowClient().set_registered_model_alias(PREDICTOR_MODEL, config.alias, candidate.version)
        metrics = {"promoted": int(promote), "candidate_version": int(candidate.version),
                   "candidate_validation_ndcg": _ndcg(candidate)}
        if champion:
            metrics.update(previous_champion_version=int(champion.version),
                           previous_champion_validation_ndcg=_ndcg(champion))
        log_metrics(metrics)
        log.info("%s version %s %s @%s", PREDICTOR_MODEL, candidate.version,
                 "is now" if promote else "does not beat the current", config.alias)


if __name__ == "__main__":
    run_cli(main)
