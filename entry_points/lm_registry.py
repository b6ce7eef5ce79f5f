"""Students and LoRA adapters in the model registry: log them as pyfunc models (from code, see
`lm_model.py`), register them, move their aliases, and turn a pyfunc's artifacts back into an
`LMPolicy` (`student`, `train_matrix`, `recovery`, `evaluate` and `promote` share these).

A student version is the student folder as the model's `student` artifact (a pretrained base
used as it is stays a reference file in it). An adapter version is the adapter folder as its
`adapter` artifact, with its base named in the model config, never copied: `runs:/<student
run>/model` when the base came from a student run of this store, else the reference as given
(`smollm2`, a cached hub id, a folder).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import Array, ColSpec, Map, ParamSchema, ParamSpec, Schema

from entry_points.cli import PhaseError, UpstreamError
from entry_points.runs import PROJECT_ROOT
from entry_points.upstream import (
    MODEL_URI_RE,
    RUN_ID_RE,
    cached_artifact,
    model_version,
    registered_folder,
    tag_float,
)
from teachable.names import ADAPTER_MODEL, STUDENT_MODEL

CANDIDATE, CHAMPION = "candidate", "champion"
BEST_ALIAS_PREFIX = "best-"  # evaluate: `best-<quadrant>`, the adapter of the quadrant with the largest failure gain
PYFUNC_CODE = Path(__file__).with_name("lm_model.py")
CODE_PATHS = [str(PROJECT_ROOT / p) for p in ("teachable", "webshop_env", "entry_points")]
# Passed explicitly: inferring them imports the model and costs seconds.
PIP_REQUIREMENTS = ["mlflow==3.17.2", "torch==2.13.0", "transformers==5.24.0", "peft==0.21.2", "tokenizers",
                    "safetensors==0.8.0", "numpy==2.4.6", "pandas==3.1.1", "scipy==1.17.1", "platformdirs==4.14.8",
                    "gymnasium==1.4.0", "bm25s==0.3.16", "thefuzz==0.22.1", "rapidfuzz==3.14.6"]
# Written out, not inferred: inferring runs the model, which for a pretrained base means loading it twice.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "instruction"), ColSpec("string", "observation"),
                   ColSpec(Array("string"), "valid_actions"), ColSpec("boolean", "has_search_bar", required=False),
                   ColSpec(Array("string"), "history", required=False), ColSpec("string", "patch", required=False)]),
    outputs=Schema([ColSpec("string", "action"), ColSpec(Map("double"), "distribution")]),
    params=ParamSchema([ParamSpec("greedy", "boolean", True), ParamSpec("seed", "long", 0)]),
)

log = logging.getLogger(__name__)


def log_student(folder: Path, tags: Mapping[str, str]) -> str:
    """Log the student `folder` as a pyfunc on the active run and register it as a new version of
    `teachable-student` with `tags`; return the version."""
    return _log_lm("student", STUDENT_MODEL, {"student": str(folder)}, {}, tags)


def log_adapter(folder: Path, base: str, tags: Mapping[str, str]) -> str:
    """Log the adapter `folder` as a pyfunc on the active run, with its base `base` (see
    `base_reference`) referenced in the model config, and register it as a new version of
    `teachable-adapter` with `tags`; return the version."""
    return _log_lm("adapter", ADAPTER_MODEL, {"adapter": str(folder)}, {"base": base}, {**tags, "base": base})


def _log_lm(name: str, registered: str, artifacts: dict[str, str], config: dict[str, str],
            tags: Mapping[str, str]) -> str:
    info = mlflow.pyfunc.log_model(
        name=name, python_model=str(PYFUNC_CODE), artifacts=artifacts, model_config=config or None,
        code_paths=CODE_PATHS, signature=SIGNATURE, pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=registered,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered, version, key, str(value))
    return version


def base_reference(base_model: str) -> str:
    """How an adapter names its base: `runs:/<id>/model` when the active run resolved its student
    from a student run (tag `upstream.student`), else `base_model` as given."""
    run = mlflow.active_run()
    run_id = MlflowClient().get_run(run.info.run_id).data.tags.get("upstream.student") if run else None
    return f"runs:/{run_id}/model" if run_id else base_model


def resolve_base(ref: str) -> str:
    """A local model reference for an adapter's recorded base: a `runs:/<id>/<path>` or
    `models:/<name>/<version>` (or `@<alias>`) is downloaded once (see `cached_artifact`); anything else is as is.

    Raises:
        UpstreamError: the run, model or artifact does not exist in this tracking store.
    """
    if ref.startswith("runs:/"):
        run_id, _, path = ref.removeprefix("runs:/").partition("/")
        if not RUN_ID_RE.match(run_id) or not path:
            raise UpstreamError(f"base={ref!r}: expected runs:/<run id>/<artifact path>.")
        return str(cached_artifact(run_id, f"base={ref!r}", artifact_path=path))
    if m := MODEL_URI_RE.match(ref):
        version = model_version(MlflowClient(), m["name"], m["alias"], m["version"], f"base={ref!r}")
        return str(registered_folder(version, f"base={ref!r}"))
    return ref


def policy_from_artifacts(artifacts: Mapping[str, str], config: Mapping[str, Any]) -> Any:
    """The `LMPolicy` of a student pyfunc's artifacts (`student`, or `adapter` on `config["base"]`);
    `config["device"]` picks the device (default: CUDA when available)."""
    from teachable.policy.lm import LMPolicy

    device = config.get("device") or None
    if "adapter" in artifacts:
        return LMPolicy.from_pretrained(resolve_base(config["base"]), adapter=artifacts["adapter"], device=device)
    return LMPolicy.from_pretrained(artifacts["student"], device=device)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and value != value):
        return ()
    if isinstance(value, str):
        raise ValueError(f"expected a list of actions, got the string {value!r}")
    return tuple(str(v) for v in value)


def contexts_of(frame: pd.DataFrame) -> list[Any]:
    """The `Context` of each row of a pyfunc input frame (see `lm_model.py` for the columns).

    Raises:
        ValueError: a required column is missing, or a list column holds a plain string.
    """
    from teachable.prompting import Context

    missing = {"instruction", "observation", "valid_actions"} - set(frame.columns)
    if missing:
        raise ValueError(f"the contexts frame lacks the columns {sorted(missing)}; it needs instruction, observation "
                         "and valid_actions (has_search_bar, history and patch are optional).")
    rows = frame.to_dict("records")

    def flag(v: Any) -> bool:
        return bool(v) and v == v

    return [Context(instruction=str(r["instruction"]), observation=str(r["observation"]),
                    valid_actions=_strings(r["valid_actions"]), has_search_bar=flag(r.get("has_search_bar")),
                    history=_strings(r.get("history")),
                    patch=r["patch"] if isinstance(r.get("patch"), str) and r["patch"] else None) for r in rows]


def predict_frame(policy: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """The pyfunc's answer: per context, the chosen `action` and the `distribution` over actions.

    With `greedy` (default) the action is the distribution's most likely one; otherwise it is
    sampled by the policy with one generator per row, seeded by `seed` and the row's index.
    """
    from teachable.seeding import seeded_rng

    contexts = contexts_of(frame)
    dists = policy.action_distribution(contexts)
    if params.get("greedy", True):
        actions = [max(d, key=d.get) for d in dists]
    else:
        seed = int(params.get("seed", 0))
        actions = policy.act(contexts, [seeded_rng(seed, i) for i in range(len(contexts))])
    return pd.DataFrame({"action": actions, "distribution": dists})


def set_alias(name: str, alias: str, version: str) -> None:
    """Point `name@alias` at `version`.

    Raises:
        PhaseError: MLflow refuses the alias name (letters, digits, `_` and `-` only; not
            `latest`, not `v<number>`).
    """
    try:
        MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as e:
        raise PhaseError(f"cannot set {name}@{alias}: {e.message}") from e


def aliases_of(name: str, version: str) -> list[str]:
    """The aliases that point at a version."""
    return list(MlflowClient().get_model_version(name, version).aliases)


def set_best_aliases(best: Mapping[str, tuple[str, float]], cells: Mapping[str, Mapping[str, str]]) -> None:
    """Point `teachable-adapter@best-<quadrant>` at the best cell of each quadrant by failure gain
    (`teachable.teach.best_per_quadrant`); tag the evaluate run with the choices (`best.<quadrant>`)."""
    for quadrant, (cell, gain) in best.items():
        version = cells[cell].get("version")
        if not version:
            continue
        set_alias(ADAPTER_MODEL, f"{BEST_ALIAS_PREFIX}{quadrant}", str(version))
        mlflow.set_tag(f"best.{quadrant}", f"{cell} (version {version}, failure gain {gain:+.3f})")
        log.info("%s@%s%s -> version %s (%s, failure gain %+.3f)", ADAPTER_MODEL, BEST_ALIAS_PREFIX, quadrant,
                 version, cell, gain)


def heldout_success(version: Any) -> float:
    return tag_float(version, "heldout_success_rate")


def decide_student(candidate: Any, champion: Any | None) -> bool:
    """Promote a student in its competence band when there is no champion, the champion is out of
    its band, or the candidate's held-out success is strictly higher."""
    if candidate.tags.get("competence") != "in_band":
        log.warning("%s version %s is not in its competence band (competence=%s): not promoted (promote it with "
                    "version=%s to force)", STUDENT_MODEL, candidate.version, candidate.tags.get("competence", "unknown"),
                    candidate.version)
        return False
    if champion is None or champion.tags.get("competence") != "in_band":
        return True
    champion_rate = heldout_success(champion)
    return champion_rate != champion_rate or heldout_success(candidate) > champion_rate
