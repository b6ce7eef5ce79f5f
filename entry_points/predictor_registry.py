"""The teachability predictor in the model registry: log it as a pyfunc, register it, read its
aliases and load it back (`train_predictor`, `promote` and `select` share these)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError
from entry_points.runs import PROJECT_ROOT
from entry_points.upstream import MODEL_URI_RE
from teachable.names import PREDICTOR_MODEL
from teachable.predictor import TeachabilityPredictor

PYFUNC_CODE = Path(__file__).with_name("predictor_model.py")
VALIDATION_TAG = "validation_ndcg"
K_TAG = "ndcg_k"
FINGERPRINT_TAG = "feature_fingerprint"
# Passed explicitly: inferring them imports the model and costs seconds.
PIP_REQUIREMENTS = ["mlflow==3.17.2", "lightgbm==4.7.0", "torch==2.13.0", "safetensors==0.8.0", "numpy==2.4.6",
                    "pandas==3.1.1", "scipy==1.17.1"]


def log_predictor(folder: Path, predictor: TeachabilityPredictor, example: pd.DataFrame,
                  tags: dict[str, str]) -> str:
    """Log the saved predictor `folder` as a pyfunc on the active run, register it as a new
    version of `teachable-predictor` with `tags`; return the version."""
    signature = infer_signature(example, predictor.predict(example).reset_index(drop=True))
    info = mlflow.pyfunc.log_model(
        name="predictor", python_model=str(PYFUNC_CODE), artifacts={"predictor": str(folder)},
        code_paths=[str(PROJECT_ROOT / "teachable")], signature=signature, input_example=example.iloc[:2],
        pip_requirements=PIP_REQUIREMENTS, registered_model_name=PREDICTOR_MODEL,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(PREDICTOR_MODEL, version, key, value)
    return version


def predictor_version(uri: str, param: str = "predictor") -> Any:
    """The model version a `models:/teachable-predictor@alias` or `/version` URI names.

    Raises:
        UpstreamError: a malformed URI, or no such model, alias or version (the message says how
            to create it).
    """
    m = MODEL_URI_RE.match(uri)
    if not m:
        raise UpstreamError(f"{param}={uri!r}: expected models:/{PREDICTOR_MODEL}@<alias> or "
                            f"models:/{PREDICTOR_MODEL}/<version>.")
    client = MlflowClient()
    try:
        client.get_registered_model(m["name"])
    except MlflowException as e:
        raise UpstreamError(f"{param}={uri!r}: no registered model {m['name']!r}; train one with "
                            "`mlflow run . -e train_predictor --env-manager local`, then "
                            "`mlflow run . -e promote --env-manager local`.") from e
    try:
        if m["alias"]:
            return client.get_model_version_by_alias(m["name"], m["alias"])
        return client.get_model_version(m["name"], m["version"])
    except MlflowException as e:
        which = f"alias @{m['alias']}" if m["alias"] else f"version {m['version']}"
        raise UpstreamError(f"{param}={uri!r}: registered model {m['name']!r} has no {which}; "
                            "create it with `mlflow run . -e promote --env-manager local` (moves @champion to the "
                            "challenger, or -P version=<n>) or pass another alias or version.") from e


def load_predictor(uri: str, param: str = "predictor") -> tuple[Any, TeachabilityPredictor, Any]:
    """(the pyfunc, the predictor inside it, its model version) of a registered predictor URI.

    Raises:
        UpstreamError: see `predictor_version`.
    """
    version = predictor_version(uri, param)
    uri = f"models:/{version.name}/{version.version}"
    model = mlflow.pyfunc.load_model(uri)
    return model, model.unwrap_python_model().predictor, version
