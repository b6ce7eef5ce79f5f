"""The tracking store and the phase runs: where runs are kept, the experiment, the UI's links,
starting a phase's run (tags, parameters, system metrics), and logging metrics on it.

A phase's `main` reads top to bottom: `parse_configs` -> `start_phase` -> `resolve_*` for its
inputs -> one library call -> log. Only this package imports `mlflow` and `argparse`."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from entry_points.cli import config_params

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = "teachable"
PHASE_TAG = "teachable.phase"
CODE_VERSION_TAG = "teachable.code_version"
CODE_SOURCES = ("webshop_env", "teachable", "entry_points", "MLproject")
# the experiment's kind: model training, not GenAI development (UIs without a global switch open it on its runs)
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# `mlflow ui`'s default address; and the query that opens its training-runs view: MLflow 3.17's UI
# picks GenAI or model training with a switch kept per browser (GenAI for a new user) and ignores
# the experiment's kind, so links name the view themselves
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"
TRAINING_VIEW = "workflowType=machine_learning"

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else `sqlite:///<project root>/mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: `mlruns/` beside a sqlite file, else the server's choice."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()
    return None


def setup_tracking() -> str:
    """Point MLflow at the tracking store and the experiment; return the experiment id.

    The experiment is `MLFLOW_EXPERIMENT_ID` / `MLFLOW_EXPERIMENT_NAME` when set (as `mlflow run`
    does), else `teachable`; it is created with its artifacts beside the sqlite file. Its kind
    (tag `mlflow.experimentKind`) is set to `custom_model_development` unless someone chose a kind
    in the UI (one the UI only guessed is replaced); `ui_url` gives the link that opens its runs.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        experiment = client.get_experiment(os.environ["MLFLOW_EXPERIMENT_ID"])
    else:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            exp_id = client.create_experiment(name, artifact_location=artifact_root(uri),
                                              tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            experiment = client.get_experiment(exp_id)
        mlflow.set_experiment(experiment_id=experiment.experiment_id)
    kind = experiment.tags.get(EXPERIMENT_KIND_TAG, "")
    if not kind or "inferred" in kind:  # the UI stores its guess as `genai_development_inferred`, ...
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def ui_url(experiment_id: str, run_id: str | None = None, ui: str = "") -> str:
    """The MLflow UI's page of an experiment's runs, or of one run, in its training-runs view: on
    `ui`, else on the tracking server when it is http(s), else on `mlflow ui`'s default address."""
    uri = tracking_uri()
    base = ui or (uri if uri.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI)
    page = f"#/experiments/{quote(experiment_id)}/runs" + (f"/{quote(run_id)}" if run_id else "")
    return f"{base.rstrip('/')}/{page}?{TRAINING_VIEW}"


@functools.cache
def code_version(root: Path = PROJECT_ROOT) -> str:
    """A hash of the code a phase runs: the Python files of webshop_env/, teachable/ and
    entry_points/ and the MLproject (path and content), computed once per process.

    Recorded as tag `teachable.code_version` on every phase run; `pipeline` reuses a run only
    when it matches, so a change to the code invalidates every earlier run.
    """
    import hashlib

    h = hashlib.sha256()
    for name in CODE_SOURCES:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            h.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass
class TrackingArgs:
    """How a phase's run is observed (every phase has it; it changes no result, so it is left out
    of the reuse and work keys: see `OBSERVATION_PARAMS`)."""

    system_metrics: bool = field(default=True, metadata={
        "help": "sample CPU, memory, disk, network and GPU use as the run's system/* metrics (false: off)"})


OBSERVATION_PARAMS = frozenset(f.name for f in fields(TrackingArgs))


def system_metrics(configs: Any = ()) -> bool:
    """Whether a phase run logs system metrics (CPU, memory, disk, network, GPU; `system/*`): yes
    unless its `TrackingArgs.system_metrics` is false or `MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`
    is false (MLflow's own switch, whose default this project turns on)."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING as switch

    parts = configs if isinstance(configs, tuple | list) else (configs,)
    asked = all(c.system_metrics for c in parts if isinstance(c, TrackingArgs))
    return asked and (switch.get() if switch.defined else True)


@contextmanager
def start_phase(phase: str, config: Any, run_name: str | None = None) -> Iterator[Run]:
    """Start (or, under `mlflow run`, continue) the phase's run, named `run_name` or the phase:
    tag the phase, log the config (one config or the phase's tuple of configs), sample system
    metrics (see `system_metrics`) until it ends.

    An exception inside the block marks the run FAILED, so `latest` never picks it up.
    """
    setup_tracking()
    with mlflow.start_run(run_name=run_name or phase, log_system_metrics=system_metrics(config)) as run:
        mlflow.set_tags({PHASE_TAG: phase, CODE_VERSION_TAG: code_version()})
        # under `mlflow run` the parameters given are already logged, as typed (`1` for 1.0)
        given = run.data.params
        mlflow.log_params({k: v for k, v in config_params(config).items() if k not in given})
        yield run


def executor_metrics(executor: Any) -> dict[str, int]:
    """`executor.workers` and `executor.retries` (batches resubmitted after their actor died)."""
    return {"executor.workers": executor.workers, "executor.retries": executor.retries}


def log_metrics(metrics: dict[str, float | int]) -> None:
    """Log numeric figures of merit. NaN (a statistic with too few points) is left out, and a
    non-numeric value is skipped with a warning."""
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, bool | int | float):
            if value == value:
                clean[key] = float(value)
        else:
            log.warning("metric %s is not a number (%r); not logged", key, value)
    mlflow.log_metrics(clean)


def log_series(key: str, values: Sequence[float]) -> None:
    """Log a curve (e.g. the loss per step) on the active run in a few batched calls."""
    import time

    from mlflow.entities import Metric

    run_id = mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(v), now, step) for step, v in enumerate(values)]
    client = MlflowClient()
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
