"""The training matrix: cell sampling, 14 nested runs with registered adapters, resume."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from teachable.label.quadrant import QUADRANTS
from teachable.records import LabeledSnapshot
from teachable.training.matrix import CELLS, EmptyCellError, MatrixConfig, cell_examples


def record(i: int, quadrant: str, route: str = "none") -> LabeledSnapshot:
    return LabeledSnapshot(snapshot_id=f"s{i}", traj_id="t", goal_idx=0, goal={}, step_index=0, state="", observation="",
                           valid_actions=[], has_search_bar=False, history=[], student_action="", final_reward=0.0,
                           steps_to_end=0, quadrant=quadrant, route=route, teacher={"action": "x", "hint": "h"})


def test_cells_and_sampling() -> None:
    assert len(CELLS) == 14 and CELLS[0] == "Q1_highU_highL__demo" and CELLS[-2:] == ("B1_uniform", "B2_all")
    records = [record(i, QUADRANTS[i % 2], route=("hint" if i % 3 == 0 else "none")) for i in range(10)]
    pairs, info = cell_examples(records, "Q1_highU_highL__contrast", 8, seed=0)
    assert len(pairs) == 8 and info["with_replacement"] and info["n_available"] == 5
    assert all(r.quadrant == QUADRANTS[0] and f == "contrast" for r, f in pairs)
    pairs, info = cell_examples(records, "Q2_highU_lowL__hint", 3, seed=0)
    assert not info["with_replacement"] and len({r.snapshot_id for r, _ in pairs}) == 3
    b2, info = cell_examples(records, "B2_all", 3, seed=0)
    assert len(b2) == 10 and [f for r, f in b2] == ["hint" if int(r.snapshot_id[1:]) % 3 == 0 else "demo" for r, _ in b2]
    b1, _ = cell_examples(records, "B1_uniform", 30, seed=0)
    assert {f for _, f in b1} == {"demo", "contrast", "hint"}
    assert cell_examples(records, "B1_uniform", 30, seed=0) == cell_examples(records, "B1_uniform", 30, seed=0)
    with pytest.raises(EmptyCellError, match="no labeled snapshot .* quadrant Q3_lowU_lowL"):
        cell_examples(records, "Q3_lowU_lowL__demo", 4, seed=0)
    assert MatrixConfig(cells="B2_all, Q1_highU_highL__hint").cell_list() == ["Q1_highU_highL__hint", "B2_all"]
    with pytest.raises(ValueError, match="unknown cells"):
        MatrixConfig(cells="Q5__demo")


def test_matrix_creates_14_nested_runs_and_resumes(mlflow_store: str, small_data_dir: Path, tiny_student: str) -> None:
    from entry_points import evaluate, label, mine, rollouts, train_matrix

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "16", "--max_steps", "8"])
    mine.main(["--offsets", "1,2", "--include_search_steps", "false"])
    label.main(["--data_dir", str(small_data_dir), "--student", tiny_student, "--max_snapshots", "16",
                "--n_min", "2", "--n_max", "2", "--rollout_batch", "2", "--max_steps", "8"])
    args = ["--examples_per_cell", "4", "--train_steps", "2", "--train_batch_size", "4"]
    train_matrix.main(args)
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name("teachable").experiment_id
    parent = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'train_matrix'")[0]
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["cell"] for c in children) == sorted(CELLS)
    assert all(c.info.run_name == c.data.tags["cell"] for c in children) and parent.info.run_name == "train_matrix"
    assert {i.dataset.name: i.tags[0].value for i in parent.inputs.dataset_inputs} == {"labeled_snapshots": "training"}
    summary = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="training_summary.json")).read_text())
    assert set(summary["cells"]) == set(CELLS) and summary["base_model"] == tiny_student
    versions = client.search_model_versions("name='teachable-adapter'")
    by_cell = {v.tags["cell"]: v for v in versions}
    for child in children:
        cell = child.data.tags["cell"]
        if child.info.status == "FINISHED":
            assert by_cell[cell].run_id == child.info.run_id and "train_loss" in child.data.metrics
            assert summary["cells"][cell]["version"] == str(by_cell[cell].version)
        else:
            assert child.info.status == "FAILED" and "error" in child.data.tags and cell not in by_cell
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) >= 3 and parent.data.metrics["n_cells_finished"] == len(finished)
    train_matrix.main(args)  # same parameters: finished cells are reused, not retrained
    again = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'train_matrix'")[0]
    new_children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{again.info.run_id}'")
    assert len(new_children) == len(children) - len(finished)
    assert len(client.search_model_versions("name='teachable-adapter'")) == len(finished)
    evaluate.main(["--data_dir", str(small_data_dir), "--heldout_goals", "3", "--failure_snapshots", "4",
                   "--retention_goals", "0", "--episodes_per_item", "1", "--max_steps", "8", "--n_boot", "50"])
    ev = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'evaluate'")[0]
    assert ev.info.status == "FINISHED" and ev.data.tags["upstream.train_matrix"] == again.info.run_id
    names = {a.path for a in client.list_artifacts(ev.info.run_id)}
    assert {"eval_heldout.csv", "eval_failures.csv", "eval_retention.csv", "eval_summary.csv"} <= names
    assert "failures_success/base" in ev.data.metrics
    assert {i.dataset.name: i.tags[0].value for i in ev.inputs.dataset_inputs} == {  # the failure and retention sets
        "labeled_snapshots": "evaluation", "rollouts": "evaluation"}
    one = finished[0]
    assert "eval_failures_success" in client.get_run(one.info.run_id).data.metrics
    cell = one.data.tags["cell"]
    assert f"failures_success/{cell}" in ev.data.metrics
    version = by_cell[cell].version
    evaluate.main(["--data_dir", str(small_data_dir), "--adapter", f"models:/teachable-adapter/{version}",
                   "--heldout_goals", "2", "--failure_snapshots", "2", "--retention_goals", "0",
                   "--episodes_per_item", "1", "--max_steps", "8", "--n_boot", "20"])
    single = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'evaluate'",
                                order_by=["attributes.start_time DESC"])[0]
    assert {k.split("/")[1] for k in single.data.metrics if "/" in k and not k.startswith("system/")} == {"base", cell}


def test_evaluate_refuses_an_unfinished_matrix_run(mlflow_store: str) -> None:
    from entry_points import evaluate
    from entry_points.cli import UpstreamError
    from entry_points.runs import PHASE_TAG, setup_tracking

    setup_tracking()
    with mlflow.start_run() as run:
        mlflow.set_tag(PHASE_TAG, "train_matrix")
    MlflowClient().set_terminated(run.info.run_id, status="FAILED")
    with pytest.raises(UpstreamError, match="FAILED, not FINISHED"):
        evaluate.main(["--matrix_run", run.info.run_id])
