"""What the project asks of MLflow itself: records files as datasets with lineage, system metrics
on phase runs, traced teacher calls that never hold the key, the MLproject's python_env, the
experiment's kind and readable run names. Real MLflow, a temporary sqlite store."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from entry_points import runs as phase_runs
from entry_points import upstream
from entry_points.datasets import EVALUATION, dataset_source, first_record_schema
from tests.test_teacher_openai import (  # noqa: F401 - `endpoint` is the local chat-completions server fixture
    ITEM_CTX,
    FakeEndpoint,
    Reply,
    advice_json,
    endpoint,
    make_teacher,
)

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-test-FAKEKEY-123"


@dataclass
class Tiny:
    n: int = 1


def inputs_of(run_id: str) -> dict[str, tuple[str, object]]:
    """{dataset name: (context, dataset)} of a run's dataset inputs."""
    run = MlflowClient().get_run(run_id)
    return {i.dataset.name: ({t.key: t.value for t in i.tags}["mlflow.data.context"], i.dataset)
            for i in run.inputs.dataset_inputs}


# ------------------------------------------------------------------ datasets
def test_records_are_datasets_of_the_runs_that_make_and_read_them(mlflow_store: str, small_data_dir: Path) -> None:
    from entry_points import mine, rollouts

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "6", "--max_steps", "6"])
    mine.main(["--offsets", "1"])
    client = MlflowClient()
    runs = client.search_runs([phase_runs.setup_tracking()], order_by=["attributes.start_time ASC"])
    made, mined = runs[0].info.run_id, runs[1].info.run_id
    context, dataset = inputs_of(made)["rollouts"]
    local = Path(mlflow.artifacts.download_artifacts(run_id=made, artifact_path="rollouts.jsonl"))
    assert context == "output" and dataset.source_type == "local"
    assert json.loads(dataset.source)["uri"] == f"{client.get_run(made).info.artifact_uri}/rollouts.jsonl"
    assert dataset.digest == hashlib.sha256(local.read_bytes()).hexdigest()[:10]
    assert json.loads(dataset.profile) == {"num_records": 6}
    columns = {c["name"]: c["type"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
    assert columns["kind"] == "string" and columns["schema_version"] == "long" and columns["steps"] == "any"
    read = inputs_of(mined)
    assert read["rollouts"][0] == "training" and read["rollouts"][1].digest == dataset.digest  # one dataset, two runs
    assert read["failure_snapshots"][0] == "output"
    with phase_runs.start_phase("evaluate", Tiny()) as run:
        upstream.read_records(mined, "failure_snapshots.jsonl", "mine run", EVALUATION)
    assert inputs_of(run.info.run_id)["failure_snapshots"][0] == "evaluation"


def test_a_records_file_schema_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = first_record_schema(b'{"kind": "Step", "n": 1, "p": 0.5, "ok": true, "a": [1], "none": null}\n')
    assert [(c["name"], c["type"], c["required"]) for c in schema.to_dict()] == [
        ("kind", "string", True), ("n", "long", True), ("p", "double", True), ("ok", "boolean", True),
        ("a", "any", True), ("none", "any", False)]
    assert first_record_schema(b"") is None
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "http://127.0.0.1:5000/")  # a tracking server
    source = dataset_source("mlflow-artifacts:/1/abc/artifacts/rollouts.jsonl")  # its proxied artifact: the download URL
    assert source.url == "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/rollouts.jsonl"
    assert dataset_source("file:///tmp/r/rollouts.jsonl").to_dict() == {"uri": "file:///tmp/r/rollouts.jsonl"}


# ------------------------------------------------------------------ system metrics
def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor" and t.is_alive()]


def test_phase_runs_log_system_metrics_until_they_end(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    with phase_runs.start_phase("rollouts", Tiny()) as run:
        assert monitor_threads()
        deadline = time.monotonic() + 30  # a wait for the sampler, not a timing assertion
        while time.monotonic() < deadline and not any(
                k.startswith("system/") for k in MlflowClient().get_run(run.info.run_id).data.metrics):
            time.sleep(0.05)
    assert not monitor_threads()
    assert "system/cpu_utilization_percentage" in MlflowClient().get_run(run.info.run_id).data.metrics

    # off with the phase's parameter (system_metrics=false), logged as a parameter of the run
    with phase_runs.start_phase("rollouts", (Tiny(), phase_runs.TrackingArgs(system_metrics=False))) as run:
        assert not monitor_threads()
    off = MlflowClient().get_run(run.info.run_id).data
    assert off.params["system_metrics"] == "false" and not [k for k in off.metrics if k.startswith("system/")]

    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")  # or with MLflow's own switch
    with phase_runs.start_phase("rollouts", Tiny()) as run:
        assert not monitor_threads()
    assert not [k for k in MlflowClient().get_run(run.info.run_id).data.metrics if k.startswith("system/")]


# ------------------------------------------------------------------ traced teacher calls
def test_teacher_calls_are_traced_and_the_key_is_never_stored(mlflow_store: str, endpoint: FakeEndpoint,  # noqa: F811
                                                              tmp_path: Path) -> None:
    from entry_points.tracing import SPAN_NAME, teacher_tracer
    from teachable.policy.teacher.openai_teacher import TeacherError

    endpoint.script(Reply(status=429), Reply(advice_json()),
                    Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {FAKE_KEY}"}}))
    with phase_runs.start_phase("label", Tiny()) as run:
        teacher = make_teacher(endpoint, api_key=FAKE_KEY, cache_dir=tmp_path / "teacher_cache", max_retries=1,
                               on_call=teacher_tracer())
        teacher.advise([ITEM_CTX], ["click[buy now]"])  # a retry, then advice
        teacher.advise([ITEM_CTX], ["click[buy now]"])  # from the cache
        with pytest.raises(TeacherError, match="HTTP 401"):
            teacher.advise([ITEM_CTX], ["click[lemon]"])
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list", order_by=["timestamp_ms ASC"])
    spans = [t.data.spans for t in traces]
    assert [len(s) for s in spans] == [1, 1, 1] and {s[0].name for s in spans} == {SPAN_NAME}
    asked, cached, refused = (s[0] for s in spans)
    assert asked.attributes["model"] == "test-model" and asked.attributes["cache_hit"] is False
    assert asked.attributes["retries"] == 1 and asked.attributes["requests"] == 2
    assert asked.attributes["prompt_tokens"] == 10 and asked.attributes["completion_tokens"] == 5
    assert asked.attributes["latency_s"] > 0 and asked.outputs["advice"]["action"] == "click[mint]"
    assert ITEM_CTX.instruction in asked.inputs["messages"][1]["content"]  # the prompt is kept
    assert cached.attributes["cache_hit"] is True and cached.attributes["requests"] == 0
    assert refused.status.status_code == "ERROR" and "<redacted>" in refused.attributes["error"]
    assert all(t.info.request_metadata["mlflow.sourceRun"] == run.info.run_id for t in traces)
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in stored)
    assert [p for p in stored if FAKE_KEY.encode() in p.read_bytes()] == []


# ------------------------------------------------------------------ the project's environment
def test_mlproject_runs_in_python_env_with_the_pinned_requirements() -> None:
    import tomllib

    from mlflow.projects import _project_spec
    from mlflow.utils.environment import _PythonEnv

    project = _project_spec.load_project(str(ROOT))
    assert project.env_type == "python_env" and Path(project.env_config_path).name == "python_env.yaml"
    env = _PythonEnv.from_yaml(project.env_config_path)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert env.python == "3.11" and sorted(env.dependencies) == sorted(deps) and "torch==2.13.0" in env.dependencies
    assert yaml.safe_load((ROOT / "conda.yaml").read_text())["name"] == "teachable"  # kept for --env-manager local in conda


# ------------------------------------------------------------------ where the UI opens, run names
def test_the_experiment_is_of_the_model_training_kind(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = MlflowClient()
    exp_id = phase_runs.setup_tracking()
    assert client.get_experiment(exp_id).tags[phase_runs.EXPERIMENT_KIND_TAG] == "custom_model_development"
    guessed = client.create_experiment("guessed", tags={phase_runs.EXPERIMENT_KIND_TAG: "genai_development_inferred"})
    chosen = client.create_experiment("chosen", tags={phase_runs.EXPERIMENT_KIND_TAG: "genai_development"})
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", guessed)
    phase_runs.setup_tracking()
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", chosen)
    phase_runs.setup_tracking()
    assert client.get_experiment(guessed).tags[phase_runs.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert client.get_experiment(chosen).tags[phase_runs.EXPERIMENT_KIND_TAG] == "genai_development"


def test_ui_links_open_the_training_runs_view(mlflow_store: str) -> None:
    """The UI's view switch is per browser (GenAI by default), so the links name the view; the
    browser test opens them (tests/test_mlflow_ui.py)."""
    assert phase_runs.ui_url("3") == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert phase_runs.ui_url("3", "ab" * 16, "https://mlflow.example/") == (
        f"https://mlflow.example/#/experiments/3/runs/{'ab' * 16}?workflowType=machine_learning")


def test_phase_runs_are_named_by_their_phase(mlflow_store: str) -> None:
    with phase_runs.start_phase("mine", Tiny()) as run:
        pass
    with phase_runs.start_phase("select", Tiny(), run_name="select-h7") as named:
        pass
    client = MlflowClient()
    assert client.get_run(run.info.run_id).info.run_name == "mine"
    assert client.get_run(named.info.run_id).info.run_name == "select-h7"
