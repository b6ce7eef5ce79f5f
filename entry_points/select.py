"""Phase `select` (H7): at budget K, which snapshots are worth teaching?

    mlflow run . -e select --env-manager local -P budgets=8,16 -P random_seeds=3
    python -m entry_points.select --predictor models:/teachable-predictor@champion --budgets 4,8

For every K and method (random per seed, entropy, predictor, oracle; see `teachable.selection`)
the K snapshots are taught with the same LoRA recipe as the training matrix and evaluated with
the evaluation suite against the base student (failure states, retention, held-out goals; the
same items and seeds for every model). One nested run per (method, K, seed). Logs
`selection_summary.csv` (method, K, seed, failure_gain, retention_change, heldout_gain, each with
`_low` / `_high`, the ends of its paired bootstrap interval over items, `_mde`, its minimum
detectable effect at 80% power, and n_examples),
`selection_comparisons.csv` (H7 head to head: at each K, predictor vs random and entropy, entropy
vs random, oracle vs random and predictor: the difference in item-level success on each set with
a paired bootstrap interval; random averaged over its seeds per item; metrics
`h7.<method>_vs_<versus>.<set>.K<k>`), `selection_<method>.csv` (the selected snapshot ids), `eval_summary.csv`, metrics
`<method>.failure_gain.K<k>` (random: the mean over seeds), `pool_size`,
`pool_excluded_predictor_train` (snapshots kept out because the predictor was trained on them,
when it was trained on the same label run) and, when the reporting module is
present, the reliability-vs-retention frontier and gain-vs-K figures. A killed run started
again with the same parameters reuses the finished cells. With `executor=ray` the evaluation
episodes run on Ray actors; the LoRA training stays in this process.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from entry_points.common import (
    PHASE_TAG,
    UpstreamError,
    download_artifact,
    executor_metrics,
    label_run_rollouts,
    labeled_inputs,
    log_metrics,
    parse_config,
    run_cli,
    start_phase,
)
from entry_points.predictor_registry import load_predictor
from entry_points.workfiles import model_identity, open_work
from teachable.evaluation import (
    build_eval_sets,
    evaluate_policy,
    gains_vs_base,
    record_adapter_base,
    summarize_eval,
    write_eval_csvs,
)
from teachable.executor import Executor, PolicySpec
from teachable.features import compute_features, feature_fingerprint
from teachable.policy.lm import LMPolicy
from teachable.predictor import FeatureSetError
from teachable.records import LabeledSnapshot
from teachable.reporting.selection import frontier_figure, gain_vs_k_figure
from teachable.rollouts import episode_executor
from teachable.selection import (
    COMPARISON_COLUMNS,
    METHODS,
    SUMMARY_COLUMNS,
    SelectConfig,
    cell_name,
    check_budgets,
    method_comparisons,
    select,
    selection_examples,
    selection_pool,
    split_pool,
)
from teachable.supervision.examples import supervision_pair
from teachable.training.sft import train_lora
from webshop_env.env import Shop

PHASE = "select"
CONFIG = SelectConfig
BASE = "base"
GAIN_COLUMNS = {"failures": "failure_gain", "retention": "retention_change", "heldout": "heldout_gain"}
log = logging.getLogger(__name__)


def load_champion(config: SelectConfig) -> tuple[Any, Any, Any]:
    """(the pyfunc, the predictor, its model version) of `config.predictor`, its run recorded as
    `upstream.train_predictor`.

    Raises:
        FeatureSetError: the predictor was trained on another feature set than `config`'s.
    """
    model, predictor, model_version = load_predictor(config.predictor)
    if model_version.run_id:
        mlflow.set_tag("upstream.train_predictor", model_version.run_id)
    fingerprint = feature_fingerprint(config)
    if predictor.fingerprint != fingerprint:
        raise FeatureSetError(
            f"predictor={config.predictor!r} (version {model_version.version}) was trained on feature set "
            f"{predictor.fingerprint} ({predictor.feature_config}); select computes {fingerprint} "
            f"(embedder={config.embedder}, embed_dim={config.embed_dim}, feature_max_steps={config.feature_max_steps}): "
            "pass the predictor's feature parameters, or train a predictor on these (train_predictor, then promote).")
    return model, predictor, model_version


def fitted_snapshots(model_version: Any, label_run_id: str) -> set[str]:
    """The snapshot ids a predictor was trained on, when it was trained on `label_run_id` (else none)."""
    if not model_version.run_id:
        return set()
    if MlflowClient().get_run(model_version.run_id).data.tags.get("upstream.label") != label_run_id:
        return set()
    split = download_artifact(model_version.run_id, "split.json", f"predictor version {model_version.version}")
    return set(json.loads(split.read_text())["train"])


def predicted_scores(model: Any, predictor: Any, config: SelectConfig,
                     pool: Sequence[LabeledSnapshot]) -> dict[str, float]:
    """The predictor's ELP_net of every pool snapshot."""
    features = compute_features(pool, config)
    out = model.predict(features[predictor.feature_names].reset_index(drop=True))
    return dict(zip(features.index, out["elp_net"].astype(float), strict=True))


