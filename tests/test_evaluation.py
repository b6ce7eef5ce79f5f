from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from teachable.evaluation import (
    ROW_COLUMNS,
    EvalConfig,
    EvalSets,
    build_eval_sets,
    evaluate_policy,
    gains_vs_base,
    summarize_eval,
    summary_table,
    write_eval_csvs,
)
from teachable.label.quadrant import QUADRANTS
from teachable.mining import mine_failures
from teachable.policy import ExpertPolicy, RandomPolicy
from teachable.records import LabeledSnapshot
from teachable.reporting.evaluation import gain_heatmap, gain_matrix, parse_cell
from teachable.rollouts import goal_specs, run_episodes, sample_goals
from teachable.stats import bootstrap_interval
from teachable.supervision.formats import FORMATS

RECOVERABLE_STEP = 5  # from here on the expert has ample steps left to shop the goal


@pytest.fixture(scope="module")
def rollouts(small_shop):
    """The base student's rollouts: a random policy, plus a few expert episodes that solve their goals."""
    train = small_shop.split_goal_indices("train")
    random = run_episodes(small_shop, RandomPolicy(), goal_specs(train[:40], seed=0, split="train"), batch_size=40)
    solved = run_episodes(small_shop, ExpertPolicy(small_shop), goal_specs(train[40:48], seed=0, split="train"),
                          batch_size=8)
    return random + solved


@pytest.fixture(scope="module")
def labeled(rollouts) -> list[LabeledSnapshot]:
    """Mined snapshots wrapped as labels: early (recoverable) steps and the last step of each failure."""
    snaps, _ = mine_failures(rollouts)
    keep = [s for s in snaps if s.step_index in (1, 3, RECOVERABLE_STEP) or s.steps_to_end == 0][:40]
    return [LabeledSnapshot(**dataclasses.asdict(s), quadrant=QUADRANTS[i % 4], route=FORMATS[i % 3])
            for i, s in enumerate(keep)]


@pytest.fixture(scope="module")
def config() -> EvalConfig:
    return EvalConfig(heldout_goals=6, failure_snapshots=16, retention_goals=5, episodes_per_item=2,
                      batch_size=32, n_boot=200)


@pytest.fixture(scope="module")
def sets(small_shop, labeled, rollouts, config) -> EvalSets:
    return build_eval_sets(small_shop, labeled=labeled, rollouts=rollouts, config=config)


@pytest.fixture(scope="module")
def expert_rows(small_shop, sets, config):
    return evaluate_policy(small_shop, ExpertPolicy(small_shop), sets, config, name="expert")


@pytest.fixture(scope="module")
def random_rows(small_shop, sets, config):
    return evaluate_policy(small_shop, RandomPolicy(), sets, config, name="random")


def test_sets_are_drawn_from_the_right_places(small_shop, labeled, rollouts, sets, config) -> None:
    assert sets.sizes() == {"heldout": 6, "failures": 16, "retention": 5}
    assert sets.heldout == sample_goals(small_shop, "test", 6, config.seed)
    train = set(small_shop.split_goal_indices("train"))
    solved = {t.goal_idx for t in rollouts if t.success}
    assert set(sets.retention) <= solved & train and sets.retention == sorted(sets.retention)
    position = {s.snapshot_id: i for i, s in enumerate(labeled)}
    order = [position[s.snapshot_id] for s in sets.failures]
    assert order == sorted(order)  # the draw keeps the labeled file's order
    again = build_eval_sets(small_shop, labeled=labeled, rollouts=rollouts, config=config)
    assert again == sets
    other = build_eval_sets(small_shop, labeled=labeled, rollouts=rollouts,
                            config=dataclasses.replace(config, seed=1))
    assert [s.snapshot_id for s in other.failures] != [s.snapshot_id for s in sets.failures]
    skipped = build_eval_sets(small_shop, labeled=[], rollouts=[],
                              config=dataclasses.replace(config, failure_snapshots=0, retention_goals=0))
    assert skipped.sizes() == {"heldout": 6, "failures": 0, "retention": 0}


def test_empty_requested_sets_name_the_phase_to_run(small_shop, labeled, rollouts, config) -> None:
    with pytest.raises(ValueError, match="run the `label` phase"):
        build_eval_sets(small_shop, labeled=[], rollouts=rollouts, config=config)
    failed = [t for t in rollouts if not t.success]
    with pytest.raises(ValueError, match="run the `rollouts` phase"):
        build_eval_sets(small_shop, labeled=labeled, rollouts=failed, config=config)
    late = [dataclasses.replace(s, step_index=15) for s in labeled]
    with pytest.raises(ValueError, match="failure_snapshots=0"):
        build_eval_sets(small_shop, labeled=late, rollouts=rollouts, config=config)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("heldout_goals", -1, "heldout_goals must be >= 0"),
    ("episodes_per_item", 0, "episodes_per_item must be >= 1"),
    ("temperature", 0.0, "temperature"),
    ("confidence", 1.0, "confidence"),
    ("n_boot", 0, "n_boot"),
])
def test_config_validation(field, value, match) -> None:
    with pytest.raises(ValueError, match=match):
        EvalConfig(**{field: value})
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalConfig(heldout_goals=0, failure_snapshots=0, retention_goals=0)


