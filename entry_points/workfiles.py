"""Work folders of resumable phases: keyed by what a run reads, one writer at a time, one code version.

A resumable phase (label, train_matrix, select, recovery) keeps its progress in a work folder
`<root>/<phase>-<key>/` (root: `$TEACHABLE_WORK_DIR` or `<project root>/.teachable_work`).

- **Key.** The key hashes the phase, its parameters (less those that never change a result:
  the executor fields, `resume_run`, the teacher's concurrency and timeout) and the identities
  of its upstream inputs: resolved run ids, and for a model its *content* (`model_identity`),
  never the folder it was downloaded to. So `student=latest`, a run id, `models:/...` and a
  folder all resume a killed run automatically when started again with the same parameters.
- **One writer.** The folder's `lock` file is held with `fcntl.flock` for the whole run. A second
  run with the same key stops at once with `<phase>: error: ... in use by run <id>` (exit 2): it
  would only redo the first run's work, and a pipeline should not wait silently on a stuck
  process. The kernel releases a `flock` when its holder dies (SIGKILL included), so a lock left
  by a killed run is recovered without any stale-lock clean-up; the holder's run id and pid are
  written into the lock file for the message only.
- **One code version.** `work.json` records the code version that started the folder; another
  version refuses it (exit 2) rather than mixing items computed by two versions.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from entry_points.cli import PhaseError, UpstreamError, config_params
from entry_points.runs import (
    OBSERVATION_PARAMS,
    PHASE_TAG,
    PROJECT_ROOT,
    code_version,
    tracking_uri,
)
from teachable.models import folder_fingerprint

log = logging.getLogger(__name__)
WORK_FORMAT = 1
WORK_KEY_TAG = "teachable.work_key"
# fields that never change a result: a run killed with one value resumes with another
UNKEYED_FIELDS = frozenset({"resume_run", "teacher_concurrency", "teacher_timeout_s"})


class WorkInUseError(PhaseError):
    """Another live run holds the work folder of the same key."""


class WorkVersionError(PhaseError):
    """The work folder was started by another code version."""


def model_identity(ref: str, local_path: str) -> str:
    """What a model reference stands for, independent of where it lies on this disk.

    Args:
        ref: the reference as given (`latest`, a run id, `models:/...`, a folder, `smollm2`, `random`).
        local_path: the folder it resolved to (or the name itself for a preset or built-in policy).

    Returns:
        `name:<ref>` for a preset or built-in policy, else `content:<hash>` of the folder: the
        names and sizes of its files, the full bytes of every small file (configs, tokenizer,
        adapter settings) and the first and last MiB of every large weight file. Two downloads of
        the same model give the same identity; a new version with other weights does not.
    """
    from teachable.models import is_hub_id, model_fingerprint

    path = Path(local_path)
    if not path.is_dir() and not is_hub_id(local_path):
        return f"name:{ref}"
    return f"content:{model_fingerprint(local_path) if is_model_folder(path) or is_hub_id(local_path) else folder_fingerprint(path)}"


def is_model_folder(path: Path) -> bool:
    from teachable.models import REF_FILE

    return (path / "config.json").is_file() or (path / REF_FILE).is_file()


def work_key(phase: str, config: Any, upstream: Mapping[str, str]) -> str:
    """The key of a phase's work folder: its phase, keyed parameters and upstream identities."""
    from teachable.executor import EXECUTOR_FIELDS

    unkeyed = UNKEYED_FIELDS | OBSERVATION_PARAMS | set(EXECUTOR_FIELDS)
    params = {k: v for k, v in config_params(config).items() if k not in unkeyed}
    return hashlib.sha256(json.dumps([phase, params, dict(upstream)], sort_keys=True).encode()).hexdigest()[:16]


def work_root() -> Path:
    """`$TEACHABLE_WORK_DIR`, else `<project root>/.teachable_work`."""
    return Path(os.environ.get("TEACHABLE_WORK_DIR") or PROJECT_ROOT / ".teachable_work")


