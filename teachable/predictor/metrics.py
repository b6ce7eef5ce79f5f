"""Ranking metrics of a teachability predictor: does it put the teachable snapshots first?

All take the true values `y` (ELP_net) and the scores a method ranks by (higher first; ties
keep the input order, so a method with constant scores ranks in file order).

- `spearman(y, scores)`: Spearman rank correlation (`teachable.stats.spearman`).
- `ndcg_at_k(y, scores, k)`: DCG of the top k by score over the best possible DCG, with gain
  `max(y, 0)` (a negative ELP is no gain from teaching) and discount `1 / log2(rank + 1)`;
  NaN when no snapshot has a positive gain. k larger than the set is the whole set.
- `precision_at_k(y, scores, k, threshold=0)`: the share of the top k by score whose true
  value is above `threshold` (teaching there helped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from teachable.stats import spearman

__all__ = ["spearman", "ndcg_at_k", "precision_at_k", "ranking_metrics", "ranking_curve", "top_k"]


def _pair(y: ArrayLike, scores: ArrayLike, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    a, s = np.asarray(y, dtype=float), np.asarray(scores, dtype=float)
    if a.ndim != 1 or a.shape != s.shape or a.size == 0:
        raise ValueError(f"y and scores must be non-empty 1-d arrays of equal length, got {a.shape} and {s.shape}.")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    return a, s, min(k, a.size)


def top_k(scores: ArrayLike, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first; ties keep the input order."""
    s = np.asarray(scores, dtype=float)
    return np.argsort(-s, kind="stable")[:k]


def ndcg_at_k(y: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Normalised discounted cumulative gain of the top k (see the module docstring)."""
    a, s, k = _pair(y, scores, k)
    gain = np.maximum(a, 0.0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float((np.sort(gain)[::-1][:k] * discount).sum())
    if ideal <= 0:
        return math.nan
    return float((gain[top_k(s, k)] * discount).sum()) / ideal


def precision_at_k(y: ArrayLike, scores: ArrayLike, k: int, threshold: float = 0.0) -> float:
    """Share of the top k by score whose true value is above `threshold`."""
    a, s, k = _pair(y, scores, k)
    return float(np.mean(a[top_k(s, k)] > threshold))


def ranking_metrics(y: ArrayLike, scores: ArrayLike, k: int, threshold: float = 0.0) -> dict[str, float]:
    """{spearman, ndcg_at_<k>, precision_at_<k>} of one ranking."""
    return {"spearman": spearman(y, scores), f"ndcg_at_{k}": ndcg_at_k(y, scores, k),
            f"precision_at_{k}": precision_at_k(y, scores, k, threshold)}


def ranking_curve(y: ArrayLike, scores: ArrayLike, threshold: float = 0.0) -> list[dict[str, float]]:
    """NDCG@k and precision@k for k = 1 .. n."""
    n = len(np.asarray(y))
    return [{"k": k, "ndcg": ndcg_at_k(y, scores, k), "precision": precision_at_k(y, scores, k, threshold)}
            for k in range(1, n + 1)]


def mean_of(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of metric dicts, NaNs left out (NaN when all are)."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] == r[key]]
        out[key] = float(np.mean(values)) if values else math.nan
    return out
