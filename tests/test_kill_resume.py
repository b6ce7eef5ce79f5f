"""Resumable phases through their entry points, with the default upstream references: killed with
SIGKILL at random points and started again, two runs at once on one work folder, and the
up-front checks (snapshots of another catalogue, a work folder of another code version)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from bench.label_kill_resume import doubled_ids, label_command, run_with_kills, work_lines
from entry_points import cli
from entry_points import runs as phase_runs
from entry_points.workfiles import (
    WORK_KEY_TAG,
    WorkInUseError,
    WorkVersionError,
    model_identity,
    open_work,
)
from teachable.models import folder_fingerprint
from teachable.records import LabeledSnapshot, read_jsonl

pytestmark = pytest.mark.slow
N_SNAPSHOTS = 6
WORK_NAME = "labeled_snapshots.partial.jsonl"


@pytest.fixture
def store(mlflow_store: str, small_data_dir: Path, tiny_student: str) -> Path:
    """A student run (the tiny LM as its `model` artifact), random rollouts and their snapshots."""
    from entry_points import mine, rollouts

    phase_runs.setup_tracking()
    with mlflow.start_run(run_name="student"):
        mlflow.set_tag(phase_runs.PHASE_TAG, "student")
        mlflow.log_artifacts(tiny_student, "model")
    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "10", "--max_steps", "8"])
    mine.main(["--offsets", "1,2"])
    return small_data_dir


def label_runs(status: str = "FINISHED") -> list:
    return MlflowClient().search_runs(
        [phase_runs.setup_tracking()], order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{phase_runs.PHASE_TAG}` = 'label' and attributes.status = '{status}'")


def artifact(run_id: str) -> list[dict]:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="labeled_snapshots.jsonl")
    return [r.to_dict() for r in read_jsonl(path, LabeledSnapshot)]


def test_label_killed_at_three_random_points_ends_as_an_uninterrupted_run(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from entry_points import label

    cmd = label_command(str(store), N_SNAPSHOTS, n_min=2, n_max=2)  # mine_run=latest, student=latest: a new download each start
    work = tmp_path / "work"
    points = sorted(np.random.default_rng(15).choice(range(1, N_SNAPSHOTS), size=3, replace=False).tolist())
    triggers = [lambda t, k=k: len(work_lines(work, "label", WORK_NAME)) >= k for k in points]
    attempts = run_with_kills(cmd, {**os.environ, "TEACHABLE_WORK_DIR": str(work)}, triggers, tmp_path)
    assert attempts.kills == 3 and attempts.exit_codes[:3] == [-9] * 3, attempts.logs
    assert attempts.finished, attempts.logs[-1].read_text()[-3000:]
    (done,) = label_runs()
    assert done.data.metrics["resumed"] >= points[-1] and done.data.metrics["n_labeled"] == N_SNAPSHOTS
    ids = [json.loads(line)["snapshot_id"] for line in work_lines(work, "label", WORK_NAME)]
    assert len(ids) == N_SNAPSHOTS and doubled_ids(ids) == 0  # every snapshot labeled once, over four starts
    assert len(list(work.glob("label-*"))) == 1  # one key for every start

    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path / "fresh"))  # nothing to resume from
    label.main(cmd[3:])
    whole = label_runs()[0]
    assert whole.data.metrics["resumed"] == 0
    assert whole.data.tags[WORK_KEY_TAG] == done.data.tags[WORK_KEY_TAG]
    assert artifact(done.info.run_id) == artifact(whole.info.run_id)


def test_two_label_runs_at_once_one_labels_the_other_stops(store: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TEACHABLE_WORK_DIR": str(tmp_path / "work")}
    cmd = label_command(str(store), N_SNAPSHOTS, n_min=2, n_max=2)
    procs = [subprocess.Popen(cmd, env=env, cwd=phase_runs.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    (winner,) = label_runs()
    (loser,) = label_runs("FAILED")
    stderr = outs[codes.index(2)][1]
    assert "label: error: the work folder" in stderr and f"in use by run {winner.info.run_id}" in stderr
    assert "Traceback" not in stderr and loser.info.run_id != winner.info.run_id
    ids = [json.loads(line)["snapshot_id"] for line in work_lines(tmp_path / "work", "label", WORK_NAME)]
    records = artifact(winner.info.run_id)
    assert len(ids) == len(records) == N_SNAPSHOTS and doubled_ids(ids) == 0
    assert winner.data.metrics["n_labeled"] == N_SNAPSHOTS


def test_snapshots_of_another_catalogue_fail_before_labeling(store: Path, tiny_data_dir: Path) -> None:
    from entry_points import label

    with pytest.raises(cli.UpstreamError) as err:
        label.main(["--data_dir", str(tiny_data_dir), "--student", "random", "--max_snapshots", "3"])
    message = str(err.value)
    assert f"mined on data_dir={str(store)!r}" in message and f"loads data_dir={str(tiny_data_dir)!r}" in message
    assert "3 of 3 snapshots" in message and "Pass the data_dir the snapshots were mined on" in message
    assert label_runs("FAILED") and not label_runs()


@dataclass
class Demo:
    n: int = 3
    resume_run: str = ""


def test_a_work_folder_of_another_code_version_is_refused(mlflow_store: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path))
    with open_work("demo", Demo(), {"up": "run-1"}, "w.jsonl") as path:
        path.write_text("{}\n")
    manifest = path.parent / "work.json"
    assert json.loads(manifest.read_text())["code_version"] == phase_runs.code_version()
    with open_work("demo", Demo(resume_run="x"), {"up": "run-1"}, "w.jsonl") as again:  # same key, same version
        assert again == path and issubclass(WorkVersionError, cli.user_errors())
    manifest.write_text(json.dumps({"format": 1, "phase": "demo", "code_version": "0123456789abcdef"}))
    with pytest.raises(WorkVersionError, match=r"started by code version 0123456789abcdef.*rm -r"), \
            open_work("demo", Demo(), {"up": "run-1"}, "w.jsonl"):
        pass


def test_a_held_work_folder_names_its_holder_and_is_free_once_it_dies(mlflow_store: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path))
    with open_work("demo", Demo(), {"up": "run-1"}, "w.jsonl") as path:
        pass
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, json, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
        "os.write(fd, json.dumps({'run_id': 'f' * 32, 'pid': os.getpid()}).encode()); print('held', flush=True); "
        "time.sleep(60)"), str(path.parent / "lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkInUseError, match=f"in use by run {'f' * 32} \\(pid {holder.pid}"), \
            open_work("demo", Demo(), {"up": "run-1"}, "w.jsonl"):
        pass
    holder.kill()  # SIGKILL: the kernel releases its flock
    holder.wait()
    with open_work("demo", Demo(), {"up": "run-1"}, "w.jsonl") as again:
        assert again == path


def test_model_identity_is_the_content_not_the_place(tiny_student: str, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_student, tmp_path / "elsewhere"))
    assert model_identity("latest", tiny_student) == model_identity("models:/x/1", str(copy))
    assert model_identity("random", "random") == "name:random" and model_identity("smollm2", "smollm2") == "name:smollm2"
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    assert model_identity("latest", str(copy)) != model_identity("latest", tiny_student)
    big = tmp_path / "big"
    big.mkdir()
    weights = np.random.default_rng(0).integers(0, 255, size=3 << 20, dtype=np.uint8)
    (big / "model.safetensors").write_bytes(weights.tobytes())
    before = folder_fingerprint(big)
    weights[-1] ^= 1  # in the last MiB: seen
    (big / "model.safetensors").write_bytes(weights.tobytes())
    assert folder_fingerprint(big) != before


def done_cells(work: Path, phase: str) -> int:
    return len(list(work.glob(f"{phase}-*/cells/*/done.json")))


def comparable(summary: dict) -> dict:
    """A summary's cells without what names a run (run ids, registry versions, reuse flags)."""
    drop = {"run_id", "version", "reused"}
    return {cell: {k: v for k, v in e.items() if k not in drop} for cell, e in summary["cells"].items()}


