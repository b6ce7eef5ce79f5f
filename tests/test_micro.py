"""Micro-training validation: stratified sampling, before/after success, Spearman; the entry point."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from teachable.label.quadrant import QUADRANTS
from teachable.records import LabeledSnapshot, read_jsonl
from teachable.training.micro import MicroConfig, stratified_sample


def record(i: int, quadrant: str | None, teacher: bool = True) -> LabeledSnapshot:
    return LabeledSnapshot(snapshot_id=f"s{i}", traj_id="t", goal_idx=0, goal={}, step_index=0, state="", observation="",
                           valid_actions=[], has_search_bar=False, history=[], student_action="", final_reward=0.0,
                           steps_to_end=0, quadrant=quadrant, teacher={"action": "x", "hint": "h"} if teacher else None)


def test_stratified_sample() -> None:
    records = [record(i, QUADRANTS[i % 4]) for i in range(20)] + [record(99, None), record(98, QUADRANTS[0], False)]
    picked = stratified_sample(records, 2, seed=0)
    assert [r.quadrant for r in picked] == [q for q in QUADRANTS for _ in range(2)]
    assert picked == stratified_sample(records, 2, seed=0) and picked != stratified_sample(records, 2, seed=1)
    assert len(stratified_sample(records, 10, seed=0)) == 20
    with pytest.raises(ValueError, match="per_quadrant"):
        MicroConfig(per_quadrant=0)


def test_micro_train_end_to_end(mlflow_store: str, small_data_dir: Path, tiny_student: str) -> None:
    from entry_points import label, micro_train, mine, rollouts

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "12", "--max_steps", "8"])
    mine.main(["--offsets", "1,2", "--include_search_steps", "false"])
    label.main(["--data_dir", str(small_data_dir), "--student", tiny_student, "--max_snapshots", "8",
                "--n_min", "4", "--n_max", "4", "--rollout_batch", "4", "--max_steps", "8"])
    micro_train.main(["--data_dir", str(small_data_dir), "--per_quadrant", "2", "--train_steps", "1", "--n_rollouts", "4",
                      "--max_steps", "8", "--n_boot", "50"])
    client = MlflowClient()
    run = client.search_runs([mlflow.get_experiment_by_name("teachable").experiment_id],
                             filter_string="tags.`teachable.phase` = 'micro_train'")[0]
    assert run.info.status == "FINISHED" and run.data.metrics["micro_n"] >= 3
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="micro_training_results.json")
    import json

    result = json.loads(Path(path).read_text())
    assert len(result["snapshots"]) == run.data.metrics["micro_n"]
    spearman = result["overall"]["spearman"]  # None (NaN) when every gain is equal, e.g. all 0
    assert spearman is None and "micro_spearman" not in run.data.metrics or \
        run.data.metrics["micro_spearman"] == pytest.approx(spearman)
    for row in result["snapshots"]:
        assert row["micro_gain"] == pytest.approx(row["p_after"] - row["p_before"])
        assert row["format"] in ("demo", "contrast", "hint")
    labeled = read_jsonl(mlflow.artifacts.download_artifacts(
        run_id=run.data.tags["upstream.label"], artifact_path="labeled_snapshots.jsonl"), LabeledSnapshot)
    assert {r["snapshot_id"] for r in result["snapshots"]} <= {r.snapshot_id for r in labeled}