def test_rows_describe_every_episode(expert_rows, sets, config) -> None:
    assert len(expert_rows) == sum(sets.sizes().values()) * config.episodes_per_item
    assert all(tuple(r) == ROW_COLUMNS for r in expert_rows)
    by_set = {name: [r for r in expert_rows if r["set"] == name] for name in ("heldout", "failures", "retention")}
    assert {r["item"] for r in by_set["heldout"]} == {str(g) for g in sets.heldout}
    assert {r["item"] for r in by_set["failures"]} == {s.snapshot_id for s in sets.failures}
    quadrant = {s.snapshot_id: (s.quadrant, s.route) for s in sets.failures}
    assert all((r["quadrant"], r["route"]) == quadrant[r["item"]] for r in by_set["failures"])
    assert all(r["quadrant"] is None and r["route"] is None for r in by_set["heldout"] + by_set["retention"])


def test_expert_solves_what_can_be_solved_and_random_does_not(expert_rows, random_rows, sets) -> None:
    recoverable = {s.snapshot_id for s in sets.failures if s.step_index <= RECOVERABLE_STEP}
    assert recoverable
    for name in ("heldout", "retention"):
        assert all(r["success"] and r["reward"] == 1.0 for r in expert_rows if r["set"] == name)
    assert all(r["success"] for r in expert_rows if r["item"] in recoverable)
    assert np.mean([r["success"] for r in random_rows if r["set"] == "heldout"]) < 0.3
    assert np.mean([r["success"] for r in random_rows]) < 0.5 * np.mean([r["success"] for r in expert_rows])


def test_same_seeds_for_every_model_and_run(small_shop, sets, config, random_rows, expert_rows) -> None:
    again = evaluate_policy(small_shop, RandomPolicy(), sets, dataclasses.replace(config, batch_size=5), name="random")
    assert again == random_rows
    assert [r["seed"] for r in random_rows] == [r["seed"] for r in expert_rows]
    episodes = [(r["set"], r["item"], r["episode"]) for r in random_rows]
    assert len(set(episodes)) == len(episodes)
    assert len({r["seed"] for r in random_rows}) == len(random_rows)


def _row(model: str, name: str, item: str, success: bool, quadrant: str | None = None) -> dict:
    return {"model": model, "set": name, "item": item, "episode": 0, "goal_idx": 0, "quadrant": quadrant,
            "route": None, "reward": float(success), "success": success, "n_steps": 3, "seed": 0}


def test_bootstrap_resamples_items_not_episodes() -> None:
    config = EvalConfig(n_boot=300)
    rows = [_row("m", "heldout", "a", True) for _ in range(9)] + [_row("m", "heldout", "b", False)]
    (summary,) = summarize_eval(rows, config)
    assert summary["n_items"] == 2 and summary["n_episodes"] == 10
    assert summary["success_rate"] == 0.5  # not 9/10: item a counts once
    expected = bootstrap_interval([1.0, 0.0], n_boot=300, seed=config.seed)
    assert (summary["success_rate"], summary["success_low"], summary["success_high"]) == expected
    assert summary["mean_score"] == 0.5


def test_summary_rates_and_quadrants(expert_rows, random_rows, config, sets) -> None:
    summary = summarize_eval(expert_rows + random_rows, config)
    assert [(r["model"], r["set"]) for r in summary] == [
        (m, s) for m in ("expert", "random") for s in ("heldout", "failures", "retention")]
    for r in summary:
        assert r["success_low"] <= r["success_rate"] <= r["success_high"]
        assert r["score_low"] <= r["mean_score"] <= r["score_high"]
    expert = {r["set"]: r for r in summary if r["model"] == "expert"}
    assert expert["heldout"]["success_rate"] == expert["retention"]["success_rate"] == 1.0
    assert expert["heldout"]["n_items"] == 6 and expert["heldout"]["n_episodes"] == 12
    failures = expert["failures"]
    assert sum(failures[f"n_{q}"] for q in QUADRANTS) == len(sets.failures)
    for q in QUADRANTS:
        items = {r["item"] for r in expert_rows if r["quadrant"] == q}
        if items:
            rate = np.mean([np.mean([r["success"] for r in expert_rows if r["item"] == i]) for i in items])
            assert failures[f"success_{q}"] == pytest.approx(rate)