def model_spec(base_model: str, config: SelectConfig, adapter: str | None = None) -> PolicySpec:
    return PolicySpec(base_model, config.temperature, adapter=adapter, device=config.device or None,
                      batch_size=config.policy_batch, **config.model_loading())


def evaluate_rows(shop: Shop, base_model: str, sets: Any, config: SelectConfig, name: str, executor: Executor,
                  adapter: str | None = None) -> list[dict[str, Any]]:
    # a SelectConfig is an EvalConfig
    return evaluate_policy(shop, model_spec(base_model, config, adapter), sets, config, name=name, executor=executor,
                           progress=True)


def gains_of(base_rows: list[dict[str, Any]], rows: list[dict[str, Any]], config: SelectConfig) -> dict[str, float]:
    """failure_gain, retention_change and heldout_gain of one cell vs the base, each with the ends of
    its paired bootstrap interval (`<gain>_low`, `<gain>_high`) and its minimum detectable effect
    at 80% power (`<gain>_mde`); NaN for a skipped set."""
    summary = summarize_eval(base_rows + rows, config)
    gains = {g["set"]: g for g in gains_vs_base(summary, BASE, rows=base_rows + rows, config=config)}
    return {f"{column}{end}": float(gains[s][f"success_gain{end}"]) if s in gains else math.nan
            for s, column in GAIN_COLUMNS.items() for end in ("", "_low", "_high", "_mde")}


def train_cell(cell: tuple[str, int, int | None], selected: list[LabeledSnapshot], base: LMPolicy, base_model: str,
               shop: Shop, sets: Any, base_rows: list[dict[str, Any]], config: SelectConfig,
               folder: Path, executor: Executor) -> dict[str, Any]:
    """Teach one selection in its own nested run; return its summary row (plus the selected ids)."""
    method, k, seed = cell
    name = cell_name(method, k, seed)
    tags = {"method": method, "K": str(k), "seed": "" if seed is None else str(seed), PHASE_TAG: "select_cell"}
    with mlflow.start_run(run_name=name, nested=True, tags=tags):
        examples = [(base.prompt(ctx), base.completion(ctx, action)) for ctx, action in
                    (supervision_pair(r, f) for r, f in selection_examples(selected))]
        adapter = folder / "adapter"
        metrics = train_lora(base_model, examples, adapter, config.sft_settings(), device=config.device or None)
        record_adapter_base(adapter, base_model)
        rows = evaluate_rows(shop, base_model, sets, config, name, executor, adapter=str(adapter))
        gains = gains_of(base_rows, rows, config)
        log_metrics({**gains, "final_train_loss": metrics["train_loss"],
                     "n_examples": len(examples)})
    return {"method": method, "K": k, "seed": seed, **gains, "n_examples": len(examples),
            "selected": [r.snapshot_id for r in selected], "rows": rows}


