"""Figures and tables of the H7 selection experiment (`selection_summary.csv`).

One row of the summary is one trained selection: `method` (random, entropy, predictor, oracle),
budget `K`, `seed` (empty for the deterministic methods; random has several), `failure_gain`
(success on the failure states minus the base student's), `retention_change` (the same on the
retention set: negative means forgetting), `heldout_gain` and `n_examples`.

Per method and K the seeds are summarised by their mean and standard deviation (`sd` is 0 for
a single seed). The frontier plots gain on failure states against change on the retention set:
up is more reliable, right is less forgetting; a method whose points lie up and to the right of
random's spread selects better data at that budget.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from teachable.reporting.tables import format_value, require_columns  # noqa: E402

SUMMARY_COLUMNS: tuple[str, ...] = ("method", "K", "seed", "failure_gain", "retention_change", "heldout_gain",
                                    "n_examples")
METHOD_ORDER: tuple[str, ...] = ("random", "entropy", "predictor", "oracle")
METHOD_STYLE = {"random": ("tab:gray", "o"), "entropy": ("tab:orange", "s"), "predictor": ("tab:blue", "D"),
                "oracle": ("tab:green", "*")}
VALUES: tuple[str, ...] = ("failure_gain", "retention_change", "heldout_gain")


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def aggregate_selection(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, K): `n_seeds`, the mean and sd of each gain, the mean `n_examples`.

    Returns:
        Columns method, K, n_seeds, and for each of failure_gain, retention_change and
        heldout_gain its mean, `_sd` and, for a method with one selection whose summary has
        them, the `_low` / `_high` ends of its bootstrap interval over items (else NaN); then
        n_examples. Methods in the order random, entropy, predictor, oracle (others after), K
        ascending.
    """
    require_columns(summary, SUMMARY_COLUMNS, "the selection summary (selection_summary.csv of select)")
    rows = []
    for (method, k), part in summary.groupby(["method", "K"], sort=False):
        row = {"method": method, "K": int(k), "n_seeds": len(part)}
        for col in VALUES:
            values = part[col].astype(float).to_numpy()
            row[col] = float(np.mean(values))
            row[f"{col}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            for end in ("_low", "_high"):  # a single selection's bootstrap interval over items, when logged
                one = len(part) == 1 and f"{col}{end}" in part
                row[f"{col}{end}"] = float(part[f"{col}{end}"].iloc[0]) if one else float("nan")
        row["n_examples"] = float(part["n_examples"].astype(float).mean())
        rows.append(row)
    rows.sort(key=lambda r: (_method_key(r["method"]), r["K"]))
    return pd.DataFrame(rows)


def selection_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary table of the report (same as `aggregate_selection`)."""
    return aggregate_selection(summary)


COMPARISON_INPUT = ("K", "method", "versus", "set", "n_items", "success_diff", "success_diff_low", "success_diff_high")


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """H7 head to head (`selection_comparisons.csv` of select): one row per (K, method, versus), a
    column per evaluation set holding the success difference, its interval and, where the file
    has it, the minimum detectable difference at 80% power, as text."""
    require_columns(comparisons, COMPARISON_INPUT, "the selection comparisons (selection_comparisons.csv of select)")
    with_mde = "success_diff_mde" in comparisons.columns
    frame = comparisons.assign(cell=[
        f"{format_value(r.success_diff)} [{format_value(r.success_diff_low)}, {format_value(r.success_diff_high)}]"
        + (f" MDE {format_value(r.success_diff_mde)}" if with_mde else "")
        for r in comparisons.itertuples()])
    wide = frame.pivot_table(index=["K", "method", "versus"], columns="set", values="cell", aggfunc="first", sort=False)
    wide.columns = [f"{c} (diff [95% CI]{' MDE' if with_mde else ''})" for c in wide.columns]
    pairs = list(dict.fromkeys(zip(comparisons["method"], comparisons["versus"], strict=True)))
    wide = wide.reset_index()
    order = sorted(range(len(wide)), key=lambda i: (wide.at[i, "K"], pairs.index((wide.at[i, "method"], wide.at[i, "versus"]))))
    return wide.iloc[order].reset_index(drop=True)


def _error(part: pd.DataFrame, col: str) -> np.ndarray | pd.Series | None:
    """Error bars of `col` for one method's points: one sd over seeds for several seeds, else the
    bootstrap interval over items (asymmetric) where the summary has it, else none."""
    if part["n_seeds"].max() > 1:
        return part[f"{col}_sd"]
    low, high = part[f"{col}_low"].to_numpy(float), part[f"{col}_high"].to_numpy(float)
    if np.isnan(low).all() or np.isnan(high).all():
        return None
    value = part[col].to_numpy(float)
    return np.nan_to_num(np.vstack([value - low, high - value]).clip(min=0.0))


def _legend(method: str, part: pd.DataFrame) -> str:
    if part["n_seeds"].max() > 1:
        return f"{method} (mean ± sd over {int(part['n_seeds'].max())} seeds)"
    return f"{method} (95% CI over items)" if _error(part, "failure_gain") is not None else method


def frontier_figure(summary: pd.DataFrame, title: str = "H7: reliability vs retention"):
    """Gain on failure states (y) vs change on the retention set (x): one point per method and K.

    Random is drawn at its mean over seeds with error bars of one standard deviation across
    seeds in both directions; a method with one selection per K gets its bootstrap intervals
    over items where the summary has them. Each point is labelled with its K.
    """
    agg = aggregate_selection(summary)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.axhline(0.0, color="k", lw=0.6)
    ax.axvline(0.0, color="k", lw=0.6)
    stacked: dict[tuple[float, float], int] = {}  # labels at one point are stacked, not overprinted
    for method, part in agg.groupby("method", sort=False):
        color, marker = METHOD_STYLE.get(method, ("tab:purple", "^"))
        ax.errorbar(part["retention_change"], part["failure_gain"], xerr=_error(part, "retention_change"),
                    yerr=_error(part, "failure_gain"), fmt=marker, color=color, ms=8, capsize=3, lw=1,
                    label=_legend(method, part))
        for _, r in part.iterrows():
            point = (round(float(r["retention_change"]), 9), round(float(r["failure_gain"]), 9))
            row = stacked[point] = stacked.get(point, -1) + 1
            ax.annotate(f"K={r['K']}", (r["retention_change"], r["failure_gain"]), textcoords="offset points",
                        xytext=(5, 5 + 9 * row), fontsize=8, color=color)
    ax.set_xlabel("change in retention-set success (vs base)")
    ax.set_ylabel("gain in failure-state success (vs base)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def gain_vs_k_figure(summary: pd.DataFrame):
    """Gain on failure states and change on the retention set against the budget K, one line per
    method (random: mean with one standard deviation across seeds as error bars; the others:
    their bootstrap intervals over items, where the summary has them)."""
    agg = aggregate_selection(summary)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, col, label in ((axes[0], "failure_gain", "gain in failure-state success"),
                           (axes[1], "retention_change", "change in retention-set success")):
        ax.axhline(0.0, color="k", lw=0.6)
        for method, part in agg.groupby("method", sort=False):
            color, marker = METHOD_STYLE.get(method, ("tab:purple", "^"))
            ax.errorbar(part["K"], part[col], yerr=_error(part, col), marker=marker, color=color, capsize=3,
                        label=_legend(method, part))
        ax.set_xlabel("budget K (snapshots)")
        ax.set_ylabel(f"{label} (vs base)")
        ax.set_xticks(sorted(agg["K"].unique()))
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("H7: gain vs budget")
    fig.tight_layout()
    return fig