def work_folder(phase: str, key: str) -> Path:
    folder = work_root() / f"{phase}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _holder(lock_file: Path) -> dict[str, Any]:
    try:
        return json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def hold_work_folder(phase: str, folder: Path, run_id: str) -> Iterator[Path]:
    """Hold `folder` for this run: an exclusive `flock` on its `lock` file, and its code version checked.

    Raises:
        WorkInUseError: another live process holds it (the message names its run id and pid).
        WorkVersionError: `work.json` records another code version.
    """
    lock_file = folder / "lock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            other = _holder(lock_file)
            raise WorkInUseError(
                f"the work folder {folder} is in use by run {other.get('run_id', '?')} (pid {other.get('pid', '?')} "
                f"on {other.get('host', '?')}), which runs the same {phase} with the same parameters and "
                "inputs; wait for it to finish (its result is the one you asked for), or stop it first."
            ) from None
        _check_version(phase, folder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        yield folder
    finally:
        os.close(fd)  # closing releases the flock; so does the kernel when this process dies


def _check_version(phase: str, folder: Path) -> None:
    manifest = folder / "work.json"
    mine = {"format": WORK_FORMAT, "phase": phase, "code_version": code_version()}
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text())
        except ValueError:
            found = {}
        if found.get("format") != WORK_FORMAT or found.get("code_version") != mine["code_version"]:
            raise WorkVersionError(
                f"the work folder {folder} was started by code version {found.get('code_version', 'unknown')} "
                f"(work format {found.get('format', 'unknown')}); this is code version {mine['code_version']} "
                f"(format {WORK_FORMAT}), whose results may differ: delete the folder (`rm -r {folder}`) to "
                "start this run over, or finish it with the code version that started it.")
        return
    tmp = manifest.with_name("work.json.tmp")
    tmp.write_text(json.dumps(mine))
    os.replace(tmp, manifest)


@contextmanager
def open_work(phase: str, config: Any, upstream: Mapping[str, str], name: str,
              key: str | None = None) -> Iterator[Path]:
    """The path `name` in the phase's work folder, held by this run for the duration of the block.

    Args:
        phase: the phase.
        config: its config dataclass (the keyed fields enter the key).
        upstream: the identities of what it reads (run ids, `model_identity` of each model).
        name: the work file or folder inside the work folder.
        key: an existing key (for `resume_run`) instead of computing one.

    Records the key as tag `teachable.work_key` on the active run.

    Raises:
        WorkInUseError, WorkVersionError: see `hold_work_folder`.
    """
    key = key or work_key(phase, config, upstream)
    active = mlflow.active_run()
    if active:
        mlflow.set_tag(WORK_KEY_TAG, key)
    folder = work_folder(phase, key)
    with hold_work_folder(phase, folder, active.info.run_id if active else f"pid-{os.getpid()}"):
        yield folder / name



def resumed_work_key(phase: str, run_id: str, name: str) -> str:
    """The work key of an earlier (unfinished) run of `phase`, for `resume_run`; tags `resumed_from`.

    Raises:
        UpstreamError: the run does not exist, is of another phase, or its work file is gone.
    """
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as e:
        raise UpstreamError(f"resume_run={run_id!r}: no such run in {tracking_uri()}.") from e
    if run.data.tags.get(PHASE_TAG) != phase or WORK_KEY_TAG not in run.data.tags:
        raise UpstreamError(f"resume_run={run_id!r} is not a {phase} run with a work file; pass the id of an "
                            f"unfinished {phase} run, or rerun with the same parameters to resume automatically.")
    key = run.data.tags[WORK_KEY_TAG]
    path = work_root() / f"{phase}-{key}" / name
    if not path.exists():
        raise UpstreamError(f"resume_run={run_id!r}: its work file {path} is gone; rerun without resume_run.")
    if mlflow.active_run():
        mlflow.set_tag("resumed_from", run_id)
    return key
