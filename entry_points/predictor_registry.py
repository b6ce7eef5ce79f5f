"""The teachability predictor in the model registry: log it as a pyfunc, register it, read its
aliases and load it back (`train_predictor`, `promote` and `select` share these)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError
from entry_points.runs import PROJECT_ROOT
from entry_points.upstream import MODEL_URI_RE, download_artifact, tag_float
from teachable.features import FeatureConfig, compute_features, feature_fingerprint
from teachable.names import PREDICTOR_MODEL, PREDICTOR_SPLIT
from teachable.predictor import FeatureSetError, TeachabilityPredictor
from teachable.records import LabeledSnapshot

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


def load_checked(ref: str, config: FeatureConfig) -> tuple[Any, Any, Any]:
    """(the pyfunc, the predictor, its model version) of predictor `ref`, its run recorded as
    `upstream.train_predictor` on the active run, checked to compute `config`'s feature set.

    Raises:
        FeatureSetError: the predictor was trained on another feature set than `config`'s.
    """
    model, predictor, model_version = load_predictor(ref)
    if model_version.run_id:
        mlflow.set_tag("upstream.train_predictor", model_version.run_id)
    fingerprint = feature_fingerprint(config)
    if predictor.fingerprint != fingerprint:
        raise FeatureSetError(
            f"predictor={ref!r} (version {model_version.version}) was trained on feature set "
            f"{predictor.fingerprint} ({predictor.feature_config}); select computes {fingerprint} "
            f"(embedder={config.embedder}, embed_dim={config.embed_dim}, feature_max_steps={config.feature_max_steps}): "
            "pass the predictor's feature parameters, or train a predictor on these (train_predictor, then promote).")
    return model, predictor, model_version


def fitted_snapshots(model_version: Any, label_run_id: str) -> set[str]:
    """The snapshot ids a predictor was trained on, when it was trained on `label_run_id` (else none)."""
    if not model_version.run_id:
        return set()
    if MlflowClient().get_run(model_version.run_id).data.tags.get("upstream.label") != label_run_id:
        return set()
    split = download_artifact(model_version.run_id, PREDICTOR_SPLIT, f"predictor version {model_version.version}")
    return set(json.loads(split.read_text())["train"])


def predicted_scores(model: Any, predictor: Any, config: FeatureConfig,
                     pool: Sequence[LabeledSnapshot]) -> dict[str, float]:
    """The predictor's ELP_net of every snapshot of `pool` (its features computed with `config`)."""
    features = compute_features(pool, config)
    out = model.predict(features[predictor.feature_names].reset_index(drop=True))
    return dict(zip(features.index, out["elp_net"].astype(float), strict=True))


def selection_predictor(ref: str, methods: Sequence[str], features: FeatureConfig, label_run_id: str,
                        upstream: dict[str, str]) -> tuple[Any, set[str]]:
    """For `select`: (the pyfunc, predictor and version of predictor `ref`, checked against the
    feature set `features`, or None when none of `methods` needs it; the snapshot ids it was
    trained on when that was `label_run_id`). Tags the run with the version and adds it to `upstream`."""
    if "predictor" not in methods:
        return None, set()
    champion = load_checked(ref, features)
    version = champion[2]
    mlflow.set_tag("predictor_version", str(version.version))
    upstream["predictor"] = f"models:/{version.name}/{version.version}"
    return champion, fitted_snapshots(version, label_run_id)


def validation_ndcg(version: Any) -> float:
    return tag_float(version, VALIDATION_TAG)


def decide_predictor(candidate_ndcg: float, champion_ndcg: float | None) -> bool:
    """Promote when there is no champion, or the candidate's NDCG is strictly higher.

    Raises:
        UpstreamError: the candidate's NDCG is NaN: there is nothing to compare, so it is refused.
    """
    if candidate_ndcg != candidate_ndcg:
        raise UpstreamError(
            "the challenger's validation NDCG is NaN (no validation snapshot has a positive ELP_net, so its ranking "
            "was never measured): it is not promoted. Label more snapshots, or a student in its competence band, and "
            "train the predictor again; or promote a version explicitly with version=<n>.")
    if champion_ndcg is None:
        return True
    return champion_ndcg != champion_ndcg or candidate_ndcg > champion_ndcg