@pytest.fixture
def labeled(store: Path) -> Path:
    """`store` with a label run of the LM student (student=latest)."""
    from entry_points import label

    label.main(["--data_dir", str(store), "--max_snapshots", "8", "--n_min", "2", "--n_max", "2",
                "--rollout_batch", "2", "--max_steps", "8"])
    return store


def kill_three_times(cmd: list[str], work: Path, phase: str, n_cells: int, seed: int, logs: Path):
    """Run `cmd`, SIGKILLed once 3 random counts of its cells are done, then to the end."""
    points = sorted(np.random.default_rng(seed).choice(range(1, n_cells), size=3, replace=False).tolist())
    triggers = [lambda t, k=k: done_cells(work, phase) >= k for k in points]
    attempts = run_with_kills(cmd, {**os.environ, "TEACHABLE_WORK_DIR": str(work)}, triggers, logs)
    assert attempts.kills == 3 and attempts.finished, attempts.logs[-1].read_text()[-3000:]
    assert done_cells(work, phase) == n_cells
    return points


def finished_runs(phase: str) -> list:
    return MlflowClient().search_runs(
        [phase_runs.setup_tracking()], order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{phase_runs.PHASE_TAG}` = '{phase}' and attributes.status = 'FINISHED'")


def test_train_matrix_killed_at_three_random_points_ends_as_an_uninterrupted_run(
        labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from entry_points import train_matrix

    quadrant = Counter(r["quadrant"] for r in artifact(label_runs()[0].info.run_id)).most_common(1)[0][0]
    cells = [f"{quadrant}__{f}" for f in ("demo", "contrast", "hint")] + ["B1_uniform", "B2_all"]
    args = ["--cells", ",".join(cells), "--examples_per_cell", "2", "--train_steps", "1", "--train_batch_size", "2"]
    cmd = [sys.executable, "-m", "entry_points.train_matrix", *args]  # label_run=latest, student=label
    work = tmp_path / "work"
    points = kill_three_times(cmd, work, "train_matrix", len(cells), 16, tmp_path)

    def summary_of(run) -> dict:
        return json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="training_summary.json")).read_text())

    (done,) = finished_runs("train_matrix")
    resumed = summary_of(done)
    assert sorted(resumed["cells"]) == sorted(cells) and sum(e.get("reused", False) for e in resumed["cells"].values()) >= points[-1]
    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path / "fresh"))
    train_matrix.main(args)
    whole = finished_runs("train_matrix")[0]
    assert whole.data.tags[WORK_KEY_TAG] == done.data.tags[WORK_KEY_TAG]
    assert comparable(summary_of(whole)) == comparable(resumed)


def test_select_killed_at_three_random_points_ends_as_an_uninterrupted_run(
        labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from entry_points import select

    args = ["--data_dir", str(labeled), "--methods", "random,entropy,oracle", "--budgets", "2", "--random_seeds", "3",
            "--epochs", "1", "--train_batch_size", "4", "--heldout_goals", "2", "--failure_snapshots", "4",
            "--retention_goals", "0", "--episodes_per_item", "1", "--max_steps", "8", "--n_boot", "20"]
    cmd = [sys.executable, "-m", "entry_points.select", *args]  # label_run=latest, student=label
    work = tmp_path / "work"
    kill_three_times(cmd, work, "select", 5, 17, tmp_path)

    def summary_of(run) -> pd.DataFrame:
        return pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                               artifact_path="selection_summary.csv"))

    (done,) = finished_runs("select")
    resumed = summary_of(done)
    assert len(resumed) == 5 and not resumed.duplicated(["method", "K", "seed"]).any()
    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path / "fresh"))
    select.main(args)
    whole = finished_runs("select")[0]
    assert whole.data.tags[WORK_KEY_TAG] == done.data.tags[WORK_KEY_TAG]
    pd.testing.assert_frame_equal(summary_of(whole), resumed)
