"""The MLflow glue (tracking store, config parsing, phase runs, upstream resolution) and one
end-to-end smoke test per phase through `mlflow.projects.run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from entry_points import cli, upstream
from entry_points import runs as phase_runs
from entry_points.cli import (
    ShopArgs,
    UpstreamError,
    config_fields,
    config_of,
    config_params,
    parse_configs,
)
from entry_points.runs import start_phase
from entry_points.upstream import resolve_model, resolve_upstream
from teachable.records import Snapshot, Trajectory, read_jsonl

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Demo:
    name: str = field(default="x", metadata={"help": "a name"})
    n: int = 3
    rate: float = 0.5
    flag: bool = False
    maybe: int | None = None

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


def test_tracking_uri_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert phase_runs.tracking_uri() == f"sqlite:///{ROOT / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/x.db")
    assert phase_runs.tracking_uri() == "sqlite:////tmp/x.db"
    assert phase_runs.artifact_root("sqlite:////tmp/x.db") == "file:///tmp/mlruns"


def test_parse_configs_types_and_errors(capsys: pytest.CaptureFixture) -> None:
    assert parse_configs((Demo,), []) == (Demo(),)
    (c,) = parse_configs((Demo,), ["--name", "y", "--n", "200.0", "--rate", "1e-3", "--flag", "true", "--maybe", "4"])
    assert c == Demo("y", 200, 1e-3, True, 4)
    assert parse_configs((Demo,), ["--maybe", ""])[0].maybe is None
    for argv in (["--n", "2.5"], ["--flag", "maybe"], ["--n", "-1"], ["--nope", "1"]):
        with pytest.raises(SystemExit):
            parse_configs((Demo,), argv)
    assert "n must be >= 0" in capsys.readouterr().err


@dataclass
class Other:
    n: int = 100
    seed: int = 0


@dataclass
class Seeded:
    seed: int = 0
    lr: float = 0.1


def test_composed_configs_share_a_flag_and_take_instance_defaults(capsys: pytest.CaptureFixture) -> None:
    shop, other, seeded = parse_configs((ShopArgs, Other, Seeded(lr=0.5)), ["--seed", "7", "--data_dir", "/d"])
    assert (shop.data_dir, other.seed, seeded.seed, seeded.lr) == ("/d", 7, 7, 0.5)  # one --seed sets both
    assert list(config_fields((ShopArgs, Other, Seeded))) == ["data_dir", "n", "seed", "lr"]
    assert config_params((shop, other, seeded)) == {"data_dir": "/d", "n": "100", "seed": "7", "lr": "0.5"}
    with pytest.raises(TypeError, match="different defaults"):
        config_fields((Other, Seeded(seed=1)))
    assert config_of((shop, other, seeded), Seeded) is seeded
    with pytest.raises(LookupError, match="0 configs of type Demo"):
        config_of((shop, other, seeded), Demo)
    with pytest.raises(SystemExit):
        parse_configs((Seeded, Demo), ["--n", "-1"])  # each config checks its own values
    assert "n must be >= 0" in capsys.readouterr().err


def finished_run(phase: str, status: str = "FINISHED") -> str:
    with mlflow.start_run() as run:
        mlflow.set_tag(phase_runs.PHASE_TAG, phase)
    if status != "FINISHED":
        MlflowClient().set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def test_resolve_upstream(mlflow_store: str) -> None:
    phase_runs.setup_tracking()
    with pytest.raises(UpstreamError, match="no FINISHED rollouts run.*mlflow run . -e rollouts"):
        resolve_upstream("rollouts", "latest", "rollouts_run")
    old = finished_run("rollouts")
    new = finished_run("rollouts")
    finished_run("rollouts", status="FAILED")
    other = finished_run("mine")
    with mlflow.start_run():
        assert resolve_upstream("rollouts", "latest", "rollouts_run").run_id == new
        assert resolve_upstream("rollouts", old, "rollouts_run").run_id == old
        tags = mlflow.get_run(mlflow.active_run().info.run_id).data.tags
    assert tags["upstream.rollouts"] == old
    with pytest.raises(UpstreamError, match="is a mine run, not a rollouts run"):
        resolve_upstream("rollouts", other, "rollouts_run")
    failed = finished_run("rollouts", status="FAILED")
    with pytest.raises(UpstreamError, match="FAILED, not FINISHED"):
        resolve_upstream("rollouts", failed, "rollouts_run")
    with pytest.raises(UpstreamError, match="no run 0{32}"):
        resolve_upstream("rollouts", "0" * 32, "rollouts_run")
    with pytest.raises(UpstreamError, match="no registered model 'nope'"):
        resolve_upstream("student", "models:/nope@champion", "student")
    with pytest.raises(UpstreamError, match="expected 'latest'"):
        resolve_upstream("rollouts", "yesterday's", "rollouts_run")


def test_registered_model_resolution(mlflow_store: str, tmp_path: Path) -> None:
    phase_runs.setup_tracking()
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    with mlflow.start_run() as run:
        mlflow.set_tag(phase_runs.PHASE_TAG, "student")
        mlflow.log_artifacts(str(folder), "model")
    version = upstream.register_folder("teachable-student", run.info.run_id, "model", tags={"k": "v"})
    MlflowClient().set_registered_model_alias("teachable-student", "champion", version)
    local = resolve_model("models:/teachable-student@champion", "student")
    assert (Path(local) / "config.json").is_file()
    assert (Path(resolve_model("latest", "student")) / "config.json").is_file()
    with pytest.raises(UpstreamError, match="has no alias @nope"):
        resolve_model("models:/teachable-student@nope", "student")
    with pytest.raises(UpstreamError, match="not a local Hugging Face model folder"):
        resolve_model(str(tmp_path / "missing"), "student")
    assert resolve_model(str(folder), "student") == str(folder.resolve())


def test_a_failing_phase_is_marked_failed(mlflow_store: str) -> None:
    with pytest.raises(RuntimeError), start_phase("rollouts", Demo()) as run:
        raise RuntimeError("boom")
    got = MlflowClient().get_run(run.info.run_id)
    assert got.info.status == "FAILED" and got.data.params["n"] == "3" and got.data.params["maybe"] == ""


def run_phase(entry_point: str, **params) -> mlflow.entities.Run:
    client = MlflowClient()
    if client.get_experiment_by_name("smoke") is None:  # with its artifacts beside the store, not in the checkout
        client.create_experiment("smoke", artifact_location=phase_runs.artifact_root(phase_runs.tracking_uri()))
    submitted = mlflow.projects.run(str(ROOT), entry_point=entry_point, parameters=params, env_manager="local",
                                    experiment_name="smoke", synchronous=True)
    run = MlflowClient().get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[phase_runs.PHASE_TAG] == entry_point
    assert run.info.run_name == entry_point  # `mlflow run`'s random name replaced by the phase
    return run


def test_rollouts_then_mine_through_mlflow_projects(mlflow_store: str, small_data_dir: Path) -> None:
    rollouts = run_phase("rollouts", data_dir=str(small_data_dir), student="random", n_goals=12, test_goals=3,
                         max_steps=8, batch_size=6)
    m = rollouts.data.metrics
    assert m["n_episodes"] == 12 and m["test_n_episodes"] == 3 and 0 <= m["success_rate"] <= 1
    assert rollouts.data.params["n_goals"] == "12"
    path = mlflow.artifacts.download_artifacts(run_id=rollouts.info.run_id, artifact_path="rollouts.jsonl")
    trajs = read_jsonl(path, Trajectory)
    assert len(trajs) == 15
    mine = run_phase("mine", rollouts_run="latest", offsets="1,2")
    assert mine.data.tags["upstream.rollouts"] == rollouts.info.run_id
    snaps = read_jsonl(mlflow.artifacts.download_artifacts(run_id=mine.info.run_id,
                                                           artifact_path="failure_snapshots.jsonl"), Snapshot)
    assert len(snaps) == mine.data.metrics["n_snapshots"] > 0
    assert all(s.steps_to_end in (0, 1) for s in snaps)


def test_mine_refuses_a_run_of_another_phase(mlflow_store: str) -> None:
    mlflow.set_experiment("smoke")
    other = finished_run("mine")
    with pytest.raises(mlflow.exceptions.ExecutionException):
        mlflow.projects.run(str(ROOT), entry_point="mine", parameters={"rollouts_run": other},
                            env_manager="local", experiment_name="smoke", synchronous=True)


def test_mine_with_no_failures_fails_clearly(mlflow_store: str, small_data_dir: Path) -> None:
    from entry_points import mine, rollouts

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "expert", "--n_goals", "4", "--greedy", "true"])
    with pytest.raises(mine.NoFailuresError, match="no failure snapshots .*0 failed of 4"):
        mine.main([])
    runs = MlflowClient().search_runs([phase_runs.setup_tracking()], order_by=["attributes.start_time DESC"])
    assert [r.info.status for r in runs[:2]] == ["FAILED", "FINISHED"]


def test_rollouts_refuses_an_unknown_student(mlflow_store: str, small_data_dir: Path, tmp_path: Path) -> None:
    from entry_points import rollouts

    with pytest.raises(UpstreamError, match="not a local Hugging Face model folder"):
        rollouts.main(["--data_dir", str(small_data_dir), "--student", str(tmp_path / "nope")])
    with pytest.raises(UpstreamError, match="no registered model 'teachable-student'"):
        rollouts.main(["--data_dir", str(small_data_dir), "--student", "models:/teachable-student@champion"])


def test_label_resumes_after_a_crash_and_logs_everything(mlflow_store: str, small_data_dir: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from entry_points import label, mine, rollouts
    from teachable.label import labeling
    from teachable.records import LabeledSnapshot

    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path / "work"))
    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "10", "--max_steps", "8"])
    mine.main(["--offsets", "1,2"])
    args = ["--data_dir", str(small_data_dir), "--student", "random", "--max_snapshots", "6", "--snapshot_batch", "2",
            "--n_min", "4", "--n_max", "8", "--rollout_batch", "4", "--max_steps", "8"]
    real = labeling.label_batch
    calls = []

    def crash_on_second_batch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(labeling, "label_batch", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        label.main(args)
    monkeypatch.setattr(labeling, "label_batch", real)
    label.main(args)
    client = MlflowClient()
    runs = client.search_runs([phase_runs.setup_tracking()], filter_string="tags.`teachable.phase` = 'label'",
                              order_by=["attributes.start_time DESC"])
    done, crashed = runs[0], runs[1]
    assert crashed.info.status == "FAILED" and done.info.status == "FINISHED"
    assert done.data.tags["teachable.work_key"] == crashed.data.tags["teachable.work_key"]
    m = done.data.metrics
    assert m["resumed"] == 2 and m["n_labeled"] == 6 and m["labeled_so_far"] == 6
    assert m["rollouts_spent"] > 0 and "u_threshold" in m and "n_Q1_highU_highL" in m
    run_id = done.info.run_id
    records = read_jsonl(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="labeled_snapshots.jsonl"),
                         LabeledSnapshot)
    assert len({r.snapshot_id for r in records}) == 6 and all(r.quadrant for r in records)
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"label_scatter.png", "labels_table.json", "label_summary.json"} <= names
    assert done.data.tags["upstream.mine"] == runs[0].data.tags["upstream.mine"]


def test_student_then_rollouts_through_mlflow_projects(mlflow_store: str, small_data_dir: Path) -> None:
    student = run_phase("student", data_dir=str(small_data_dir), n_train_goals=10, search_goals=20, epochs=1,
                        train_batch_size=8, vocab_size=400, hidden_size=32, num_layers=2, num_heads=2, eval_goals=3,
                        max_steps=6, max_observation_chars=400)
    m = student.data.metrics
    assert m["expert_success_rate"] == 1.0 and 0 <= m["heldout_success_rate"] <= 1 and m["n_demonstrations"] > 30
    versions = MlflowClient().search_model_versions("name='teachable-student'")
    assert [v.run_id for v in versions] == [student.info.run_id]
    assert student.data.tags["registered_model"] == f"models:/teachable-student/{versions[0].version}"
    rollouts = run_phase("rollouts", data_dir=str(small_data_dir), student=f"models:/teachable-student/{versions[0].version}",
                         n_goals=4, max_steps=6)
    assert rollouts.data.tags["upstream.student"] == student.info.run_id
    assert rollouts.data.metrics["n_episodes"] == 4


def test_log_metrics_leaves_out_nan_and_non_numbers(mlflow_store: str) -> None:
    mlflow.set_experiment("metrics")
    with mlflow.start_run() as run:
        phase_runs.log_metrics({"spearman": float("nan"), "n": 3, "ok": True, "gain": 0.25, "name": "x"})  # type: ignore[dict-item]
    assert MlflowClient().get_run(run.info.run_id).data.metrics == {"n": 3.0, "ok": 1.0, "gain": 0.25}


def test_a_command_reports_bad_input_without_a_traceback(mlflow_store: str) -> None:
    import os
    import subprocess
    import sys

    root = Path(phase_runs.__file__).resolve().parent.parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "HF_HUB_OFFLINE": "1"}
    bad = subprocess.run([sys.executable, "-m", "entry_points.micro_train", "--label_run", "abc"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stderr
    assert "micro_train: error: label_run='abc': expected 'latest', a 32-character run id" in bad.stderr
    assert "Traceback" not in bad.stderr
    run = MlflowClient().search_runs([mlflow.get_experiment_by_name("teachable").experiment_id])[0]
    assert run.info.status == "FAILED"  # the run shows the failure too
    # the errors of a bug are not among them: those keep their traceback
    assert cli.user_errors() and not issubclass(TypeError, cli.user_errors())


def test_the_work_key_ignores_how_a_run_is_observed() -> None:
    from entry_points.runs import TrackingArgs
    from entry_points.workfiles import work_key
    from teachable.mining import MiningConfig

    on = work_key("mine", (MiningConfig(), TrackingArgs()), {"rollouts": "r" * 32})
    assert on == work_key("mine", (MiningConfig(), TrackingArgs(system_metrics=False)), {"rollouts": "r" * 32})
    assert on != work_key("mine", (MiningConfig(offsets="1"), TrackingArgs()), {"rollouts": "r" * 32})
