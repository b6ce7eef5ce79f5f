"""Figures of an evaluation: the quadrant x format gain heatmap of the training matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from teachable.evaluation import EVAL_SETS  # noqa: E402
from teachable.label.quadrant import QUADRANTS  # noqa: E402
from teachable.supervision.formats import FORMATS  # noqa: E402


def parse_cell(model: str) -> tuple[str, str] | None:
    """(quadrant, format) of a matrix cell named `<quadrant>__<format>` (quadrant may be short: `Q1`);
    None for any other model (the base, baselines)."""
    quadrant, sep, fmt = model.partition("__")
    if not sep or fmt not in FORMATS:
        return None
    for q in QUADRANTS:
        if quadrant in (q, q.split("_")[0]):
            return q, fmt
    return None


def _metric_by_model(table: pd.DataFrame, metric: str) -> dict[str, float]:
    """model -> value of `metric` from a wide summary (a `metric` column) or long gains rows
    (a `set` column, `metric` = `<set>_<column>`)."""
    if "set" not in table.columns and metric in table.columns:
        return dict(zip(table["model"], table[metric].astype(float), strict=True))
    if "set" in table.columns:
        for name in EVAL_SETS:
            column = metric.removeprefix(f"{name}_")
            if metric.startswith(f"{name}_") and column in table.columns:
                part = table[table["set"] == name]
                return dict(zip(part["model"], part[column].astype(float), strict=True))
    raise ValueError(f"metric {metric!r} is neither a column of the table nor <set>_<column> of gains rows; "
                     f"columns: {', '.join(map(str, table.columns))}.")


def gain_matrix(summary_or_gains: pd.DataFrame | Sequence[dict[str, Any]], metric: str = "failures_success_gain"
                ) -> pd.DataFrame:
    """The quadrant (rows) x format (columns) matrix of `metric`; NaN where a cell is missing."""
    table = pd.DataFrame(summary_or_gains) if not isinstance(summary_or_gains, pd.DataFrame) else summary_or_gains
    if "model" not in table.columns:
        raise ValueError("the table needs a `model` column (rows of summary_table or gains_vs_base).")
    grid = pd.DataFrame(np.nan, index=list(QUADRANTS), columns=list(FORMATS))
    for model, value in _metric_by_model(table, metric).items():
        cell = parse_cell(str(model))
        if cell is not None:
            grid.loc[cell[0], cell[1]] = value
    return grid


def gain_heatmap(summary_or_gains: pd.DataFrame | Sequence[dict[str, Any]], *, metric: str = "failures_success_gain",
                 title: str | None = None):
    """Heatmap of the matrix cells' gains vs the base: quadrants Q1..Q4 down, demo/contrast/hint across.

    Args:
        summary_or_gains: the wide table of `summary_table` (a column `metric`) or the rows of
            `gains_vs_base` (then `metric` is `<set>_<column>`, e.g. `failures_success_gain`).
        metric: what to show.
        title: the figure title (default: the metric).

    Returns:
        A matplotlib Figure; cells with no model (or a NaN value) are left blank.
    """
    grid = gain_matrix(summary_or_gains, metric)
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    span = float(np.max(np.abs(finite))) if finite.size else 0.0
    span = span if span > 0 else 1.0
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", norm=TwoSlopeNorm(0.0, -span, span))
    for (i, j), value in np.ndenumerate(values):
        if not math.isnan(value):
            ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=9,
                    color="white" if abs(value) > 0.6 * span else "black")
    ax.set_xticks(range(len(FORMATS)), list(FORMATS))
    ax.set_yticks(range(len(QUADRANTS)), list(QUADRANTS))
    ax.set_xlabel("format")
    ax.set_ylabel("quadrant")
    ax.set_title(title or metric)
    fig.colorbar(image, ax=ax, label=f"{metric} (vs base)")
    fig.tight_layout()
    return fig


MATRIX_COLUMNS: tuple[str, ...] = ("cell", "quadrant", "format", "status", "n_examples", "n_available",
                                   "with_replacement", "train_loss", "version")


def matrix_table(training_summary: dict[str, Any]) -> pd.DataFrame:
    """One row per cell of a `train_matrix` run's `training_summary.json` (failed cells included)."""
    rows = []
    for cell, entry in training_summary.get("cells", {}).items():
        quadrant, _, fmt = cell.partition("__")
        rows.append({"cell": cell, "quadrant": quadrant if fmt else "all", "format": fmt or ("mixed" if cell == "B1_uniform"
                                                                                             else "routed"),
                     **{c: entry.get(c) for c in MATRIX_COLUMNS[3:]}})
    return pd.DataFrame(rows, columns=list(MATRIX_COLUMNS))


def eval_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The headline columns of a wide evaluation summary (`eval_summary.csv`): per set, success
    with its interval, then the gain vs the base with its interval and its minimum detectable
    effect, where present."""
    columns = ["model"]
    for name in EVAL_SETS:
        for stat in ("success", "success_low", "success_high", "success_gain", "success_gain_low",
                     "success_gain_high", "success_gain_mde"):
            if f"{name}_{stat}" in summary.columns:
                columns.append(f"{name}_{stat}")
    return summary[columns].reset_index(drop=True)
