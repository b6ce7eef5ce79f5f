"""A phase's inputs from other runs: upstream runs by phase (`latest` or a run id), registered
models (`models:/name@alias` or `/version`), their artifacts downloaded once into the cache, and
the records they hold, logged as the reading run's dataset inputs."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError
from entry_points.datasets import EVALUATION, OUTPUT, TRAINING, log_dataset
from entry_points.runs import PHASE_TAG, setup_tracking, tracking_uri
from teachable.names import LABELED_SNAPSHOTS, ROLLOUTS

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MODEL_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Upstream:
    """A resolved upstream input: the run it comes from and, for registered models, the version."""

    run_id: str
    phase: str
    model_uri: str | None = None
    model_source: str | None = None


def _finished_run(client: MlflowClient, run_id: str, phase: str, what: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise UpstreamError(f"{what}: no run {run_id} in the tracking store {tracking_uri()}.") from e
    found = run.data.tags.get(PHASE_TAG)
    if found != phase:
        raise UpstreamError(f"{what}: run {run_id} is a {found or 'untagged'!s} run, not a {phase} run; "
                            f"pass the id of a {phase} run or 'latest'.")
    if run.info.status != "FINISHED":
        raise UpstreamError(f"{what}: run {run_id} is {run.info.status}, not FINISHED; "
                            f"re-run `mlflow run . -e {phase} --env-manager local` or pass another run.")
    return run


def resolve_upstream(phase: str, ref: str, param: str) -> Upstream:
    """Resolve an upstream reference and record it as tag `upstream.<phase>` on the active run.

    Args:
        phase: the phase that must have produced the input (e.g. `rollouts`).
        ref: `latest` (newest FINISHED run of that phase in this experiment), a run id, or a
            registered model URI `models:/<name>@<alias>` / `models:/<name>/<version>`.
        param: the parameter name, for error messages.

    Raises:
        UpstreamError: nothing matches, the run is of another phase, or not FINISHED.
    """
    client = MlflowClient()
    what = f"{param}={ref!r}"
    model_uri = model_source = None
    if ref == "latest":
        active = mlflow.active_run()
        exp_id = active.info.experiment_id if active else setup_tracking()
        runs = client.search_runs(
            [exp_id], filter_string=f"tags.`{PHASE_TAG}` = '{phase}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
        if not runs:
            raise UpstreamError(f"{what}: no FINISHED {phase} run in this experiment; run "
                                f"`mlflow run . -e {phase} --env-manager local` first, or pass a run id.")
        run_id = runs[0].info.run_id
    elif RUN_ID_RE.match(ref):
        run_id = ref
    elif m := MODEL_URI_RE.match(ref):
        version = model_version(client, m["name"], m["alias"], m["version"], what)
        if not version.run_id:
            raise UpstreamError(f"{what}: model version {version.version} has no source run.")
        run_id, model_uri, model_source = version.run_id, ref, version.source
    else:
        raise UpstreamError(f"{what}: expected 'latest', a 32-character run id or models:/<name>@<alias>.")
    _finished_run(client, run_id, phase, what)
    if mlflow.active_run():
        mlflow.set_tag(f"upstream.{phase}", run_id)
    return Upstream(run_id=run_id, phase=phase, model_uri=model_uri, model_source=model_source)


def model_version(client: MlflowClient, name: str, alias: str | None, version: str | None, what: str):
    """The registered version `name@alias` or `name/version`.

    Raises:
        UpstreamError: no such model, alias or version (`what` begins the message).
    """
    try:
        client.get_registered_model(name)
    except MlflowException as e:
        raise UpstreamError(f"{what}: no registered model {name!r}; run the phase that registers it first.") from e
    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as e:
        which = f"alias @{alias}" if alias else f"version {version}"
        raise UpstreamError(f"{what}: registered model {name!r} has no {which}.") from e


def download_artifact(run_id: str, path: str, what: str) -> Path:
    """An artifact of an upstream run as a local path (downloaded once, see `cached_artifact`)."""
    return cached_artifact(run_id, what, artifact_path=path)


def read_records(run_id: str, name: str, what: str, context: str) -> Path:
    """An upstream run's records file (`rollouts.jsonl`, ...) as a local path (see `cached_artifact`),
    logged as a dataset input of the active run with `context` (`training` or `evaluation`)."""
    path = cached_artifact(run_id, what, artifact_path=name)
    if mlflow.active_run():
        log_dataset(path, f"{MlflowClient().get_run(run_id).info.artifact_uri}/{name}", context)
    return path


def log_records(path: Path) -> None:
    """Log a records file the active run made as its artifact and as its dataset (context `output`)."""
    mlflow.log_artifact(str(path))
    log_dataset(path, f"{mlflow.active_run().info.artifact_uri}/{path.name}", OUTPUT)


def register_folder(name: str, run_id: str, artifact_path: str, tags: dict[str, str] | None = None) -> str:
    """Register a folder artifact of a run as a new version of model `name`; return the version."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags or {})
    return str(version.version)


