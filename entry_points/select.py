"""Phase `select` (H7): at budget K, which snapshots are worth teaching?

    mlflow run . -e select --env-manager local -P budgets=8,16 -P random_seeds=3
    python -m entry_points.select --predictor models:/teachable-predictor@champion --budgets 4,8

For every K and method (random per seed, entropy, predictor, oracle; `teachable.selection`) the
K snapshots are taught with one LoRA recipe and compared with the base on the same failure,
retention and held-out items (`teachable.teach`), one nested run per (method, K, seed). Logs
`selection_summary.csv` (gains, paired intervals, minimum detectable effects),
`selection_comparisons.csv` (H7 head to head; metrics `h7.<method>_vs_<versus>.<set>.K<k>`),
`eval_*.csv`, `<method>.failure_gain.K<k>`, `pool_size` and the frontier and gain-vs-K figures
(README). A killed run started again with the same parameters reuses the finished cells.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow

from entry_points.cli import ShopArgs, UpstreamError, config_of, parse_configs, run_cli
from entry_points.comparison import log_comparison
from entry_points.predictor_registry import predicted_scores, selection_predictor
from entry_points.runs import PHASE_TAG, TrackingArgs, executor_metrics, log_metrics, start_phase
from entry_points.upstream import label_run_rollouts, labeled_inputs
from entry_points.workfiles import model_identity, open_work
from teachable import selection
from teachable.evaluation import EvalConfig, build_eval_sets
from teachable.executor import Executor
from teachable.features import FeatureConfig
from teachable.names import SELECTION_COMPARISONS
from teachable.policy.lm import PromptRenderer
from teachable.records import LabeledSnapshot
from teachable.reporting.selection import frontier_figure, gain_vs_k_figure
from teachable.rollouts import episode_executor
from teachable.supervision.examples import supervision_pair
from teachable.teach import (
    BASE,
    cached_json,
    compare_rows,
    compare_to_base,
    policy_spec,
    run_cells,
    teaching_examples,
    train_adapter,
)
from teachable.training.sft import LoraRecipe
from webshop_env.env import Shop

PHASE = "select"
log = logging.getLogger(__name__)


@dataclass
class SelectArgs:
    """The labels, the base student and the predictor the `select` phase reads, and where it trains."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest or a run id"})
    student: str = field(default="label", metadata={"help": "base model: label (the label run's student), latest, a run id, models:/..., or a folder"})
    predictor: str = field(default="models:/teachable-predictor@champion", metadata={"help": "registered predictor: models:/teachable-predictor@<alias> or /<version>"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})


CONFIG = (SelectArgs, ShopArgs, selection.SelectConfig, EvalConfig, FeatureConfig, LoraRecipe, TrackingArgs)


def train_cell(cell: tuple[str, int, int | None], selected: list[LabeledSnapshot], renderer: PromptRenderer,
               base_model: str, shop: Shop, sets: Any, base_rows: list[dict[str, Any]], configs: tuple,
               folder: Path, executor: Executor) -> dict[str, Any]:
    """Teach one selection in its own nested run; return its summary row (plus the selected ids)."""
    args, config, recipe = (config_of(configs, cls) for cls in (SelectArgs, EvalConfig, LoraRecipe))
    method, k, seed = cell
    name = selection.cell_name(method, k, seed)
    tags = {"method": method, "K": str(k), "seed": "" if seed is None else str(seed), PHASE_TAG: "select_cell"}
    with mlflow.start_run(run_name=name, nested=True, tags=tags):
        examples = teaching_examples(renderer, (supervision_pair(r, f) for r, f in selection.selection_examples(selected)))
        adapter = folder / "adapter"
        metrics = train_adapter(base_model, examples, adapter, recipe, seed=config.seed, device=args.device or None)
        spec = policy_spec(base_model, config, device=args.device, adapter=str(adapter))
        comparison = compare_to_base(shop, {name: spec}, sets, config, executor, measured=base_rows)
        rows = [r for r in comparison.rows if r["model"] == name]
        gains = selection.cell_gains(comparison)
        log_metrics({**gains, "final_train_loss": metrics["train_loss"], "n_examples": len(examples)})
    return {"method": method, "K": k, "seed": seed, **gains, "n_examples": len(examples),
            "selected": [r.snapshot_id for r in selected], "rows": rows}


