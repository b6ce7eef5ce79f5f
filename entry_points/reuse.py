"""Which finished phase run can stand in for a new one.

A run is reused when all of these match:

- phase: its tag `teachable.phase`;
- status: FINISHED;
- code version: its tag `teachable.code_version` (a hash of webshop_env/, teachable/,
  entry_points/ and the MLproject, set by `start_phase`) equals the current code's;
- parameters: every parameter of the phase's configs, as the run logged it, equals what the new
  run would get (numbers compared as numbers, so `200` and `200.0` match), except how the run
  was observed (`system_metrics`);
- upstream runs: for every upstream phase, the run recorded the same run id (its
  `upstream.<phase>` tags, or the `teachable.pipeline.upstream` tag the pipeline sets on the runs
  it starts, for inputs that are not parameters, such as the champion a `select` run loaded).
"""

from __future__ import annotations

import importlib
import json
import logging
import shlex
from collections.abc import Mapping, Sequence

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from entry_points.cli import PhaseError, config_params, parse_configs
from entry_points.runs import CODE_VERSION_TAG, OBSERVATION_PARAMS, PHASE_TAG

PIPELINE_UPSTREAM_TAG = "teachable.pipeline.upstream"
log = logging.getLogger(__name__)


class PhaseParameterError(PhaseError, ValueError):
    """The parameters given to a phase do not make a valid config."""


def unquote(value: str) -> str:
    """A value as the phase received it: `mlflow run` logs some shell-quoted (`''` for empty)."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        parts = shlex.split(value)
        if len(parts) == 1:
            return parts[0]
    return value


def same_value(a: str, b: str) -> bool:
    """Whether two logged parameter values mean the same: numbers by value, true/false by case,
    shell quoting removed."""
    a, b = unquote(a), unquote(b)
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return a.strip().lower() == b.strip().lower() and a.strip().lower() in ("true", "false")


def expected_params(phase: str, params: Mapping[str, str]) -> dict[str, str]:
    """Every parameter a run of `phase` started with `params` logs (config defaults filled in).

    Raises:
        PhaseParameterError: the parameters do not make a valid config of the phase.
    """
    specs = importlib.import_module(f"entry_points.{phase}").CONFIG
    argv = [item for key, value in params.items() for item in (f"--{key}", str(value))]
    try:
        configs = parse_configs(specs, argv)
    except SystemExit as e:  # argparse has printed what is wrong
        raise PhaseParameterError(f"phase {phase}: invalid parameters {dict(params)} (see the message above).") from e
    return config_params(configs)


def run_upstream(run: Run) -> dict[str, str]:
    """The upstream run ids a run recorded: `upstream.<phase>` tags and the pipeline's tag."""
    tags = run.data.tags
    found = {k.removeprefix("upstream."): v for k, v in tags.items() if k.startswith("upstream.")}
    found.update(json.loads(tags.get(PIPELINE_UPSTREAM_TAG, "{}")))
    return found


def mismatch(run: Run, params: Mapping[str, str], upstream: Mapping[str, str], code_version: str) -> str | None:
    """Why `run` cannot be reused (None when it can)."""
    if run.info.status != "FINISHED":
        return f"status {run.info.status}"
    if run.data.tags.get(CODE_VERSION_TAG) != code_version:
        return "another code version"
    logged = run.data.params
    for key, value in params.items():
        if key in OBSERVATION_PARAMS:
            continue  # how the run was observed changes none of its results
        if key not in logged or not same_value(logged[key], value):
            return f"parameter {key}: {logged.get(key)!r} != {value!r}"
    recorded = run_upstream(run)
    for phase, run_id in upstream.items():
        if recorded.get(phase) != run_id:
            return f"upstream {phase}: {recorded.get(phase)} != {run_id}"
    return None


def find_reusable(experiment_ids: Sequence[str], phase: str, params: Mapping[str, str], upstream: Mapping[str, str],
                  code_version: str) -> Run | None:
    """The newest FINISHED run of `phase` whose parameters, code version and upstream runs match."""
    runs = MlflowClient().search_runs(
        list(experiment_ids),
        filter_string=(f"tags.`{PHASE_TAG}` = '{phase}' and attributes.status = 'FINISHED' "
                       f"and tags.`{CODE_VERSION_TAG}` = '{code_version}'"),
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        why = mismatch(run, params, upstream, code_version)
        if why is None:
            return run
        log.info("%s run %s is not reused: %s", phase, run.info.run_id, why)
    return None
