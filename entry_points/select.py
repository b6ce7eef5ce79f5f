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
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError, parse_config, run_cli
from entry_points.comparison import log_comparison
from entry_points.predictor_registry import load_predictor
from entry_points.runs import PHASE_TAG, executor_metrics, log_metrics, start_phase
from entry_points.upstream import download_artifact, label_run_rollouts, labeled_inputs
from entry_points.workfiles import model_identity, open_work
from teachable.evaluation import build_eval_sets
from teachable.executor import Executor, PolicySpec
from teachable.features import compute_features, feature_fingerprint
from teachable.names import PREDICTOR_SPLIT, SELECTION_COMPARISONS, SELECTION_SUMMARY
from teachable.policy.lm import PromptRenderer
from teachable.predictor import FeatureSetError
from teachable.records import LabeledSnapshot
from teachable.reporting.selection import frontier_figure, gain_vs_k_figure
from teachable.rollouts import episode_executor
from teachable.selection import (
    COMPARISON_COLUMNS,
    SelectConfig,
    cell_gains,
    cell_name,
    check_budgets,
    comparison_metrics,
    method_comparisons,
    select,
    selection_examples,
    selection_frames,
    selection_pool,
    split_pool,
    summary_frame,
    summary_metrics,
)
from teachable.supervision.examples import supervision_pair
from teachable.teach import (
    BASE,
    cached_json,
    compare_rows,
    compare_to_base,
    run_cells,
    teaching_examples,
    train_adapter,
)
from webshop_env.env import Shop

PHASE = "select"
CONFIG = SelectConfig
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
    split = download_artifact(model_version.run_id, PREDICTOR_SPLIT, f"predictor version {model_version.version}")
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


def train_cell(cell: tuple[str, int, int | None], selected: list[LabeledSnapshot], renderer: PromptRenderer,
               base_model: str, shop: Shop, sets: Any, base_rows: list[dict[str, Any]], config: SelectConfig,
               folder: Path, executor: Executor) -> dict[str, Any]:
    """Teach one selection in its own nested run; return its summary row (plus the selected ids)."""
    method, k, seed = cell
    name = cell_name(method, k, seed)
    tags = {"method": method, "K": str(k), "seed": "" if seed is None else str(seed), PHASE_TAG: "select_cell"}
    with mlflow.start_run(run_name=name, nested=True, tags=tags):
        examples = teaching_examples(renderer, (supervision_pair(r, f) for r, f in selection_examples(selected)))
        adapter = folder / "adapter"
        metrics = train_adapter(base_model, examples, adapter, config.sft_settings(), device=config.device or None)
        comparison = compare_to_base(shop, {name: model_spec(base_model, config, str(adapter))}, sets, config, executor,
                                     measured=base_rows)
        rows = [r for r in comparison.rows if r["model"] == name]
        gains = cell_gains(comparison)
        log_metrics({**gains, "final_train_loss": metrics["train_loss"], "n_examples": len(examples)})
    return {"method": method, "K": k, "seed": seed, **gains, "n_examples": len(examples),
            "selected": [r.snapshot_id for r in selected], "rows": rows}


def teach_selections(config: SelectConfig, pool: list[LabeledSnapshot], scores: dict[str, float] | None,
                     base_model: str, shop: Shop, sets: Any, work: Path,
                     executor: Executor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Evaluate the base (once) and teach and evaluate every cell not done in `work`: (cell entries, base rows)."""
    base_rows, _ = cached_json(work / "base_rows.json", lambda: compare_to_base(
        shop, {BASE: model_spec(base_model, config)}, sets, config, executor).rows)
    renderer = PromptRenderer.from_pretrained(base_model)  # prompts as the model was trained
    done = run_cells(config.cells(), work, lambda cell, folder: train_cell(
        cell, select(pool, cell[0], cell[1], seed=cell[2], scores=scores), renderer, base_model, shop, sets,
        base_rows, config, folder, executor), name=lambda cell: cell_name(*cell))
    return [entry for _, entry, _ in done], base_rows


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
            entries, base_rows = teach_selections(config, pool, scores, base_model, shop, sets, work, executor)
        log_metrics(executor_metrics(executor))
        frame = summary_frame(entries)
        cell_rows = [r for e in entries for r in e["rows"]]
        comparisons = pd.DataFrame(method_comparisons(cell_rows, config.cells(), config),
                                   columns=list(COMPARISON_COLUMNS))
        log_metrics({**summary_metrics(frame), **comparison_metrics(comparisons), "pool_size": len(pool),
                     "failure_eval_size": len(sets.failures), "pool_excluded_predictor_train": n_fitted})
        mlflow.set_tag("base_model", base_model)
        with tempfile.TemporaryDirectory() as tmp:
            frame.to_csv(Path(tmp) / SELECTION_SUMMARY, index=False)
            comparisons.to_csv(Path(tmp) / SELECTION_COMPARISONS, index=False)
            for method, selection in selection_frames(entries).items():
                selection.to_csv(Path(tmp) / f"selection_{method}.csv", index=False)
            mlflow.log_artifacts(tmp)
        log_comparison(compare_rows(base_rows + cell_rows, config), metrics=False)
        log_figures(frame)


if __name__ == "__main__":
    run_cli(main)