def resolve_model(ref: str, param: str, phase: str = "student", artifact_path: str = "model") -> str:
    """A model reference `teachable.models.load_model` reads, recording its upstream run when it has one.

    A model in the MLflow store is downloaded once into a cache keyed by its run and artifact
    path (`cached_artifact`) and reused by every later phase, so its local path never changes.

    Args:
        ref: `latest` (the newest FINISHED `phase` run's `artifact_path`), a run id, a registered
            model URI (`models:/teachable-student@champion`, `models:/teachable-student/3`), a
            local Hugging Face model folder, the preset `smollm2`, or a hub id in the local
            Hugging Face cache (`Qwen/Qwen2.5-7B-Instruct`; never downloaded).
        param: the parameter name, for error messages.

    Raises:
        UpstreamError: the reference matches nothing (the message says what to pass instead).
        ModelNotFoundError: a hub id that is not cached (the message gives the download command).
    """
    from teachable.models import SMOLLM2_PRESET, is_hub_id, model_folder

    if ref == SMOLLM2_PRESET:
        return ref
    if ref != "latest" and not RUN_ID_RE.match(ref) and not ref.startswith("models:/"):
        if is_hub_id(ref):
            model_folder(ref)  # a clear error now when it is not cached
            return ref
        path = Path(ref).expanduser()
        try:
            model_folder(str(path))
        except FileNotFoundError as e:
            raise UpstreamError(f"{param}={ref!r}: {e} Pass a folder written by save_pretrained, 'smollm2', a cached "
                                "hub id, 'latest', a run id or models:/<name>@<alias>.") from e
        return str(path.resolve())
    up = resolve_upstream(phase, ref, param)
    if up.model_source:
        return str(model_folder_of(cached_artifact(up.run_id, f"{param}={ref!r}", source=up.model_source)))
    return str(cached_artifact(up.run_id, f"{param}={ref!r}", artifact_path=artifact_path))


MODEL_ARTIFACT_KEYS = ("student", "adapter")  # the folder artifact of a student or adapter pyfunc (lm_registry)


def model_folder_of(path: Path) -> Path:
    """The student or adapter folder inside a downloaded MLflow Model (its pyfunc artifact
    `student` or `adapter`); `path` itself when it is a plain folder (a version registered
    before students and adapters were MLflow Models).

    Raises:
        UpstreamError: an MLflow Model that holds neither.
    """
    import yaml

    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        return path
    flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("python_function") or {}
    artifacts = flavor.get("artifacts") or {}
    for key in MODEL_ARTIFACT_KEYS:
        if key in artifacts:
            return path / artifacts[key]["path"]
    raise UpstreamError(f"the MLflow Model at {path} has no {' or '.join(MODEL_ARTIFACT_KEYS)} artifact: it is not "
                        "a student or an adapter; pass a models:/teachable-student or models:/teachable-adapter URI.")


def registered_folder(version: Any, what: str) -> Path:
    """The local student or adapter folder of a registered model version (downloaded once, see
    `cached_artifact`), whether the version is an MLflow Model or a plain folder."""
    return model_folder_of(cached_artifact(version.run_id, what, source=version.source))


