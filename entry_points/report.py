"""Phase `report`: the figures and tables of the pipeline's runs.

    mlflow run . -e report --env-manager local
    python -m entry_points.report --select_run <run id> --train_predictor_run none

Every input is a run reference: `latest` (the newest FINISHED run of that phase), a run id, or
`none`. A phase with no run (`latest` finds none) is left out with a logged note and a tag
`report.skipped.<phase>`; a run id that does not resolve is an error. Writes the artifacts
`figures/*.png|pdf` (quadrant scatter, ELP by quadrant and format, matrix heatmap, predictor
ranking curves, H7 frontier, gain vs K) and `tables/*.csv|md|tex` (ELP by quadrant, training
matrix, eval summary, recovery summary, predictor metrics, selection summary).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError, parse_configs, run_cli
from entry_points.datasets import EVALUATION
from entry_points.runs import TrackingArgs, log_metrics, start_phase
from entry_points.upstream import (
    competence_warnings,
    download_artifact,
    read_records,
    resolve_upstream,
)
from teachable.names import (
    EVAL_SUMMARY,
    LABELED_SNAPSHOTS,
    PREDICTOR_METRICS,
    RANKING_CURVES,
    SELECTION_COMPARISONS,
    SELECTION_SUMMARY,
    TRAINING_SUMMARY,
)
from teachable.records import LabeledSnapshot, read_jsonl
from teachable.reporting.report import SKIP, ReportConfig, ReportInputs, split_list, write_report

PHASE = "report"
log = logging.getLogger(__name__)


@dataclass
class ReportArgs:
    """The runs the `report` phase reads (`none` leaves a phase out)."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest, a run id, or none (leave out)"})
    train_matrix_run: str = field(default="latest", metadata={"help": "train_matrix run: latest, a run id, or none"})
    evaluate_run: str = field(default="latest", metadata={"help": "evaluate run: latest, a run id, or none"})
    train_predictor_run: str = field(default="latest", metadata={"help": "train_predictor run: latest, a run id, or none"})
    select_run: str = field(default="latest", metadata={"help": "select run: latest, a run id, or none"})
    recovery_run: str = field(default="latest", metadata={"help": "recovery run: latest, a run id, or none"})

    def refs(self) -> dict[str, str]:
        """The run reference of each phase."""
        return {name.removesuffix("_run"): ref for name, ref in vars(self).items()}


CONFIG = (ReportArgs, ReportConfig, TrackingArgs)


def optional_run(phase: str, ref: str) -> str | None:
    """The run id of `ref`, or None when it is `none` or `latest` finds no run (noted, not an error)."""
    if ref.strip().lower() == SKIP:
        reason = f"{phase}_run=none"
    else:
        try:
            return resolve_upstream(phase, ref, f"{phase}_run").run_id
        except UpstreamError as e:
            if ref != "latest":
                raise
            reason = str(e)
    log.info("report: no %s run, its figures and tables are left out (%s)", phase, reason)
    mlflow.set_tag(f"report.skipped.{phase}", reason[:500])
    return None


def _csv(run_id: str, path: str, phase: str) -> pd.DataFrame:
    return pd.read_csv(download_artifact(run_id, path, f"{phase} run"))


def gather_inputs(config: ReportArgs) -> ReportInputs:
    """Download what each referenced run wrote."""
    runs = {phase: optional_run(phase, ref) for phase, ref in config.refs().items()}
    if not any(runs.values()):
        raise UpstreamError("nothing to report: no label, train_matrix, evaluate, train_predictor, select or recovery "
                            "run was found; run the pipeline (or one of those phases) first.")
    inputs = ReportInputs()
    if run_id := runs["label"]:
        inputs.labeled = read_jsonl(read_records(run_id, LABELED_SNAPSHOTS, "label run", EVALUATION),
                                    LabeledSnapshot)
        run = MlflowClient().get_run(run_id)
        inputs.thresholds = {k: run.data.metrics[k] for k in ("u_threshold", "l_threshold") if k in run.data.metrics}
        if len(inputs.thresholds) < 2:
            raise UpstreamError(f"label run {run_id} has no u_threshold / l_threshold metrics; rerun label.")
        inputs.u_measure = run.data.params.get("u_measure", "entropy")
        inputs.warnings += competence_warnings(run)
    if run_id := runs["train_matrix"]:
        inputs.training_summary = json.loads(download_artifact(run_id, TRAINING_SUMMARY, "train_matrix run")
                                             .read_text())
    if run_id := runs["evaluate"]:
        inputs.eval_summary = _csv(run_id, EVAL_SUMMARY, "evaluate")
    if run_id := runs["recovery"]:
        inputs.recovery_summary = _csv(run_id, EVAL_SUMMARY, "recovery")
    if run_id := runs["train_predictor"]:
        inputs.predictor_metrics = _csv(run_id, PREDICTOR_METRICS, "train_predictor")
        inputs.ranking_curves = _csv(run_id, RANKING_CURVES, "train_predictor")
    if run_id := runs["select"]:
        inputs.selection_summary = _csv(run_id, SELECTION_SUMMARY, "select")
        try:
            inputs.selection_comparisons = _csv(run_id, SELECTION_COMPARISONS, "select")
        except UpstreamError:
            log.info("select run %s has no selection_comparisons.csv (an earlier version); left out", run_id)
    return inputs


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, config, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs), tempfile.TemporaryDirectory() as tmp:
        inputs = gather_inputs(args)
        result = write_report(inputs, tmp, figure_formats=split_list(config.figure_formats),
                              table_formats=split_list(config.table_formats))
        log_metrics({"n_figures": len(result.figures), "n_tables": len(result.tables)})
        mlflow.set_tags({f"report.left_out.{what}": why for what, why in result.skipped.items()})
        if inputs.warnings:
            mlflow.set_tag("report.warnings", " | ".join(inputs.warnings)[:5000])
        mlflow.log_artifacts(tmp)


if __name__ == "__main__":
    run_cli(main)