def run_cells(config: SelectConfig, pool: list[LabeledSnapshot], scores: dict[str, float] | None, base_model: str,
              shop: Shop, sets: Any, work: Path, executor: Executor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Evaluate the base (once) and train and evaluate every cell not done in `work`: (cell entries, base rows)."""
    base_file = work / "base_rows.json"
    if base_file.is_file():
        base_rows = json.loads(base_file.read_text())
    else:
        base_rows = evaluate_rows(shop, base_model, sets, config, BASE, executor)
        base_file.parent.mkdir(parents=True, exist_ok=True)
        base_file.write_text(json.dumps(base_rows))
    base = LMPolicy.from_pretrained(base_model, device="cpu")  # renders prompts as the model was trained
    entries = []
    for cell in config.cells():
        folder = work / cell_name(*cell)
        done = folder / "done.json"
        if done.is_file():
            entries.append(json.loads(done.read_text()))
            log.info("cell %s: reused from an earlier run of the same parameters", cell_name(*cell))
            continue
        method, k, seed = cell
        selected = select(pool, method, k, seed=seed, scores=scores)
        entry = train_cell(cell, selected, base, base_model, shop, sets, base_rows, config, folder, executor)
        done.write_text(json.dumps(entry))
        entries.append(entry)
    return entries, base_rows


def summary_frame(entries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """`selection_summary.csv`'s frame: one row per (method, K, seed), seed empty when deterministic."""
    # .get: a cell finished by an earlier version has no interval columns
    frame = pd.DataFrame([{c: e.get(c, math.nan) for c in SUMMARY_COLUMNS} for e in entries],
                         columns=list(SUMMARY_COLUMNS))
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def selection_frames(entries: Sequence[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Per method, the selected snapshot ids: method, K, seed, rank, snapshot_id."""
    out = {}
    for method in METHODS:
        rows = [{"method": method, "K": e["K"], "seed": e["seed"], "rank": i, "snapshot_id": sid}
                for e in entries if e["method"] == method for i, sid in enumerate(e["selected"])]
        if rows:
            frame = pd.DataFrame(rows)
            frame["seed"] = frame["seed"].astype("Int64")
            out[method] = frame
    return out


def summary_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """`<method>.<gain>.K<k>`: the cell's gain (random: the mean over seeds, and its std)."""
    metrics = {}
    for (method, k), group in frame.groupby(["method", "K"], sort=False):
        for column in ("failure_gain", "retention_change", "heldout_gain"):
            values = group[column].dropna()
            if len(values):
                metrics[f"{method}.{column}.K{k}"] = float(values.mean())
                if method == "random" and len(values) > 1:
                    metrics[f"{method}.{column}_std.K{k}"] = float(values.std(ddof=1))
    return metrics


def comparison_metrics(comparisons: pd.DataFrame) -> dict[str, float]:
    """`h7.<method>_vs_<versus>.<set>.K<k>`: the difference in item-level success (and `..._mde`,
    the smallest difference those items detect at 80% power)."""
    out = {}
    for r in comparisons.itertuples():
        key = f"h7.{r.method}_vs_{r.versus}.{r.set}.K{r.K}"
        out.update({key: float(r.success_diff), f"{key}_mde": float(r.success_diff_mde)})
    return out


def log_figures(frame: pd.DataFrame) -> None:
    """The H7 figures: the reliability-vs-retention frontier and the gains against the budget K."""
    mlflow.log_figure(frontier_figure(frame), "selection_frontier.png")
    mlflow.log_figure(gain_vs_k_figure(frame), "selection_gain_vs_k.png")


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(SelectConfig, argv, __doc__)
    with start_phase(PHASE, config), ExitStack() as stack:
        label_run_id, records, base_model = labeled_inputs(config.label_run, config.student)
        upstream = {"label": label_run_id, "student": model_identity(config.student, base_model)}
        champion, fitted = None, set()
        if "predictor" in config.method_list():
            champion = load_champion(config)
            fitted = fitted_snapshots(champion[2], label_run_id)
            mlflow.set_tag("predictor_version", str(champion[2].version))
            upstream["predictor"] = f"models:/{champion[2].name}/{champion[2].version}"
        pool, held = split_pool(records, config.failure_holdout, config.seed, fitted)
        n_fitted = len(selection_pool([r for r in records if r.snapshot_id in fitted]))
        if fitted:
            log.info("%d snapshots the predictor was trained on are kept out of the pool (%d left)", n_fitted,
                     len(pool))
        check_budgets(config.budget_list(), pool, n_fitted)
        scores = predicted_scores(champion[0], champion[1], config, pool) if champion else None
        work = stack.enter_context(open_work(PHASE, config, upstream, "cells"))
        shop = Shop.load(config.data_dir or None)
        rollouts = label_run_rollouts(label_run_id) if config.retention_goals else []
        if config.retention_goals and not rollouts:
            raise UpstreamError(f"label run {label_run_id} records no rollouts run for the retention set; "
                                "set retention_goals=0 or label a mine run made from rollouts.")
        sets = build_eval_sets(shop, labeled=held, rollouts=rollouts, config=config)
        with episode_executor(config, shop, config.data_dir, [model_spec(base_model, config)]) as executor:
            entries, base_rows = run_cells(config, pool, scores, base_model, shop, sets, work, executor)
        log_metrics(executor_metrics(executor))
        frame = summary_frame(entries)
        cell_rows = [r for e in entries for r in e["rows"]]
        comparisons = pd.DataFrame(method_comparisons(cell_rows, config.cells(), config),
                                   columns=list(COMPARISON_COLUMNS))
        log_metrics({**summary_metrics(frame), **comparison_metrics(comparisons), "pool_size": len(pool),
                     "failure_eval_size": len(sets.failures), "pool_excluded_predictor_train": n_fitted})
        mlflow.set_tag("base_model", base_model)
        with tempfile.TemporaryDirectory() as tmp:
            frame.to_csv(Path(tmp) / "selection_summary.csv", index=False)
            comparisons.to_csv(Path(tmp) / "selection_comparisons.csv", index=False)
            for method, selection in selection_frames(entries).items():
                selection.to_csv(Path(tmp) / f"selection_{method}.csv", index=False)
            rows = base_rows + cell_rows
            summary = summarize_eval(rows, config)
            write_eval_csvs(rows, summary, tmp, gains=gains_vs_base(summary, BASE, rows=rows, config=config))
            mlflow.log_artifacts(tmp)
        log_figures(frame)


if __name__ == "__main__":
    run_cli(main)
