"""Phase `label`: branched-rollout labels (U, leverage, patch gains, quadrants, depth) for the
failure snapshots of a mine run.

    mlflow run . -e label --env-manager local -P max_snapshots=200
    python -m entry_points.label --mine_run latest --teacher openai --teacher_model gpt-4.1-mini

Labels are appended to a work file flushed per snapshot; started again with the same parameters
(or with `resume_run=<run id>`), a killed run continues where it stopped, under either executor.
The work key holds the mine run and the student's content (not the folder it was downloaded
to), so `student=latest`, a run id, `models:/...` and a folder all resume; a second run with
the same key stops with an error naming the run that holds the work file (see
`entry_points.workfiles`). Snapshots whose states belong to another catalogue than `data_dir`'s
are refused before any labeling.
With `executor=ray` the snapshots' batches run on Ray actors (`ray_address=auto` for a running
cluster, empty for a local one started here); this process alone writes the work file and logs
the retried batches as `executor.retries`. Logs the label summary
(quadrant / route / profile counts, means, rollouts spent and saved, the student's contexts
asked to score and actually scored), the quadrant thresholds,
a U-vs-L_local scatter coloured by quadrant, a table of the labels, and the artifacts
`labeled_snapshots.jsonl` and `label_summary.json`. With `teacher=openai` every decision asked
of the teacher is a trace of the run (one span: messages, reply, model, tokens, latency, retries,
cache hit; never the API key).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from entry_points.cli import ShopArgs, UpstreamError, parse_configs, run_cli
from entry_points.datasets import TRAINING
from entry_points.runs import PROJECT_ROOT, TrackingArgs, executor_metrics, log_metrics, start_phase
from entry_points.tracing import teacher_tracer
from entry_points.upstream import log_records, read_records, resolve_model, resolve_upstream
from entry_points.workfiles import model_identity, open_work, resumed_work_key
from teachable.executor import PolicySpec, ShopSpec, make_executor
from teachable.label.labeling import (
    LabelConfig,
    LabelSetup,
    finalize,
    foreign_catalogues,
    label_snapshots,
    rollouts_saved_vs_fixed,
    select_snapshots,
    summarize_labels,
)
from teachable.names import FAILURE_SNAPSHOTS, LABEL_SUMMARY, LABELED_SNAPSHOTS
from teachable.policy.factory import BUILTIN_POLICIES
from teachable.records import Snapshot, read_jsonl, write_jsonl
from teachable.reporting.labels import label_table, quadrant_scatter
from webshop_env.catalog import load_catalog, load_default_catalog

PHASE = "label"
WORK_NAME = "labeled_snapshots.partial.jsonl"
log = logging.getLogger(__name__)


@dataclass
class LabelArgs:
    """The runs the `label` phase reads (and the unfinished one it may continue)."""

    mine_run: str = field(default="latest", metadata={"help": "mine run: latest or a run id"})
    student: str = field(default="latest", metadata={"help": "student model: latest, a run id, models:/name@alias, a local folder or smollm2"})
    resume_run: str = field(default="", metadata={"help": "continue this unfinished label run (empty: a new run, or the unfinished run with the same parameters)"})


CONFIG = (LabelArgs, ShopArgs, LabelConfig, TrackingArgs)


def check_catalogue(snapshots: Sequence[Snapshot], mine_run_id: str, data_dir: str) -> None:
    """Fail fast when the snapshots' states belong to another catalogue than `data_dir`'s.

    Raises:
        UpstreamError: naming the snapshots' catalogue (and the data_dir they were mined on) and this one.
    """
    catalog = load_catalog(data_dir) if data_dir else load_default_catalog()
    foreign = foreign_catalogues(snapshots, catalog.content_hash)
    if not foreign:
        return
    client = MlflowClient()
    rollouts_run = client.get_run(mine_run_id).data.tags.get("upstream.rollouts")
    mined_on = client.get_run(rollouts_run).data.params.get("data_dir") if rollouts_run else None
    found = ", ".join(f"{n} of catalogue {c}" for c, n in foreign.most_common())
    raise UpstreamError(
        f"{sum(foreign.values())} of {len(snapshots)} snapshots of mine run {mine_run_id} do not restore on this "
        f"catalogue: they were mined on {_catalogue_name(mined_on)} ({found}); this run loads "
        f"{_catalogue_name(data_dir)} (catalogue {catalog.content_hash}). Pass the data_dir the snapshots were "
        "mined on, or mine snapshots on this catalogue.")


def _catalogue_name(data_dir: str | None) -> str:
    if data_dir is None:
        return "an unrecorded catalogue"
    return f"data_dir={data_dir!r}" if data_dir else "the embedded generated catalogue"


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, shop_args, config, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs), ExitStack() as stack:
        mine = resolve_upstream("mine", args.mine_run, "mine_run")
        snapshots = read_jsonl(read_records(mine.run_id, FAILURE_SNAPSHOTS, f"mine_run={args.mine_run!r}",
                                            TRAINING), Snapshot)
        if not snapshots:
            raise UpstreamError(f"mine run {mine.run_id} has no snapshots; mine a rollouts run with failures first.")
        selected = select_snapshots(snapshots, config.max_snapshots, config.seed)
        check_catalogue(selected, mine.run_id, shop_args.data_dir)
        student_path = args.student if args.student in BUILTIN_POLICIES else resolve_model(args.student, "student")
        key = resumed_work_key(PHASE, args.resume_run, WORK_NAME) if args.resume_run else None
        work = stack.enter_context(open_work(
            PHASE, configs, {"mine": mine.run_id, "student": model_identity(args.student, student_path)}, WORK_NAME,
            key=key))
        setup = LabelSetup(shop=ShopSpec.of(shop_args.data_dir), student=PolicySpec(student_path, config.temperature,
                                                                                     batch_size=config.policy_batch, **config.model_loading()),
                           config=config, cache_dir=str(PROJECT_ROOT / ".teachable_work" / "teacher_cache"),
                           on_teacher_call=teacher_tracer() if config.teacher == "openai" else None)
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
            out = Path(tmp) / LABELED_SNAPSHOTS
            write_jsonl(out, final)
            (Path(tmp) / LABEL_SUMMARY).write_text(json.dumps(
                {**summary, "skipped_snapshot_ids": progress.skipped_ids}, indent=2))
            mlflow.log_artifact(str(Path(tmp) / LABEL_SUMMARY))
            log_records(out)


if __name__ == "__main__":
    run_cli(main)
