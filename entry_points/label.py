"""Phase `label`: branched-rollout labels (U, leverage, patch gains, quadrants, depth) for the
failure snapshots of a mine run.

    mlflow run . -e label --env-manager local -P max_snapshots=200
    python -m entry_points.label --mine_run latest --teacher openai --teacher_model gpt-4.1-mini

Labels are appended to a work file flushed per snapshot; started again with the same parameters
(or with `resume_run=<run id>`), a killed run continues where it stopped, under either executor.
With `executor=ray` the snapshots' batches run on Ray actors (`ray_address=auto` for a running
cluster, empty for a local one started here); this process alone writes the work file and logs
the retried batches as `executor.retries`. Logs the label summary
(quadrant / route / profile counts, means, rollouts spent and saved, the student's contexts
asked to score and actually scored), the quadrant thresholds,
a U-vs-L_local scatter coloured by quadrant, a table of the labels, and the artifacts
`labeled_snapshots.jsonl` and `label_summary.json`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from entry_points.common import (
    PROJECT_ROOT,
    UpstreamError,
    download_artifact,
    executor_metrics,
    log_metrics,
    parse_config,
    resolve_model,
    resolve_upstream,
    resumed_work_file,
    run_cli,
    start_phase,
    work_file,
)
from teachable.executor import PolicySpec, ShopSpec, make_executor
from teachable.label.labeling import (
    LabelConfig,
    LabelSetup,
    finalize,
    label_snapshots,
    rollouts_saved_vs_fixed,
    select_snapshots,
    summarize_labels,
)
from teachable.policy.factory import BUILTIN_POLICIES
from teachable.records import Snapshot, read_jsonl, write_jsonl
from teachable.reporting.labels import label_table, quadrant_scatter

PHASE = "label"
CONFIG = LabelConfig
log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(LabelConfig, argv, __doc__)
    with start_phase(PHASE, config):
        mine = resolve_upstream("mine", config.mine_run, "mine_run")
        snapshots = read_jsonl(download_artifact(mine.run_id, "failure_snapshots.jsonl", f"mine_run={config.mine_run!r}"),
                               Snapshot)
        if not snapshots:
            raise UpstreamError(f"mine run {mine.run_id} has no snapshots; mine a rollouts run with failures first.")
        student_path = config.student if config.student in BUILTIN_POLICIES else resolve_model(config.student, "student")
        work = (resumed_work_file(PHASE, config.resume_run, "labeled_snapshots.partial.jsonl") if config.resume_run
                else work_file(PHASE, config, {"mine": mine.run_id, "student": student_path},
                               "labeled_snapshots.partial.jsonl"))
        setup = LabelSetup(shop=ShopSpec.of(config.data_dir), student=PolicySpec(student_path, config.temperature,
                                                                                     batch_size=config.policy_batch, **config.model_loading()),
                           config=config, cache_dir=str(PROJECT_ROOT / ".teachable_work" / "teacher_cache"))
        selected = select_snapshots(snapshots, config.max_snapshots, config.seed)
        with make_executor(config, setup, policies=[setup.student]) as executor:
            records, progress = label_snapshots(
                selected, config=config, work_file=work, executor=executor,
                on_batch=lambda p: mlflow.log_metric("labeled_so_far", p.labeled + p.resumed),
            )
        final, thresholds = finalize(records, config)
        summary = {**summarize_labels(final, progress), **thresholds,
                   "rollouts_saved_by_adaptive": rollouts_saved_vs_fixed(final, config.n_max),
                   **executor_metrics(executor)}
        log_metrics(summary)
        mlflow.log_figure(quadrant_scatter(final, thresholds, config.u_measure), "label_scatter.png")
        mlflow.log_table(label_table(final), artifact_file="labels_table.json")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "labeled_snapshots.jsonl"
            write_jsonl(out, final)
            (Path(tmp) / "label_summary.json").write_text(json.dumps(
                {**summary, "skipped_snapshot_ids": progress.skipped_ids}, indent=2))
            mlflow.log_artifacts(tmp)


if __name__ == "__main__":
    run_cli(main)
