"""Phase `evaluate`: the base student and every adapter of a matrix run (or one adapter) on
held-out goals, on the labeled failure states and on a retention set.

    mlflow run . -e evaluate --env-manager local
    python -m entry_points.evaluate --adapter models:/teachable-adapter/3

Every model meets the same items with the same seeds. Logs `eval_heldout.csv`,
`eval_failures.csv`, `eval_retention.csv`, `eval_summary.csv` (one row per model), the
quadrant x format heatmap of gains on the failure set, metrics `<set>_success/<model>`, and each
cell's eval metrics on the cell's own nested run, so the MLflow UI compares cells side by side.
Evaluating a matrix run also points `teachable-adapter@best-<quadrant>` (e.g.
`@best-Q1_highU_highL`) at the cell of each quadrant with the largest success gain on the
failure states.
With `executor=ray` the episodes of every model run in chunks on Ray actors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from entry_points.cli import ShopArgs, UpstreamError, parse_configs, run_cli
from entry_points.comparison import log_comparison
from entry_points.datasets import EVALUATION
from entry_points.lm_registry import ADAPTER_MODEL, set_best_aliases
from entry_points.runs import TrackingArgs, executor_metrics, log_metrics, start_phase
from entry_points.upstream import (
    download_artifact,
    label_run_rollouts,
    label_run_student,
    read_records,
    registered_folder,
    resolve_upstream,
)
from teachable.evaluation import EvalConfig, build_eval_sets
from teachable.names import LABELED_SNAPSHOTS, TRAINING_SUMMARY
from teachable.records import LabeledSnapshot, read_jsonl
from teachable.reporting.evaluation import gain_heatmap
from teachable.rollouts import episode_executor
from teachable.teach import BASE, best_per_quadrant, compare_to_base, policy_spec
from teachable.training.sft import META_FILE, adapter_base, check_adapter_base

PHASE = "evaluate"
log = logging.getLogger(__name__)


@dataclass
class EvaluateArgs:
    """What the `evaluate` phase compares: the adapters of a matrix run (or one adapter) with
    their base, on the failure set of a label run, on `device`."""

    matrix_run: str = field(default="latest", metadata={"help": "train_matrix run whose adapters are evaluated: latest or a run id"})
    adapter: str = field(default="", metadata={"help": "evaluate only this adapter (models:/teachable-adapter/<v> or a folder) against its base"})
    label_run: str = field(default="matrix", metadata={"help": "label run of the failure set: matrix (the matrix run's), latest or a run id"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})


CONFIG = (EvaluateArgs, ShopArgs, EvalConfig, TrackingArgs)


def adapters_of_matrix(config: EvaluateArgs) -> tuple[str, str, dict[str, dict]]:
    """(base model, label run id, {cell: summary entry}) of the matrix run."""
    up = resolve_upstream("train_matrix", config.matrix_run, "matrix_run")
    summary = json.loads(download_artifact(up.run_id, TRAINING_SUMMARY, f"matrix_run={config.matrix_run!r}")
                         .read_text())
    cells = {c: e for c, e in summary["cells"].items() if e.get("status") == "finished"}
    if not cells:
        raise UpstreamError(f"matrix run {up.run_id} has no finished cell; rerun train_matrix.")
    label_run = summary["label_run"] if config.label_run == "matrix" else config.label_run
    return summary["base_model"], label_run, cells


def adapter_folder(version: str) -> str:
    """A local copy of a registered adapter version's folder (downloaded once, see `cached_artifact`)."""
    found = MlflowClient().get_model_version(ADAPTER_MODEL, version)
    return str(registered_folder(found, f"{ADAPTER_MODEL} version {version}"))


def single_adapter(config: EvaluateArgs) -> tuple[str, str, dict[str, dict]]:
    """(base model, label run, {name: entry}) for `adapter=`."""
    if config.adapter.startswith("models:/"):
        up = resolve_upstream("train_matrix_cell", config.adapter, "adapter")
        version = MlflowClient().get_model_version(ADAPTER_MODEL, str(up.model_uri and _version(config.adapter)))
        parent = MlflowClient().get_run(up.run_id).data.tags.get("mlflow.parentRunId")
        summary = json.loads(download_artifact(parent, TRAINING_SUMMARY, f"adapter={config.adapter!r}").read_text())
        entry = {"version": str(version.version), "run_id": version.run_id}
        name = version.tags.get("cell", f"adapter_v{version.version}")
        label_run = summary["label_run"] if config.label_run == "matrix" else config.label_run
        return summary["base_model"], label_run, {name: entry}
    folder = Path(config.adapter)
    if not (folder / META_FILE).is_file():
        raise UpstreamError(f"adapter={config.adapter!r}: not an adapter folder written by train_matrix "
                            f"(no {META_FILE}); pass models:/{ADAPTER_MODEL}/<version>.")
    if config.label_run == "matrix":
        raise UpstreamError("adapter=<folder> needs label_run=latest or a run id for the failure set.")
    return adapter_base(folder), config.label_run, {folder.name: {"folder": str(folder)}}


def _version(uri: str) -> str:
    client = MlflowClient()
    name, _, rest = uri.removeprefix("models:/").partition("@")
    if rest:
        return str(client.get_model_version_by_alias(name, rest).version)
    return uri.rsplit("/", 1)[1]


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, shop_args, config, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs):
        base_model, label_ref, cells = single_adapter(args) if args.adapter else adapters_of_matrix(args)
        label_up = resolve_upstream("label", label_ref, "label_run")
        labeled = read_jsonl(read_records(label_up.run_id, LABELED_SNAPSHOTS, "label_run", EVALUATION),
                             LabeledSnapshot)
        if not Path(base_model).exists() and base_model != "smollm2":
            base_model = label_run_student(label_up.run_id)  # the recorded path was a temporary download
        rollouts = label_run_rollouts(label_up.run_id)
        shop = shop_args.load()
        sets = build_eval_sets(shop, labeled=labeled, rollouts=rollouts, config=config)
        models = {BASE: policy_spec(base_model, config, device=args.device)}
        for name, entry in cells.items():
            folder = entry.get("folder") or adapter_folder(entry["version"])
            check_adapter_base(folder, base_model)
            models[name] = policy_spec(base_model, config, device=args.device, adapter=folder)
        with episode_executor(config, shop, shop_args.data_dir, list(models.values())) as executor:
            comparison = compare_to_base(shop, models, sets, config, executor)
        log_metrics(executor_metrics(executor))
        log_comparison(comparison, cells)
        gains = comparison.gains
        if not args.adapter:
            set_best_aliases(best_per_quadrant(gains, cells), cells)
        if any("__" in name for name in cells):
            mlflow.log_figure(gain_heatmap(gains, metric="failures_success_gain"), "gain_heatmap_failures.png")


if __name__ == "__main__":
    run_cli(main)
