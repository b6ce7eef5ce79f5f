"""Figures and tables of a labeled snapshot set."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from teachable.label.quadrant import QUADRANTS, u_value  # noqa: E402
from teachable.records import LabeledSnapshot  # noqa: E402
from teachable.supervision.formats import FORMATS  # noqa: E402

QUADRANT_COLORS = dict(zip(QUADRANTS, ("tab:red", "tab:orange", "tab:gray", "tab:blue"), strict=True))


def quadrant_scatter(records: Sequence[LabeledSnapshot], thresholds: dict[str, float], u_measure: str = "entropy"):
    """U vs L_local, one point per snapshot coloured by quadrant, with the split lines."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for q in QUADRANTS:
        pts = [(u_value(r.uncertainty, u_measure), r.leverage["L_local"]["value"]) for r in records if r.quadrant == q]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=14, alpha=0.7, color=QUADRANT_COLORS[q], label=f"{q} ({len(pts)})")
    ax.axvline(thresholds["u_threshold"], color="k", lw=0.8, ls="--")
    ax.axhline(thresholds["l_threshold"], color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"U ({u_measure})")
    ax.set_ylabel("L_local = p_force - p_policy")
    ax.set_title(f"Teachable moments: {len(records)} snapshots")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def label_table(records: Sequence[LabeledSnapshot]) -> pd.DataFrame:
    """One row per snapshot with its main labels (for `mlflow.log_table` and CSVs)."""
    rows = []
    for r in records:
        lev = r.leverage
        rows.append({
            "snapshot_id": r.snapshot_id, "goal_idx": r.goal_idx, "step_index": r.step_index,
            "student_action": r.student_action, "teacher_action": (r.teacher or {}).get("action"),
            "error_type": (r.teacher or {}).get("error_type"), "U": r.uncertainty.get("entropy"),
            "margin": r.uncertainty.get("margin"), "p_policy": lev.get("p_policy"), "p_force": lev.get("p_force"),
            "p_expert": lev.get("p_expert"), "L_local": lev.get("L_local", {}).get("value"),
            "L_upper": lev.get("L_upper", {}).get("value"), "ELP_net": r.elp_net, "route": r.route,
            "profile": r.profile, "quadrant": r.quadrant, "d_expert": r.d_expert, "d_force": r.d_force,
            "rollouts": r.rollouts,
        })
    return pd.DataFrame(rows)


def elp_by_quadrant(records: Sequence[LabeledSnapshot]) -> pd.DataFrame:
    """Mean ELP per quadrant and format (and of ELP_net), with the standard error and the count.

    Returns:
        One row per (quadrant, format) with a value: quadrant, format (demo, contrast, hint or
        net), n, mean, se (0 for a single snapshot).
    """
    rows = []
    for q in QUADRANTS:
        mine = [r for r in records if r.quadrant == q]
        for fmt in (*FORMATS, "net"):
            values = [float(r.elp_net) if fmt == "net" else float(r.elp[fmt]["value"]) for r in mine
                      if (r.elp_net is not None if fmt == "net" else fmt in r.elp)]
            if values:
                se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
                rows.append({"quadrant": q, "format": fmt, "n": len(values), "mean": float(np.mean(values)), "se": se})
    return pd.DataFrame(rows, columns=["quadrant", "format", "n", "mean", "se"])


def elp_figure(records: Sequence[LabeledSnapshot]):
    """Mean ELP by quadrant (groups) and format (bars, ELP_net last), with one standard error."""
    table = elp_by_quadrant(records)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    formats = (*FORMATS, "net")
    width = 0.8 / len(formats)
    for j, fmt in enumerate(formats):
        part = table[table["format"] == fmt].set_index("quadrant").reindex(list(QUADRANTS))
        ax.bar(np.arange(len(QUADRANTS)) + (j - (len(formats) - 1) / 2) * width, part["mean"], width,
               yerr=part["se"], capsize=2, label="ELP_net" if fmt == "net" else f"ELP_{fmt}")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(range(len(QUADRANTS)), list(QUADRANTS), fontsize=8)
    ax.set_ylabel("mean ELP (p_format - p_placebo)")
    ax.set_title(f"Expected learning progress by quadrant and format ({len(records)} snapshots)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