def teach_selections(configs: tuple, pool: list[LabeledSnapshot], scores: dict[str, float] | None,
                     base_model: str, shop: Shop, sets: Any, work: Path,
                     executor: Executor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Evaluate the base (once) and teach and evaluate every cell not done in `work`: (cell entries, base rows)."""
    args, select_config, config = (config_of(configs, cls) for cls in (SelectArgs, selection.SelectConfig, EvalConfig))
    base_rows, _ = cached_json(work / "base_rows.json", lambda: compare_to_base(
        shop, {BASE: policy_spec(base_model, config, device=args.device)}, sets, config, executor).rows)
    renderer = PromptRenderer.from_pretrained(base_model)  # prompts as the model was trained
    done = run_cells(select_config.cells(), work, lambda cell, folder: train_cell(
        cell, selection.select(pool, cell[0], cell[1], seed=cell[2], scores=scores), renderer, base_model, shop, sets,
        base_rows, configs, folder, executor), name=lambda cell: selection.cell_name(*cell))
    return [entry for _, entry, _ in done], base_rows


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, shop_args, select_config, config, features, _, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs), ExitStack() as stack:
        label_run_id, records, base_model = labeled_inputs(args.label_run, args.student)
        upstream = {"label": label_run_id, "student": model_identity(args.student, base_model)}
        champion, fitted = selection_predictor(args.predictor, select_config.method_list(), features, label_run_id,
                                               upstream)
        pool, held = selection.split_pool(records, select_config.failure_holdout, select_config.seed, fitted)
        n_fitted = len(selection.selection_pool([r for r in records if r.snapshot_id in fitted]))
        if fitted:
            log.info("%d snapshots the predictor was trained on are kept out of the pool (%d left)", n_fitted,
                     len(pool))
        selection.check_budgets(select_config.budget_list(), pool, n_fitted)
        scores = predicted_scores(champion[0], champion[1], features, pool) if champion else None
        work = stack.enter_context(open_work(PHASE, configs, upstream, "cells"))
        shop = shop_args.load()
        rollouts = label_run_rollouts(label_run_id) if config.retention_goals else []
        if config.retention_goals and not rollouts:
            raise UpstreamError(f"label run {label_run_id} records no rollouts run for the retention set; "
                                "set retention_goals=0 or label a mine run made from rollouts.")
        sets = build_eval_sets(shop, labeled=held, rollouts=rollouts, config=config)
        with episode_executor(config, shop, shop_args.data_dir,
                              [policy_spec(base_model, config, device=args.device)]) as executor:
            entries, base_rows = teach_selections(configs, pool, scores, base_model, shop, sets, work, executor)
        log_metrics(executor_metrics(executor))
        frame, tables = selection.selection_tables(entries, config)
        log_metrics({**selection.selection_metrics(frame, tables[SELECTION_COMPARISONS]), "pool_size": len(pool),
                     "failure_eval_size": len(sets.failures), "pool_excluded_predictor_train": n_fitted})
        mlflow.set_tag("base_model", base_model)
        with tempfile.TemporaryDirectory() as tmp:
            for name, table in tables.items():
                table.to_csv(Path(tmp) / name, index=False)
            mlflow.log_artifacts(tmp)
        cell_rows = [r for e in entries for r in e["rows"]]
        log_comparison(compare_rows(base_rows + cell_rows, config), metrics=False)
        mlflow.log_figure(frontier_figure(frame), "selection_frontier.png")  # reliability vs retention
        mlflow.log_figure(gain_vs_k_figure(frame), "selection_gain_vs_k.png")


if __name__ == "__main__":
    run_cli(main)
