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
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from entry_points.common import (
    UpstreamError,
    download_artifact,
    executor_metrics,
    label_run_rollouts,
    label_run_student,
    log_metrics,
    parse_config,
    read_records,
    registered_folder,
    resolve_upstream,
    run_cli,
    start_phase,
)
from entry_points.datasets import EVALUATION
from entry_points.lm_registry import ADAPTER_MODEL, BEST_ALIAS_PREFIX, set_alias
from teachable.evaluation import (
    EvaluateConfig,
    build_eval_sets,
    check_adapter_base,
    evaluate_policy,
    gains_vs_base,
    summarize_eval,
    write_eval_csvs,
)
from teachable.executor import PolicySpec
from teachable.records import LabeledSnapshot, read_jsonl
from teachable.reporting.evaluation import gain_heatmap
from teachable.rollouts import episode_executor
from webshop_env.env import Shop

PHASE = "evaluate"
CONFIG = EvaluateConfig
BASE = "base"
log = logging.getLogger(__name__)


def adapters_of_matrix(config: EvaluateConfig) -> tuple[str, str, dict[str, dict]]:
    """(base model, label run id, {cell: summary entry}) of the matrix run."""
    up = resolve_upstream("train_matrix", config.matrix_run, "matrix_run")
    summary = json.loads(download_artifact(up.run_id, "training_summary.json", f"matrix_run={config.matrix_run!r}")
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


def single_adapter(config: EvaluateConfig) -> tuple[str, str, dict[str, dict]]:
    """(base model, label run, {name: entry}) for `adapter=`."""
    if config.adapter.startswith("models:/"):
        up = resolve_upstream("train_matrix_cell", config.adapter, "adapter")
        version = MlflowClient().get_model_version(ADAPTER_MODEL, str(up.model_uri and _version(config.adapter)))
        parent = MlflowClient().get_run(up.run_id).data.tags.get("mlflow.parentRunId")
        summary = json.loads(download_artifact(parent, "training_summary.json", f"adapter={config.adapter!r}").read_text())
        entry = {"version": str(version.version), "run_id": version.run_id}
        name = version.tags.get("cell", f"adapter_v{version.version}")
        label_run = summary["label_run"] if config.label_run == "matrix" else config.label_run
        return summary["base_model"], label_run, {name: entry}
    folder = Path(config.adapter)
    meta = folder / "base_model.json"
    if not meta.is_file():
        raise UpstreamError(f"adapter={config.adapter!r}: not an adapter folder written by train_matrix "
                            "(no base_model.json); pass models:/{ADAPTER_MODEL}/<version>.")
    if config.label_run == "matrix":
        raise UpstreamError("adapter=<folder> needs label_run=latest or a run id for the failure set.")
    return json.loads(meta.read_text())["base_model"], config.label_run, {folder.name: {"folder": str(folder)}}


def _version(uri: str) -> str:
    client = MlflowClient()
    name, _, rest = uri.removeprefix("models:/").partition("@")
    if rest:
        return str(client.get_model_version_by_alias(name, rest).version)
    return uri.rsplit("/", 1)[1]


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(EvaluateConfig, argv, __doc__)
    with start_phase(PHASE, config):
        base_model, label_ref, cells = single_adapter(config) if config.adapter else adapters_of_matrix(config)
        label_up = resolve_upstream("label", label_ref, "label_run")
        labeled = read_jsonl(read_records(label_up.run_id, "labeled_snapshots.jsonl", "label_run", EVALUATION),
                             LabeledSnapshot)
        if not Path(base_model).exists() and base_model != "smollm2":
            base_model = label_run_student(label_up.run_id)  # the recorded path was a temporary download
        rollouts = label_run_rollouts(label_up.run_id)
        shop = Shop.load(config.data_dir or None)
        sets = build_eval_sets(shop, labeled=labeled, rollouts=rollouts, config=config)
        device = config.device or None
        models = {BASE: PolicySpec(base_model, config.temperature, device=device, batch_size=config.policy_batch, **config.model_loading())}
        for name, entry in cells.items():
            folder = entry.get("folder") or adapter_folder(entry["version"])
            check_adapter_base(folder, base_model)
            models[name] = PolicySpec(base_model, config.temperature, adapter=folder, device=device,
                                      batch_size=config.policy_batch, **config.model_loading())
        with episode_executor(config, shop, config.data_dir, list(models.values())) as executor:
            rows = [row for name, spec in models.items()
                    for row in evaluate_policy(shop, spec, sets, config, name=name, executor=executor, progress=True)]
        log_metrics(executor_metrics(executor))
        summary = summarize_eval(rows, config)
        gains = gains_vs_base(summary, BASE, rows=rows, config=config)
        log_results(summary, gains, cells)
        if not config.adapter:
            set_best_aliases(gains, cells)
        with tempfile.TemporaryDirectory() as tmp:
            write_eval_csvs(rows, summary, tmp, gains=gains)
            mlflow.log_artifacts(tmp)
        if any("__" in name for name in cells):
            mlflow.log_figure(gain_heatmap(gains, metric="failures_success_gain"), "gain_heatmap_failures.png")


def best_per_quadrant(gains: list[dict], cells: dict[str, dict]) -> dict[str, tuple[str, float]]:
    """{quadrant: (cell, failure-set success gain)} of the cell with the largest gain on the
    failure states in each quadrant (cells without a measured gain are left out; a tie goes to
    the first cell in name order)."""
    best: dict[str, tuple[str, float]] = {}
    for g in sorted(gains, key=lambda g: g["model"]):
        quadrant = cells.get(g["model"], {}).get("quadrant")
        gain = g["success_gain"]
        if g["set"] != "failures" or not quadrant or gain != gain:
            continue
        if quadrant not in best or gain > best[quadrant][1]:
            best[quadrant] = (g["model"], gain)
    return best


def set_best_aliases(gains: list[dict], cells: dict[str, dict]) -> None:
    """Point `teachable-adapter@best-<quadrant>` at the best cell of each quadrant by failure gain
    (see `best_per_quadrant`); tag the evaluate run with the choices (`best.<quadrant>`)."""
    for quadrant, (cell, gain) in best_per_quadrant(gains, cells).items():
        version = cells[cell].get("version")
        if not version:
            continue
        set_alias(ADAPTER_MODEL, f"{BEST_ALIAS_PREFIX}{quadrant}", str(version))
        mlflow.set_tag(f"best.{quadrant}", f"{cell} (version {version}, failure gain {gain:+.3f})")
        log.info("%s@%s%s -> version %s (%s, failure gain %+.3f)", ADAPTER_MODEL, BEST_ALIAS_PREFIX, quadrant,
                 version, cell, gain)


def log_results(summary: list[dict], gains: list[dict], cells: dict[str, dict]) -> None:
    """Metrics on the evaluate run (`<set>_success/<model>`) and on each cell's nested run."""
    client = MlflowClient()
    metrics = {}
    for r in summary:
        metrics[f"{r['set']}_success/{r['model']}"] = r["success_rate"]
        metrics[f"{r['set']}_score/{r['model']}"] = r["mean_score"]
        run_id = cells.get(r["model"], {}).get("run_id")
        if run_id:
            client.log_metric(run_id, f"eval_{r['set']}_success", r["success_rate"])
            client.log_metric(run_id, f"eval_{r['set']}_score", r["mean_score"])
    for g in gains:
        metrics[f"{g['set']}_success_gain/{g['model']}"] = g["success_gain"]
        metrics[f"{g['set']}_success_gain_mde/{g['model']}"] = g["success_gain_mde"]
        run_id = cells.get(g["model"], {}).get("run_id")
        if run_id and g["success_gain"] == g["success_gain"]:
            client.log_metric(run_id, f"eval_{g['set']}_success_gain", g["success_gain"])
    log_metrics(metrics)


if __name__ == "__main__":
    run_cli(main)
