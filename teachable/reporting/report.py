"""The report: every figure and table of the pipeline's results, from the frames the phases wrote.

`write_report` takes what is available (`ReportInputs`: any part may be missing) and writes

- `figures/<name>.png|pdf`: `quadrant_scatter` (U vs L_local), `elp_by_quadrant` (ELP by
  quadrant and format), `matrix_heatmap` (gain on failure states per quadrant x format cell),
  `ranking_curves` (the predictor's NDCG@k / precision@k against the baselines),
  `h7_frontier` (gain on failure states vs change on retention, per method and K) and
  `h7_gain_vs_k`;
- `tables/<name>.csv|md|tex`: `label_summary` (ELP by quadrant and format), `training_matrix`,
  `eval_summary`, `recovery_summary`, `predictor_metrics` and `selection_summary`.

Each figure and table needs one phase's output; one whose input is missing is left out and
the reason is returned, so a partial pipeline still gets a report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from teachable.records import LabeledSnapshot
from teachable.reporting.evaluation import eval_table, gain_heatmap, matrix_table, parse_cell
from teachable.reporting.labels import elp_by_quadrant, elp_figure, quadrant_scatter
from teachable.reporting.predictor import predictor_table, ranking_curves_figure
from teachable.reporting.selection import (
    comparison_table,
    frontier_figure,
    gain_vs_k_figure,
    selection_table,
)
from teachable.reporting.tables import TABLE_FORMATS, write_table

log = logging.getLogger(__name__)
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
SKIP = "none"


@dataclass
class ReportConfig:
    """The formats of the report (the `report` phase: figures and tables from the runs of the other phases)."""

    figure_formats: str = field(default="png,pdf", metadata={"help": f"comma-separated figure formats ({', '.join(FIGURE_FORMATS)})"})
    table_formats: str = field(default="csv,md,tex", metadata={"help": f"comma-separated table formats ({', '.join(TABLE_FORMATS)})"})

    def __post_init__(self) -> None:
        for name, allowed in (("figure_formats", FIGURE_FORMATS), ("table_formats", TABLE_FORMATS)):
            chosen = split_list(getattr(self, name))
            unknown = [f for f in chosen if f not in allowed]
            if unknown or not chosen:
                raise ValueError(f"{name}={getattr(self, name)!r}: use a comma-separated subset of {', '.join(allowed)}.")


def split_list(text: str) -> list[str]:
    """`"a, b,,c"` -> `["a", "b", "c"]`."""
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class ReportInputs:
    """What the phases wrote; None where a phase is left out.

    Attributes:
        labeled: the label run's snapshots; `thresholds` its u_threshold / l_threshold and
            `u_measure` its U measure.
        training_summary: the train_matrix run's `training_summary.json`.
        eval_summary: the evaluate run's `eval_summary.csv`.
        recovery_summary: the recovery run's `eval_summary.csv` (base and recovery adapter).
        predictor_metrics, ranking_curves: the train_predictor run's CSVs.
        selection_summary: the select run's `selection_summary.csv`.
        selection_comparisons: its `selection_comparisons.csv` (None from a run that has none).
    """

    labeled: Sequence[LabeledSnapshot] | None = None
    thresholds: dict[str, float] | None = None
    u_measure: str = "entropy"
    training_summary: dict[str, Any] | None = None
    eval_summary: pd.DataFrame | None = None
    recovery_summary: pd.DataFrame | None = None
    predictor_metrics: pd.DataFrame | None = None
    ranking_curves: pd.DataFrame | None = None
    selection_summary: pd.DataFrame | None = None
    selection_comparisons: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    """The files written (relative to the report folder) and why anything was left out."""

    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def write_report(inputs: ReportInputs, out_dir: str | Path, *, figure_formats: Sequence[str] = ("png", "pdf"),
                 table_formats: Sequence[str] = TABLE_FORMATS) -> ReportResult:
    """Write every figure and table whose inputs are present into `out_dir/figures` and `out_dir/tables`."""
    out = Path(out_dir)
    result = ReportResult()

    def figure(name: str, fig) -> None:
        mark_empty_panels(fig)
        (out / "figures").mkdir(parents=True, exist_ok=True)
        for fmt in figure_formats:
            fig.savefig(out / "figures" / f"{name}.{fmt}", dpi=150)
            result.figures.append(f"figures/{name}.{fmt}")
        plt.close(fig)

    def table(name: str, frame: pd.DataFrame) -> None:
        for path in write_table(frame, out / "tables", name, formats=table_formats):
            result.tables.append(f"tables/{path.name}")

    if inputs.labeled:
        if inputs.thresholds is None:
            raise ValueError("the labeled snapshots come without their quadrant thresholds (u_threshold, l_threshold).")
        figure("quadrant_scatter", quadrant_scatter(inputs.labeled, inputs.thresholds, inputs.u_measure))
        figure("elp_by_quadrant", elp_figure(inputs.labeled))
        table("label_summary", elp_by_quadrant(inputs.labeled))
    else:
        result.skipped["labels"] = "no label run (quadrant scatter, ELP by quadrant and format)"
    if inputs.training_summary is not None:
        table("training_matrix", matrix_table(inputs.training_summary))
    else:
        result.skipped["training_matrix"] = "no train_matrix run"
    if inputs.eval_summary is not None:
        table("eval_summary", eval_table(inputs.eval_summary))
        if any(parse_cell(str(m)) for m in inputs.eval_summary["model"]):
            figure("matrix_heatmap", gain_heatmap(inputs.eval_summary, metric="failures_success_gain",
                                                  title="gain in failure-state success vs the base student"))
    else:
        result.skipped["eval_summary"] = "no evaluate run (eval summary, matrix heatmap)"
    if inputs.recovery_summary is not None:
        table("recovery_summary", eval_table(inputs.recovery_summary))
    else:
        result.skipped["recovery_summary"] = "no recovery run"
    if inputs.ranking_curves is not None:
        figure("ranking_curves", ranking_curves_figure(inputs.ranking_curves))
    if inputs.predictor_metrics is not None:
        table("predictor_metrics", predictor_table(inputs.predictor_metrics))
    if inputs.ranking_curves is None and inputs.predictor_metrics is None:
        result.skipped["predictor"] = "no train_predictor run (ranking curves, predictor metrics)"
    if inputs.selection_summary is not None:
        figure("h7_frontier", frontier_figure(inputs.selection_summary))
        figure("h7_gain_vs_k", gain_vs_k_figure(inputs.selection_summary))
        table("selection_summary", selection_table(inputs.selection_summary))
        if inputs.selection_comparisons is not None and len(inputs.selection_comparisons):
            table("selection_comparisons", comparison_table(inputs.selection_comparisons))
    else:
        result.skipped["selection"] = "no select run (H7 frontier, gain vs K, selection summary)"
    for what, why in result.skipped.items():
        log.info("report: %s left out: %s", what, why)
    write_notes(out, inputs.warnings, result)
    return result


def write_notes(out: Path, warnings: Sequence[str], result: ReportResult) -> None:
    """`report.md`: the warnings the results must be read with (a student outside its competence
    band, a pipeline that went on past the gate), what was left out, and the files."""
    lines = ["# Report", ""]
    if warnings:
        lines += ["## Warnings", "", *(f"- **{w}**" for w in warnings), ""]
        for w in warnings:
            log.warning("report: %s", w)
    if result.skipped:
        lines += ["## Left out", "", *(f"- {what}: {why}" for what, why in result.skipped.items()), ""]
    lines += ["## Files", "", *(f"- {f}" for f in (*result.figures, *result.tables))]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(lines) + "\n")


def mark_empty_panels(fig: Any) -> None:
    """Write "no data" across every panel of `fig` that has nothing finite to show (all NaN, or no data)."""
    import numpy as np

    for ax in fig.axes:
        values = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
        values += [np.asarray(c.get_offsets(), dtype=float).ravel() for c in ax.collections
                   if hasattr(c, "get_offsets")]
        values += [np.asarray([p.get_height()], dtype=float) for p in ax.patches if hasattr(p, "get_height")]
        values += [np.asarray(im.get_array(), dtype=float).ravel() for im in ax.get_images()]
        if not any(np.isfinite(v).any() for v in values if v.size):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="0.4")