def test_gains_of_the_expert_over_random_are_significant(expert_rows, random_rows, config) -> None:
    rows = expert_rows + random_rows
    summary = summarize_eval(rows, config)
    gains = gains_vs_base(summary, "random", rows=rows, config=config)
    assert [(g["model"], g["set"]) for g in gains] == [("expert", s) for s in ("heldout", "failures", "retention")]
    for g in gains:
        assert g["n_paired"] > 0
        assert 0 < g["success_gain_low"] <= g["success_gain"] <= g["success_gain_high"]
        assert 0 < g["score_gain_low"] <= g["score_gain"]
        assert 0 < g["success_gain_mde"] < 1 and g["mde_alpha"] == pytest.approx(1 - config.confidence)
    unpaired = gains_vs_base(summary, "random")
    assert unpaired[0]["success_gain"] == pytest.approx(gains[0]["success_gain"])
    assert math.isnan(unpaired[0]["success_gain_low"]) and unpaired[0]["n_paired"] == 0
    assert math.isnan(unpaired[0]["success_gain_mde"])
    with pytest.raises(ValueError, match="base model 'base' is not in the summary"):
        gains_vs_base(summary, "base")


def test_compare_to_base_plays_every_model_on_the_same_items(small_shop, sets, config, expert_rows,
                                                              random_rows) -> None:
    from teachable.teach import compare_to_base

    models = {"random": RandomPolicy(), "expert": ExpertPolicy(small_shop)}
    both = compare_to_base(small_shop, models, sets, config, base="random")
    assert both.rows == random_rows + expert_rows  # the same seeds as each model alone
    want = gains_vs_base(summarize_eval(both.rows, config), "random", rows=both.rows, config=config)
    assert both.gains == want and [g["model"] for g in both.gains] == ["expert"] * 3
    later = compare_to_base(small_shop, {"expert": models["expert"]}, sets, config, measured=random_rows, base="random")
    assert later.gains == both.gains and later.summary == both.summary
    with pytest.raises(ValueError, match="base model 'base' is not in the summary"):
        compare_to_base(small_shop, {"expert": models["expert"]}, sets, config)


def test_csvs_have_the_expected_columns(tmp_path, expert_rows, random_rows, config) -> None:
    rows = expert_rows + random_rows
    summary = summarize_eval(rows, config)
    gains = gains_vs_base(summary, "random", rows=rows, config=config)
    paths = write_eval_csvs(rows, summary, tmp_path / "eval", gains=gains)
    assert {k: p.name for k, p in paths.items()} == {
        "heldout": "eval_heldout.csv", "failures": "eval_failures.csv", "retention": "eval_retention.csv",
        "summary": "eval_summary.csv"}
    for name in ("heldout", "failures", "retention"):
        frame = pd.read_csv(paths[name])
        assert tuple(frame.columns) == ROW_COLUMNS
        assert set(frame["set"]) == {name}
        assert len(frame) == sum(r["set"] == name for r in rows)
    table = pd.read_csv(paths["summary"])
    assert list(table["model"]) == ["expert", "random"]
    for name in ("heldout", "failures", "retention"):
        for stat in ("success", "success_low", "success_high", "score", "score_low", "score_high", "n_items",
                     "success_gain", "success_gain_low", "success_gain_high", "success_gain_mde", "score_gain"):
            assert f"{name}_{stat}" in table.columns
    assert f"failures_success_{QUADRANTS[0]}" in table.columns
    assert table.loc[0, "heldout_success"] == 1.0 and pd.isna(table.loc[1, "heldout_success_gain"])
    empty = write_eval_csvs([r for r in rows if r["set"] == "heldout"], summary, tmp_path / "only")
    assert tuple(pd.read_csv(empty["failures"]).columns) == ROW_COLUMNS


def test_gain_heatmap_is_quadrant_by_format_with_blanks() -> None:
    assert parse_cell("Q2_highU_lowL__hint") == ("Q2_highU_lowL", "hint")
    assert parse_cell("Q3__demo") == ("Q3_lowU_lowL", "demo")
    assert parse_cell("B1_uniform") is None and parse_cell("Q1_highU_highL__poem") is None
    gains = [{"model": f"{q}__{f}", "set": "failures", "success_gain": 0.1 * i, "n_paired": 3}
             for i, (q, f) in enumerate((q, f) for q in QUADRANTS for f in FORMATS) if i % 5]
    gains += [{"model": "B2_all", "set": "failures", "success_gain": 0.9, "n_paired": 3},
              {"model": f"{QUADRANTS[0]}__demo", "set": "heldout", "success_gain": -1.0, "n_paired": 3}]
    fig = gain_heatmap(gains)
    (ax,) = [a for a in fig.axes if a.images and a.get_ylabel() == "quadrant"]
    values = ax.images[0].get_array()
    assert values.shape == (len(QUADRANTS), len(FORMATS)) == (4, 3)
    assert int(np.ma.getmaskarray(values).sum()) == 3  # cells 0, 5 and 10 are missing
    assert len(ax.texts) == 9
    assert [t.get_text() for t in ax.yaxis.get_ticklabels()] == list(QUADRANTS)
    wide = summary_table([], gains)
    assert gain_matrix(wide, "failures_success_gain").equals(gain_matrix(gains))
    blank = gain_heatmap([{"model": "base", "set": "failures", "success_gain": 0.0}])
    assert np.ma.getmaskarray(blank.axes[0].images[0].get_array()).all()
    with pytest.raises(ValueError, match="metric 'failures_nonsense'"):
        gain_heatmap(gains, metric="failures_nonsense")
