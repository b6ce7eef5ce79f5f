"""Quadrants over (U, L_local): where uncertainty and leverage are high or low.

Thresholds are the `quantile` (default the median) of U and of L_local over the labeled set;
a value strictly above its threshold is high. Snapshots without L_local (the teacher failed)
get no quadrant.

- Q1_highU_highL: unsure, and the right action would fix it — the classic teachable moment;
- Q2_highU_lowL: unsure, but one action does not fix it;
- Q3_lowU_lowL: sure, and one action does not fix it;
- Q4_lowU_highL: confidently wrong where one action would fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUADRANTS: tuple[str, ...] = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")
U_MEASURES: tuple[str, ...] = ("entropy", "entropy_norm", "margin", "topk_spread")


def thresholds(u: Sequence[float], l_local: Sequence[float], quantile: float = 0.5) -> tuple[float, float]:
    """The U and L_local thresholds at `quantile`.

    Raises:
        ValueError: no values, or a quantile outside (0, 1).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}.")
    if len(u) == 0 or len(l_local) == 0:
        raise ValueError("no labeled snapshots with both U and L_local: nothing to split into quadrants.")
    return float(np.quantile(u, quantile)), float(np.quantile(l_local, quantile))


def quadrant_of(u: float, l_local: float, u_threshold: float, l_threshold: float) -> str:
    """The quadrant of one snapshot."""
    high_u, high_l = u > u_threshold, l_local > l_threshold
    if high_u:
        return QUADRANTS[0] if high_l else QUADRANTS[1]
    return QUADRANTS[3] if high_l else QUADRANTS[2]


def u_value(uncertainty: dict[str, float], measure: str = "entropy") -> float:
    """The U measure of a snapshot; margin is inverted (1 - margin) so that higher means less sure."""
    if measure not in U_MEASURES:
        raise ValueError(f"unknown U measure {measure!r}; use one of {', '.join(U_MEASURES)}.")
    value = float(uncertainty[measure])
    return 1.0 - value if measure in ("margin", "topk_spread") else value
