"""CPT patch gains: does showing a teaching text at s make the student succeed more often?

The student continues from s under the conditions `placebo` (a neutral text of similar length)
and one per format (`demo`, `contrast`, `hint`; texts in `teachable.supervision.formats`); `base`
is the student with no patch (the leverage's `policy` condition). `ELP_<fmt> = p_<fmt> -
p_placebo` with its interval; `ELP_net` is the largest. The route is the format with the largest
ELP among those that beat the placebo by a real one-sided test (Fisher's exact test, or the
Beta-posterior probability), or `none` when no format does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teachable.stats import beats, diff_interval, fisher_greater, prob_greater
from teachable.supervision.formats import FORMATS, PLACEBO

NO_ROUTE = "none"


def patch_gain_labels(counts: Mapping[str, tuple[int, int]], *, confidence: float = 0.95, test: str = "fisher",
                      alpha: float = 0.05) -> tuple[dict[str, dict[str, Any]], float | None, str]:
    """ELP per format, ELP_net and the route from branch counts (k, n) per condition.

    Returns:
        (elp, elp_net, route): elp[fmt] = {value, low, high, p_value, beats_placebo}; elp_net and
        route are None / `none` when the formats were not rolled out (no teacher advice).
    """
    if PLACEBO not in counts or not any(f in counts for f in FORMATS):
        return {}, None, NO_ROUTE
    kp, np_ = counts[PLACEBO]
    elp: dict[str, dict[str, Any]] = {}
    for fmt in FORMATS:
        if fmt not in counts:
            continue
        k, n = counts[fmt]
        value, low, high = diff_interval(k, n, kp, np_, confidence=confidence)
        p_value = fisher_greater(k, n, kp, np_) if test == "fisher" else 1.0 - prob_greater(k, n, kp, np_)
        elp[fmt] = {"value": value, "low": low, "high": high, "p_value": p_value,
                    "beats_placebo": beats(k, n, kp, np_, test=test, alpha=alpha)}
    elp_net = max(e["value"] for e in elp.values())
    winners = [f for f in elp if elp[f]["beats_placebo"]]
    route = max(winners, key=lambda f: (elp[f]["value"], -FORMATS.index(f))) if winners else NO_ROUTE
    return elp, elp_net, route
