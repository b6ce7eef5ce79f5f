"""The pipeline: its parameters, which run is reused and why not, and two pipelines on the tiny
setup through `mlflow.projects.run` (the second reuses every phase; a changed parameter reruns
that phase and the ones downstream only)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from entry_points import runs as run_store
from entry_points.pipeline import (
    PHASES,
    PipelineConfig,
    PipelineError,
    missing_entry_points,
    phase_params,
    project_parameters,
    resolve_inputs,
)
from entry_points.reuse import (
    PIPELINE_UPSTREAM_TAG,
    expected_params,
    find_reusable,
    mismatch,
    same_value,
)
from entry_points.runs import CODE_VERSION_TAG, PHASE_TAG, code_version, setup_tracking


def test_config_phases_and_overrides() -> None:
    config = PipelineConfig(phases="report, label,rollouts", overrides="label.n_min=4; rollouts.student=random")
    assert config.phase_list() == ["rollouts", "label", "report"]
    assert PipelineConfig().phase_list() == list(PHASES)
    assert config.override_map() == {"label": {"n_min": "4"}, "rollouts": {"student": "random"}}
    with pytest.raises(ValueError, match=r"phases: unknown \['labels'\]"):
        PipelineConfig(phases="labels")
    with pytest.raises(ValueError, match="'label.n_min' is not phase.parameter=value"):
        PipelineConfig(overrides="label.n_min")
    with pytest.raises(ValueError, match="'lable.n_min=4' names an unknown phase"):
        PipelineConfig(overrides="lable.n_min=4")


def test_phase_parameters_sizes_inputs_and_overrides() -> None:
    declared = project_parameters()
    config = PipelineConfig(data_dir="/data", seed=3, label_max_snapshots=48, matrix_epochs=2.0, eval_heldout_goals=32,
                            mine_include_search_steps=False, overrides="label.n_min=4", policy_batch=128)
    label = phase_params(config, "label", declared["label"], {"mine_run": "m" * 32, "student": "s" * 32})
    assert label["max_snapshots"] == "48" and label["n_min"] == "4" and label["mine_run"] == "m" * 32
    assert label["data_dir"] == "/data" and label["seed"] == "3"
    assert phase_params(config, "mine", declared["mine"], {})["include_search_steps"] == "false"
    recovery = phase_params(config, "recovery", declared["recovery"], {})
    assert recovery["epochs"] == "2.0" and recovery["heldout_goals"] == "32"  # the matrix's recipe, evaluate's sets
    assert "data_dir" not in phase_params(config, "mine", declared["mine"], {})  # mine has no data_dir
    for phase in ("rollouts", "label", "micro_train", "evaluate", "select", "recovery"):  # every phase that rolls out
        assert phase_params(config, phase, declared[phase], {})["policy_batch"] == "128"
    assert "policy_batch" not in phase_params(config, "student", declared["student"], {})
    with pytest.raises(PipelineError, match=r"phase mine has no parameters \['n_min'\]"):
        phase_params(PipelineConfig(overrides="mine.n_min=4"), "mine", declared["mine"], {})


def test_a_phase_without_an_entry_point_is_named(tmp_path: Path) -> None:
    (tmp_path / "entry_points").mkdir()
    (tmp_path / "entry_points" / "student.py").write_text("")
    (tmp_path / "entry_points" / "select.py").write_text("")
    (tmp_path / "MLproject").write_text("entry_points:\n  student:\n    parameters: {}\n  rollouts:\n    command: x\n")
    assert missing_entry_points(["student", "rollouts", "select"], tmp_path) == ["rollouts", "select"]
    assert missing_entry_points(["student", "rollouts", "mine", "label", "recovery", "report"]) == []


def test_same_value() -> None:
    assert same_value("200", "200.0") and same_value("True", "true") and same_value("", "") and same_value("''", "")
    assert same_value("'a b'", "a b")
    assert not same_value("1,2", "1,2,3") and not same_value("0.5", "0.25") and not same_value("yes", "true")


def logged(phase: str, params: dict[str, str], tags: dict[str, str] | None = None, status: str = "FINISHED") -> str:
    with mlflow.start_run() as run:
        mlflow.set_tags({PHASE_TAG: phase, CODE_VERSION_TAG: code_version(), **(tags or {})})
        mlflow.log_params(params)
    if status != "FINISHED":
        MlflowClient().set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_reuse_needs_phase_params_code_and_upstream(mlflow_store: str) -> None:
    exp = setup_tracking()
    rollouts = "r" * 32
    params = expected_params("mine", {"rollouts_run": rollouts, "offsets": "1,2"})
    assert params["offsets"] == "1,2" and params["include_search_steps"] == "true"
    as_mlflow_logs = {**params, "max_per_trajectory": "0.0"}  # numbers as the MLproject default spells them
    good = logged("mine", as_mlflow_logs, {"upstream.rollouts": rollouts})
    logged("mine", {**params, "offsets": "1"}, {"upstream.rollouts": rollouts})
    logged("mine", params, {"upstream.rollouts": "x" * 32})
    logged("mine", params, {"upstream.rollouts": rollouts}, status="FAILED")
    logged("label", params, {"upstream.rollouts": rollouts})
    found = find_reusable([exp], "mine", params, {"rollouts": rollouts}, code_version())
    assert found is not None and found.info.run_id == good
    assert find_reusable([exp], "mine", params, {"rollouts": rollouts}, "another-version") is None
    assert find_reusable([exp], "mine", {**params, "offsets": "2"}, {"rollouts": rollouts}, code_version()) is None
    run = MlflowClient().get_run(good)
    assert mismatch(run, params, {"rollouts": "x" * 32}, code_version()).startswith("upstream rollouts")
    assert mismatch(run, params, {"rollouts": rollouts}, "v0") == "another code version"
    # how a run was observed changes none of its results: system metrics off reuses a run that had them on
    assert params["system_metrics"] == "true"
    assert mismatch(run, {**params, "system_metrics": "false"}, {"rollouts": rollouts}, code_version()) is None
    promoted = logged("promote", {"version": ""}, {PIPELINE_UPSTREAM_TAG: json.dumps({"train_predictor": rollouts})})
    assert find_reusable([exp], "promote", {"version": ""}, {"train_predictor": rollouts}, code_version()).info.run_id \
        == promoted


def test_missing_upstream_is_an_error_unless_optional(mlflow_store: str) -> None:
    exp = setup_tracking()
    with pytest.raises(PipelineError, match="phase label needs a mine run .*add mine to phases"):
        resolve_inputs("label", {"student": "s" * 32}, set(), exp)
    assert resolve_inputs("label", {"student": "s" * 32}, {"mine_run"}, exp) == ({"student": "s" * 32},
                                                                                  {"student": "s" * 32})
    label = logged("label", {})
    params, upstream = resolve_inputs("report", {}, set(), exp)
    assert params["label_run"] == label and params["select_run"] == "none" and upstream == {"label": label}


def test_a_phase_not_in_the_tree_fails_before_anything_runs(mlflow_store: str, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    from entry_points import pipeline

    (tmp_path / "MLproject").write_text("entry_points:\n  student:\n    parameters: {}\n")
    real = pipeline.missing_entry_points
    monkeypatch.setattr(pipeline, "missing_entry_points", lambda phases: real(phases, tmp_path))
    with pytest.raises(PipelineError, match=r"phases \['student', 'rollouts'\] have no entry point in this tree"):
        pipeline.main(["--phases", "student,rollouts"])
    runs = MlflowClient().search_runs([setup_tracking()])
    assert [r.data.tags[PHASE_TAG] for r in runs] == ["pipeline"] and runs[0].info.status == "FAILED"


def phase_runs(exp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in MlflowClient().search_runs([exp], order_by=["attributes.start_time ASC"]):
        out.setdefault(r.data.tags.get(PHASE_TAG, ""), []).append(r.info.run_id)
    return out


def test_pipeline_twice_reuses_every_phase_and_reruns_downstream_of_a_change(mlflow_store: str,
                                                                             small_data_dir: Path) -> None:
    from entry_points import pipeline

    args = ["--data_dir", str(small_data_dir), "--phases", "rollouts,mine,label,report", "--rollouts_n_goals", "8",
            "--allow_degenerate", "true",
            "--mine_offsets", "1,2", "--mine_include_search_steps", "false", "--label_max_snapshots", "3",
            "--label_n_max", "2",
            "--overrides", "rollouts.student=random; rollouts.max_steps=8; label.student=random; label.n_min=2; "
                           "label.rollout_batch=2; label.max_steps=8; report.figure_formats=png; report.table_formats=csv"]
    pipeline.main(args)
    exp = run_store.setup_tracking()
    client = MlflowClient()
    first = phase_runs(exp)
    assert {p: len(ids) for p, ids in first.items()} == {"pipeline": 1, "rollouts": 1, "mine": 1, "label": 1, "report": 1}
    parent = client.get_run(first["pipeline"][0])
    assert parent.data.metrics["n_ran"] == 4 and parent.data.metrics["n_reused"] == 0
    lineage = {"rollouts": {"rollouts": "output"}, "mine": {"rollouts": "training", "failure_snapshots": "output"},
               "label": {"failure_snapshots": "training", "labeled_snapshots": "output"},
               "report": {"labeled_snapshots": "evaluation"}}
    for phase, datasets in lineage.items():  # each records file a dataset of the runs that make and read it
        run = client.get_run(first[phase][0])
        assert run.info.run_name == phase
        assert {i.dataset.name: i.tags[0].value for i in run.inputs.dataset_inputs} == datasets, phase
    label = client.get_run(first["label"][0])
    assert label.data.params["mine_run"] == first["mine"][0] and label.data.params["max_snapshots"] == "3"
    assert label.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert json.loads(label.data.tags[PIPELINE_UPSTREAM_TAG]) == {"mine": first["mine"][0]}
    report = client.get_run(first["report"][0])
    assert report.data.params["label_run"] == first["label"][0] and report.data.params["evaluate_run"] == "none"
    assert "no successes" in report.data.tags["report.warnings"]  # the random student is shown as degenerate
    assert parent.data.tags["teachable.allow_degenerate"] == "true" and "no successes" in parent.data.tags["teachable.degenerate"]
    assert {a.path for a in client.list_artifacts(report.info.run_id, "figures")} == {
        "figures/quadrant_scatter.png", "figures/elp_by_quadrant.png"}

    pipeline.main(args)
    second = phase_runs(exp)
    assert {p: ids for p, ids in second.items() if p != "pipeline"} == {p: ids for p, ids in first.items()
                                                                        if p != "pipeline"}
    again = client.get_run(second["pipeline"][1])
    assert again.data.metrics["n_reused"] == 4 and again.data.metrics["n_ran"] == 0
    assert all(again.data.tags[f"pipeline.{p}"] == first[p][0] for p in ("rollouts", "mine", "label", "report"))
    assert again.data.tags["pipeline.label.status"] == "reused"

    changed = list(args)
    changed[changed.index("--label_n_max") + 1] = "3"
    pipeline.main(changed)
    third = phase_runs(exp)
    assert third["rollouts"] == first["rollouts"] and third["mine"] == first["mine"]
    assert len(third["label"]) == 2 and len(third["report"]) == 2
    last = client.get_run(third["pipeline"][2])
    assert last.data.tags["pipeline.mine.status"] == "reused" and last.data.tags["pipeline.label.status"] == "ran"
    assert client.get_run(third["report"][1]).data.params["label_run"] == third["label"][1]


def test_the_competence_gate_stops_before_label(mlflow_store: str, small_data_dir: Path) -> None:
    """A student that never succeeds (the random policy) is not labeled: the pipeline says why and what to do."""
    from entry_points import pipeline

    args = ["--data_dir", str(small_data_dir), "--phases", "rollouts,mine,label", "--rollouts_n_goals", "6",
            "--mine_offsets", "1", "--overrides", "rollouts.student=random; rollouts.max_steps=6; label.student=random"]
    with pytest.raises(pipeline.PipelineError, match=r"succeeded on 0\.0% of their episodes.*allow_degenerate=true"):
        pipeline.main(args)
    runs = phase_runs(run_store.setup_tracking())
    assert "label" not in runs and len(runs["rollouts"]) == 1
    rollouts = MlflowClient().get_run(runs["rollouts"][0])
    assert rollouts.data.tags["teachable.competence"] == "no_successes"


def test_student_competence_band() -> None:
    from teachable.student import competence

    assert competence(0.0, 25, 0.05, 0.95)["status"] == "too_weak"
    assert "train longer" in competence(0.0, 25, 0.05, 0.95)["advice"]
    assert competence(1.0, 25, 0.05, 0.95)["status"] == "too_strong"
    assert competence(0.3, 25, 0.05, 0.95)["status"] == "in_band"
    assert competence(None, 0, 0.05, 0.95)["status"] == "unmeasured"
