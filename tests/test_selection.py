"""H7 selection: each method picks what it should; budgets; the `select` phase end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from teachable.evaluation import EvalConfig
from teachable.records import LabeledSnapshot
from teachable.selection import (
    COMPARISON_COLUMNS,
    METHODS,
    SUMMARY_COLUMNS,
    BudgetError,
    SelectConfig,
    cell_name,
    check_budgets,
    method_comparisons,
    select,
    selection_examples,
    selection_pool,
    split_pool,
)
from teachable.stats import paired_mde

ELP = [0.1, 0.9, -0.2, 0.5, 0.0, 0.7]
ENTROPY = [1.2, 0.1, 0.8, 0.3, 2.0, 0.0]


def record(i: int, teacher: bool = True, route: str = "none") -> LabeledSnapshot:
    return LabeledSnapshot(snapshot_id=f"s{i}", traj_id=f"t{i // 2}", goal_idx=0, goal={"instruction_text": "x"},
                           step_index=0, state="", observation="", valid_actions=[], has_search_bar=False, history=[],
                           student_action="click[a]", final_reward=0.0, steps_to_end=0, route=route,
                           elp_net=ELP[i], uncertainty={"entropy": ENTROPY[i]},
                           teacher={"action": "click[b]", "hint": "h"} if teacher else None)


@pytest.fixture
def pool() -> list[LabeledSnapshot]:
    return [record(i, route="hint" if i == 1 else "none") for i in range(6)]


def ids(records: list[LabeledSnapshot]) -> list[str]:
    return [r.snapshot_id for r in records]


def test_methods_pick_what_they_should(pool: list[LabeledSnapshot]) -> None:
    assert ids(select(pool, "oracle", 3)) == ["s1", "s5", "s3"]
    assert ids(select(pool, "entropy", 2)) == ["s4", "s0"]
    scores = {f"s{i}": v for i, v in enumerate([0.0, 0.2, 0.9, 0.1, 0.8, 0.3])}
    assert ids(select(pool, "predictor", 2, scores=scores)) == ["s2", "s4"]
    draws = [ids(select(pool, "random", 3, seed=s)) for s in range(4)]
    assert draws[0] == ids(select(pool, "random", 3, seed=0)) and len(set(map(tuple, draws))) > 1
    assert all(len(set(d)) == 3 and set(d) <= set(ids(pool)) for d in draws)
    assert sorted(ids(select(pool, "random", 6, seed=0))) == sorted(ids(pool))
    pairs = selection_examples(select(pool, "oracle", 2))
    assert [(r.snapshot_id, f) for r, f in pairs] == [("s1", "hint"), ("s5", "demo")]  # route none -> DEMO


def test_bad_selections(pool: list[LabeledSnapshot]) -> None:
    with pytest.raises(BudgetError, match="K=7 is larger than the 6 labeled snapshots"):
        select(pool, "oracle", 7)
    with pytest.raises(ValueError, match="needs a seed"):
        select(pool, "random", 2)
    with pytest.raises(ValueError, match="predicted ELP_net"):
        select(pool, "predictor", 2)
    with pytest.raises(ValueError, match="no predicted ELP_net for 1 snapshots"):
        select(pool, "predictor", 2, scores={f"s{i}": 0.0 for i in range(5)})
    with pytest.raises(ValueError, match="unknown selection method"):
        select(pool, "uncertainty", 2)
    with pytest.raises(ValueError, match="methods="):
        SelectConfig(methods="random,bandit")
    with pytest.raises(ValueError, match="budgets="):
        SelectConfig(budgets="8,x")
    with pytest.raises(ValueError, match="budgets="):
        SelectConfig(budgets="0")


def test_pool_and_holdout(pool: list[LabeledSnapshot]) -> None:
    records = [*pool, record(0, teacher=False)]
    records[-1].snapshot_id = "no_teacher"
    assert "no_teacher" not in ids(selection_pool(records))
    kept, held = split_pool(pool, 0.34, seed=0)
    assert len(held) == 2 and not {r.traj_id for r in kept} & {r.traj_id for r in held}
    everything, all_held = split_pool(pool, 0.0, seed=0)
    assert everything == pool and all_held == pool
    # snapshots a predictor was fit on: their trajectories never enter the pool, and the held-out
    # trajectories come from them first (their labels reach no selection)
    pool = [replace(record(i % 6), snapshot_id=f"w{i}", traj_id=f"u{i // 2}") for i in range(12)]
    trajs = sorted({r.traj_id for r in pool})
    fitted = {r.snapshot_id for r in pool if r.traj_id in trajs[:3]}
    kept, held = split_pool(pool, 0.34, seed=0, fitted=fitted)
    assert {r.traj_id for r in held} < set(trajs[:3]) and len(held) == 4  # 2 trajectories of 2 snapshots
    assert {r.traj_id for r in kept} == set(trajs[3:])
    few = {r.snapshot_id for r in pool if r.traj_id == trajs[0]}
    kept, held = split_pool(pool, 0.5, seed=0, fitted=few)  # more held out than fitted: the rest drawn as usual
    assert trajs[0] in {r.traj_id for r in held} and len({r.traj_id for r in held}) == 3
    assert not {r.traj_id for r in kept} & {r.traj_id for r in held} and trajs[0] not in {r.traj_id for r in kept}
    kept, _ = split_pool(pool, 0.0, seed=0, fitted=few)
    assert trajs[0] not in {r.traj_id for r in kept}
    with pytest.raises(BudgetError, match="3 more were kept out because the predictor was trained on them"):
        check_budgets([99], pool, n_fitted=3)
    config = SelectConfig(methods="oracle,random", budgets="4,2", random_seeds=2)
    assert config.cells() == [("random", 2, 0), ("random", 2, 1), ("random", 4, 0), ("random", 4, 1),
                              ("oracle", 2, None), ("oracle", 4, None)]


def test_select_end_to_end(synthetic_label_run: dict, small_data_dir: Path) -> None:
    from entry_points import promote, train_predictor
    from entry_points import select as select_phase
    from entry_points.cli import UpstreamError
    from teachable.predictor import FeatureSetError

    label_run = synthetic_label_run["label_run"]
    args = ["--label_run", label_run, "--data_dir", str(small_data_dir), "--budgets", "2,4", "--random_seeds", "1",
            "--epochs", "1", "--train_batch_size", "4", "--heldout_goals", "2", "--failure_snapshots", "4",
            "--retention_goals", "0", "--episodes_per_item", "1", "--max_steps", "8", "--n_boot", "20",
            "--embed_dim", "16"]
    with pytest.raises(UpstreamError, match="no registered model 'teachable-predictor'.*train_predictor"):
        select_phase.main(args)
    train_predictor.main(["--label_run", label_run, "--k", "4", "--embed_dim", "16", "--lgb_rounds", "20",
                          "--mlp_epochs", "20", "--valid_fraction", "0.5"])
    with pytest.raises(UpstreamError, match="no alias @champion.*-e promote"):
        select_phase.main(args)
    promote.main([])
    with pytest.raises(FeatureSetError, match="trained on feature set"):
        select_phase.main([*args, "--embed_dim", "8"])
    with pytest.raises(BudgetError, match="K=99 is larger"):
        select_phase.main([*args, "--budgets", "2,99"])

    select_phase.main(args)
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name("teachable").experiment_id
    runs = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'select'",
                              order_by=["attributes.start_time DESC"])
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["upstream.label"] == label_run
    assert run.data.tags["predictor_version"] == "1" and "upstream.train_predictor" in run.data.tags
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert len(children) == 2 * len(METHODS)
    assert all(c.info.run_name == cell_name(c.data.tags["method"], int(c.data.tags["K"]),
                                            int(c.data.tags["seed"]) if c.data.tags["seed"] else None)
               for c in children)  # e.g. random_K2_seed0, predictor_K4
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=""))
    summary = pd.read_csv(local / "selection_summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert sorted(zip(summary.method, summary.K, strict=True)) == sorted((m, k) for m in METHODS for k in (2, 4))
    assert summary.loc[summary.method == "random", "seed"].eq(0).all()
    assert summary.loc[summary.method != "random", "seed"].isna().all()
    assert summary.retention_change.isna().all() and summary.failure_gain.notna().all()
    for gain in ("failure_gain", "heldout_gain"):  # each gain inside its own interval
        assert (summary[f"{gain}_low"] <= summary[gain]).all() and (summary[gain] <= summary[f"{gain}_high"]).all()
    assert summary.retention_change_low.isna().all()
    assert (summary.n_examples == summary.K).all()
    assert "oracle.failure_gain.K2" in run.data.metrics
    comparisons = pd.read_csv(local / "selection_comparisons.csv")
    assert list(comparisons.columns) == list(COMPARISON_COLUMNS)
    assert {("predictor", "random"), ("predictor", "entropy"), ("entropy", "random"), ("oracle", "random"),
            ("oracle", "predictor")} == set(zip(comparisons.method, comparisons.versus, strict=True))
    assert set(comparisons.K) == {2, 4} and set(comparisons.set) == {"failures", "heldout"}  # retention skipped
    assert (comparisons.success_diff_low <= comparisons.success_diff).all()
    assert "h7.predictor_vs_random.failures.K2" in run.data.metrics
    assert {"eval_summary.csv", "selection_frontier.png", "selection_gain_vs_k.png"} <= {p.name for p in local.iterdir()}

    # the predictor was trained on this label run: its training snapshots stay out of the pool
    predictor_run = run.data.tags["upstream.train_predictor"]
    fitted = set(json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=predictor_run, artifact_path="split.json")).read_text())["train"])
    records = synthetic_label_run["records"]
    assert run.data.metrics["pool_excluded_predictor_train"] == len(selection_pool(
        [r for r in records if r.snapshot_id in fitted])) > 0
    pool, held = split_pool(records, 0.3, seed=0, fitted=fitted)
    assert run.data.metrics["pool_size"] == len(pool) and not fitted & set(ids(pool))
    # the oracle picked the pool's highest true ELP_net, outside the failure holdout
    oracle = pd.read_csv(local / "selection_oracle.csv")
    assert list(oracle.columns) == ["method", "K", "seed", "rank", "snapshot_id"]
    assert list(oracle.loc[oracle.K == 4, "snapshot_id"]) == ids(select(pool, "oracle", 4))
    assert not set(oracle.snapshot_id) & set(ids(held))
    for method in METHODS:
        assert not set(pd.read_csv(local / f"selection_{method}.csv").snapshot_id) & fitted
    for method in METHODS:
        assert (local / f"selection_{method}.csv").is_file()

    select_phase.main(args)  # the same parameters again: every cell is reused, none trained
    again = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'select'",
                               order_by=["attributes.start_time DESC"])[0]
    assert again.info.run_id != run.info.run_id and again.info.status == "FINISHED"
    assert not client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{again.info.run_id}'")
    reused = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=again.info.run_id,
                                                             artifact_path="selection_summary.csv"))
    pd.testing.assert_frame_equal(reused, summary)


def test_method_comparisons_pair_items_and_average_seeds() -> None:
    def rows(model: str, successes: dict[str, int], set_name: str = "failures") -> list[dict]:
        return [{"model": model, "set": set_name, "item": item, "success": ok, "reward": float(ok), "quadrant": None}
                for item, ok in successes.items()]

    cells = [("random", 2, 0), ("random", 2, 1), ("predictor", 2, None), ("oracle", 2, None)]
    data = (rows("random_K2_seed0", {"a": 0, "b": 0, "c": 0}) + rows("random_K2_seed1", {"a": 1, "b": 1, "c": 0})
            + rows("predictor_K2", {"a": 1, "b": 1, "c": 1, "d": 1})  # d: random never played it, not paired
            + rows("oracle_K2", {"a": 0, "b": 0, "c": 0}) + rows("predictor_K2", {"x": 1}, "heldout"))
    out = {(r["method"], r["versus"], r["set"]): r for r in method_comparisons(data, cells, EvalConfig(n_boot=200))}
    assert set(out) == {("predictor", "random", "failures"), ("oracle", "random", "failures"),
                        ("oracle", "predictor", "failures")}  # no entropy cell, no heldout rows for random
    vs_random = out["predictor", "random", "failures"]
    assert list(vs_random) == list(COMPARISON_COLUMNS) and vs_random["n_items"] == 3
    assert vs_random["success_diff"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)  # random: the mean of its 2 seeds
    assert vs_random["success_diff_low"] <= vs_random["success_diff"] <= vs_random["success_diff_high"] <= 1.0
    # three items cannot detect even the difference they show: no power, not no effect
    assert vs_random["success_diff_mde"] == pytest.approx(paired_mde([1, 1, 1], [0.5, 0.5, 0.0], alpha=0.05))
    assert vs_random["success_diff_mde"] > vs_random["success_diff"] and vs_random["mde_power"] == 0.8
    oracle = out["oracle", "predictor", "failures"]
    assert oracle["success_diff"] == oracle["success_diff_low"] == oracle["success_diff_high"] == -1.0
