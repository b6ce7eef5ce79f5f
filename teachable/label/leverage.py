"""Leverage: how much one intervention at a snapshot s changes the episode's outcome.

From s restored, three continuations are rolled out (by `teachable.label.branching`):

- `p_policy`: the student continues (sampled) — also the CPT `base` condition;
- `p_force`: the teacher's suggested action is forced at s, then the student continues;
- `p_expert`: the expert continues (a deterministic oracle: one rollout is exact).

`L_local = p_force - p_policy` (what the one right action is worth) and `L_upper = p_expert -
p_policy` (what full guidance from s is worth). Success is reward >= `success_threshold`.

Profiles (derived labels; thresholds are parameters):

- `dead_end`: p_expert <= dead_end_max: even the expert cannot recover from s;
- `bottleneck`: L_local >= bottleneck_min: the one right action at s recovers the episode;
- `trajectory`: L_upper >= trajectory_min but not a bottleneck: recovery needs guidance over
  several steps;
- `low_leverage`: anything else (the student does about as well alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teachable.stats import diff_interval, rate

PROFILES: tuple[str, ...] = ("dead_end", "bottleneck", "trajectory", "low_leverage")


def _difference(a: tuple[int, int], b: tuple[int, int], confidence: float, a_exact: bool = False) -> dict[str, float]:
    """a - b with its interval; when `a` is exact (deterministic), only b's uncertainty counts."""
    if a_exact:
        pa = a[0] / a[1]
        rb = rate(*b, confidence=confidence)
        return {"value": pa - rb.p, "low": pa - rb.high, "high": pa - rb.low}
    value, low, high = diff_interval(a[0], a[1], b[0], b[1], confidence=confidence)
    return {"value": value, "low": low, "high": high}


def leverage_labels(counts: Mapping[str, tuple[int, int]], confidence: float = 0.95,
                    expert_exact: bool = True) -> dict[str, Any]:
    """p_policy, p_force, p_expert, L_local and L_upper from branch counts (k, n) per condition.

    Args:
        counts: (successes, rollouts) for `policy`, `expert` and, when the teacher answered, `force`.
        confidence: interval confidence.
        expert_exact: the expert is deterministic, so its rate is known exactly.
    """
    out: dict[str, Any] = {"p_policy": counts["policy"][0] / counts["policy"][1],
                           "p_expert": counts["expert"][0] / counts["expert"][1]}
    out["L_upper"] = _difference(counts["expert"], counts["policy"], confidence, a_exact=expert_exact)
    if "force" in counts:
        out["p_force"] = counts["force"][0] / counts["force"][1]
        out["L_local"] = _difference(counts["force"], counts["policy"], confidence)
    return out


def profile_of(leverage: Mapping[str, Any], *, dead_end_max: float = 0.1, bottleneck_min: float = 0.3,
               trajectory_min: float = 0.3) -> str:
    """The leverage profile of a snapshot (see the module docstring)."""
    if leverage["p_expert"] <= dead_end_max:
        return "dead_end"
    if "L_local" in leverage and leverage["L_local"]["value"] >= bottleneck_min:
        return "bottleneck"
    if leverage["L_upper"]["value"] >= trajectory_min:
        return "trajectory"
    return "low_leverage"