def cached_artifact(run_id: str, what: str, *, artifact_path: str | None = None, source: str | None = None) -> Path:
    """An artifact (file or folder) of run `run_id` (by its path, or by a registered version's `source` URI),
    downloaded once into `<teachable cache>/mlflow-artifacts/<run id>/<path>` and reused.

    Artifacts of a finished run do not change, so the run id and path are the key; the download
    goes to a temporary sibling that is renamed into place, so a killed download leaves no half
    folder behind and nothing lingers in the system's temp folders.

    Raises:
        UpstreamError: the run has no such artifact.
    """
    import shutil
    import tempfile

    from teachable.models import cache_root

    if source is not None:
        run_root = MlflowClient().get_run(run_id).info.artifact_uri.rstrip("/")
        artifact_path = source[len(run_root):].strip("/") if source.startswith(run_root) else None
    rel = artifact_path or hashlib_name(source or "")
    final = cache_root() / "mlflow-artifacts" / run_id / rel
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=final.parent))
    try:
        if artifact_path is not None:
            got = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(tmp)))
        else:
            got = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp)))
        try:
            os.replace(got, final)
        except OSError:
            if not final.exists():  # not another process that won the race
                raise
    except (MlflowException, OSError) as e:
        raise UpstreamError(f"{what}: run {run_id} has no artifact {artifact_path or source!r} ({e}); was it "
                            "written by this version?") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def hashlib_name(text: str) -> str:
    """A short file-name-safe digest of `text`."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def label_run_student(label_run_id: str) -> str:
    """The student a label run used: its recorded upstream student run, else its `student` parameter."""
    run = MlflowClient().get_run(label_run_id)
    if "upstream.student" in run.data.tags:
        return resolve_model(run.data.tags["upstream.student"], "student")
    student = run.data.params.get("student", "")
    from teachable.policy.factory import BUILTIN_POLICIES

    if student in BUILTIN_POLICIES or not student:
        raise UpstreamError(f"label run {label_run_id} used the {student or 'unknown'} policy, not a model; "
                            "training needs an LM student: pass student=<folder, run id or models:/...>.")
    return resolve_model(student, "student")


def labeled_inputs(label_ref: str, student_ref: str) -> tuple[str, list[Any], str]:
    """(label run id, its labeled snapshots, the base model folder) for phases that train on labels
    (the snapshots are logged as the run's `training` dataset).

    Args:
        label_ref: the label run (`latest` or a run id).
        student_ref: `label` (the label run's own student) or any `resolve_model` reference.
    """
    from teachable.records import LabeledSnapshot, read_jsonl

    up = resolve_upstream("label", label_ref, "label_run")
    records = read_jsonl(read_records(up.run_id, LABELED_SNAPSHOTS, f"label_run={label_ref!r}", TRAINING),
                         LabeledSnapshot)
    base_model = label_run_student(up.run_id) if student_ref == "label" else resolve_model(student_ref, "student")
    return up.run_id, records, base_model


def label_run_rollouts(label_run_id: str) -> list[Any]:
    """The trajectories of the rollouts run upstream of a label run (through its mine run), logged
    as the run's `evaluation` dataset (they give the retention set); [] when the label run records
    none (then no retention set can be drawn)."""
    from teachable.records import Trajectory, read_jsonl

    client = MlflowClient()
    mine_run = client.get_run(label_run_id).data.tags.get("upstream.mine")
    rollouts_run = client.get_run(mine_run).data.tags.get("upstream.rollouts") if mine_run else None
    if not rollouts_run:
        return []
    return read_jsonl(read_records(rollouts_run, ROLLOUTS, "rollouts", EVALUATION), Trajectory)


def tag_float(version: Any, key: str) -> float:
    """A registered version's tag `key` as a number (NaN when it is missing or not a number)."""
    try:
        return float(version.tags.get(key, "nan"))
    except ValueError:
        return math.nan


def competence_warnings(label_run: Run) -> list[str]:
    """Warnings about the student a label run studied: outside its competence band (student run),
    or rollouts without failures or successes."""
    client = MlflowClient()
    out = []
    student = label_run.data.tags.get("upstream.student")
    if student:
        tags = client.get_run(student).data.tags
        status = tags.get("teachable.competence", "in_band")
        if status not in ("in_band", "unmeasured"):
            detail = json.loads(tags.get("teachable.competence.detail", "{}") or "{}")
            out.append(f"the student (run {student}) is {status.replace('_', ' ')}: held-out success "
                       f"{detail.get('rate', float('nan')):.1%} on {detail.get('n_goals')} goals, outside "
                       f"[{detail.get('min_success')}, {detail.get('max_success')}]; these labels and everything "
                       "trained on them measure a degenerate student")
    mine = label_run.data.tags.get("upstream.mine")
    rollouts = mine and client.get_run(mine).data.tags.get("upstream.rollouts")
    if rollouts:
        status = client.get_run(rollouts).data.tags.get("teachable.competence", "in_band")
        if status != "in_band":
            out.append(f"the rollouts (run {rollouts}) had {status.replace('_', ' ')}")
    return out
