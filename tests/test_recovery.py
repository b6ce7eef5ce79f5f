"""Recovery trajectories: which snapshots are continued, the expert's step-level pairs, and the
`recovery` phase end to end (export, adapter, registry, evaluation)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from teachable.mining import mine_failures
from teachable.policy import ExpertPolicy, RandomPolicy
from teachable.prompting import render_prompt
from teachable.records import LabeledSnapshot, read_jsonl
from teachable.recovery import (
    RecoveryError,
    RecoveryExample,
    expert_continuations,
    recovery_examples,
    recovery_snapshots,
)
from teachable.rollouts import goal_specs, run_episodes, snapshot_context


def labeled(snapshot_id: str, value: float | None, step_index: int = 1) -> LabeledSnapshot:
    leverage = {} if value is None else {"L_upper": {"value": value, "low": value, "high": value}}
    return LabeledSnapshot(snapshot_id=snapshot_id, traj_id="t", goal_idx=0, goal={}, step_index=step_index, state="",
                           observation="", valid_actions=[], has_search_bar=False, history=[], student_action="",
                           final_reward=0.0, steps_to_end=0, leverage=leverage)


def test_snapshots_are_chosen_by_l_upper_highest_first() -> None:
    records = [labeled("a", 0.4), labeled("b", 0.9), labeled("c", 0.6), labeled("d", None), labeled("e", 0.9),
               labeled("f", 1.0, step_index=15)]
    assert [r.snapshot_id for r in recovery_snapshots(records, 0.5)] == ["f", "b", "e", "c"]
    assert [r.snapshot_id for r in recovery_snapshots(records, 0.5, max_snapshots=2, max_steps=15)] == ["b", "e"]
    assert [r.snapshot_id for r in recovery_snapshots(records, 0.0, max_steps=15)] == ["b", "e", "c", "a"]
    with pytest.raises(RecoveryError, match=r"L_upper >= 0.95 \(the highest is 0.90 over 6 snapshots\); lower min_l_upper"):
        recovery_snapshots(records, 0.95, max_steps=15)
    with pytest.raises(RecoveryError, match="none has an L_upper label"):
        recovery_snapshots([labeled("d", None)], 0.5)


@pytest.mark.parametrize(("name", "value", "match"), [
    ("min_l_upper", 1.5, "min_l_upper .* \\[-1, 1\\]"), ("max_snapshots", -1, "max_snapshots must be >= 0"),
    ("learning_rate", 0.0, "learning_rate=0.0 must be > 0"), ("heldout_goals", -1, "heldout_goals must be >= 0")])
def test_config_validation(name: str, value: float, match: str, capsys) -> None:
    from entry_points import recovery

    with pytest.raises(SystemExit) as exit_info:
        recovery.main([f"--{name}", str(value)])  # every config of the phase checks its own values
    assert exit_info.value.code == 2
    assert re.search(match, capsys.readouterr().err)


@pytest.fixture(scope="module")
def failure_snapshots(small_shop) -> list[LabeledSnapshot]:
    """Early snapshots (one, two and three steps in) of the random policy's failed episodes."""
    train = small_shop.split_goal_indices("train")
    trajectories = run_episodes(small_shop, RandomPolicy(), goal_specs(train[:12], seed=0, split="train"), batch_size=12)
    snaps, _ = mine_failures(trajectories)
    return [LabeledSnapshot(**dataclasses.asdict(s), leverage={"L_upper": {"value": 1.0}})
            for s in snaps if s.step_index in (1, 2, 3) and not s.has_search_bar]


def test_expert_continuations_become_step_level_pairs(small_shop, failure_snapshots) -> None:
    snaps = failure_snapshots[:8]
    continuations = expert_continuations(small_shop, snaps, max_steps=15, batch_size=8)
    assert [t.start_state for t in continuations] == [s.state for s in snaps]
    examples, counts = recovery_examples(snaps, continuations)
    recovered = [(s, t) for s, t in zip(snaps, continuations, strict=True) if t.success]
    assert recovered and counts["n_recovered"] == len(recovered) and counts["n_snapshots"] == len(snaps)
    assert counts["n_steps"] == sum(t.n_steps for _, t in recovered)
    snap, trajectory = recovered[0]
    mine = [e for e in examples if e.snapshot_id == snap.snapshot_id]
    first = ExpertPolicy(small_shop).decide(snapshot_context(snap)).action
    assert trajectory.steps[0].action == first
    assert mine[0].step == 0 and mine[0].action == first and mine[0].completion == " " + first
    assert mine[0].prompt.startswith(f"Task: {snap.goal['instruction_text']}")
    assert mine[0].prompt.endswith("Action:") and f"Observation: {snap.observation}" in mine[0].prompt
    if snap.history:
        assert " | ".join(snap.history[-4:]) in mine[0].prompt
    assert mine[-1].action == "click[buy now]" and len(mine) == trajectory.n_steps
    assert all(e.l_upper == 1.0 for e in examples)
    assert len({(e.prompt, e.completion) for e in examples}) == len(examples)


def test_overlapping_continuations_keep_each_pair_once(small_shop, failure_snapshots) -> None:
    snap = failure_snapshots[0]
    twice = [snap, dataclasses.replace(snap, snapshot_id=snap.snapshot_id + "-copy")]
    continuations = expert_continuations(small_shop, twice, max_steps=15)
    examples, counts = recovery_examples(twice, continuations, render=render_prompt)
    assert counts["n_steps"] == 2 * continuations[0].n_steps
    assert {e.snapshot_id for e in examples} == {snap.snapshot_id} and counts["n_examples"] == len(examples)


def test_recovery_phase_trains_registers_and_evaluates(mlflow_store: str, small_data_dir: Path, tiny_student: str,
                                                       one_torch_thread) -> None:
    from entry_points import label, mine, recovery, rollouts

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "10", "--max_steps", "8"])
    mine.main(["--offsets", "1,2,3", "--include_search_steps", "false"])
    label.main(["--data_dir", str(small_data_dir), "--student", tiny_student, "--max_snapshots", "6",
                "--n_min", "2", "--n_max", "2", "--rollout_batch", "2", "--max_steps", "10"])
    recovery.main(["--data_dir", str(small_data_dir), "--min_l_upper", "0.5", "--train_steps", "2",
                   "--train_batch_size", "4", "--heldout_goals", "2", "--failure_snapshots", "3", "--retention_goals", "0",
                   "--episodes_per_item", "1", "--max_steps", "10", "--n_boot", "20"])
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name("teachable").experiment_id
    run = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'recovery'")[0]
    assert run.info.status == "FINISHED" and "teachable.code_version" in run.data.tags
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recovery_trajectories.jsonl", "adapter", "eval_summary.csv", "eval_failures.csv"} <= names
    examples = read_jsonl(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                              artifact_path="recovery_trajectories.jsonl"), RecoveryExample)
    m = run.data.metrics
    assert len(examples) == m["n_examples"] > 0 and m["n_recovered"] >= 1
    assert all(e.l_upper >= 0.5 and e.completion == " " + e.action for e in examples)
    assert {"failures_success/base", "failures_success/recovery", "failures_success_gain/recovery",
            "eval_failures_success", "final_train_loss"} <= set(m)
    (version,) = client.search_model_versions("name='teachable-adapter'")
    assert version.run_id == run.info.run_id and version.tags["kind"] == "recovery"
    assert run.data.tags["upstream.label"] == client.search_runs(
        [exp], filter_string="tags.`teachable.phase` = 'label'")[0].info.run_id
