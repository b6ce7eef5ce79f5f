"""Phase `train_predictor`: learn to predict teachability (ELP_net and the route) from features.

    mlflow run . -e train_predictor --env-manager local -P k=8
    python -m entry_points.train_predictor --label_run latest --embedder hashing

Both back ends (LightGBM and a two-head MLP) are trained on the labeled snapshots of one side of
a split by trajectory and ranked on the other, with the entropy and random baselines on the same
validation snapshots. Logs `<model>.spearman`, `<model>.ndcg_at_<k>`, `<model>.precision_at_<k>`
and `<model>.route_accuracy`; the artifacts `predictor_metrics.csv` (model, metric, k, value),
`ranking_curves.csv` (model, k, ndcg, precision for k = 1..n), `feature_names.json` and
`split.json`; the chosen back end (tag `predictor.backend`) as a pyfunc, registered as a version
of `teachable-predictor` with alias `@challenger` (`promote` makes it `@champion`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from entry_points.cli import parse_configs, run_cli
from entry_points.datasets import TRAINING
from entry_points.predictor_registry import (
    FINGERPRINT_TAG,
    K_TAG,
    PREDICTOR_MODEL,
    VALIDATION_TAG,
    log_predictor,
)
from entry_points.runs import TrackingArgs, log_metrics, start_phase
from entry_points.upstream import read_records, resolve_upstream
from teachable.features import FeatureConfig, feature_fingerprint
from teachable.names import LABELED_SNAPSHOTS, PREDICTOR_METRICS, PREDICTOR_SPLIT, RANKING_CURVES
from teachable.predictor.models import PredictorSettings
from teachable.predictor.training import PredictorConfig, PredictorResult, train_predictors
from teachable.records import LabeledSnapshot, read_jsonl

PHASE = "train_predictor"
CHALLENGER = "challenger"
log = logging.getLogger(__name__)


@dataclass
class PredictorArgs:
    """The labels the `train_predictor` phase learns from."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest or a run id"})


CONFIG = (PredictorArgs, PredictorConfig, FeatureConfig, PredictorSettings, TrackingArgs)


def write_tables(result: PredictorResult, out: Path) -> None:
    """`predictor_metrics.csv`, `ranking_curves.csv`, `feature_names.json` and `split.json` in `out`."""
    metrics = pd.DataFrame(result.metrics, columns=["model", "metric", "k", "value"])
    metrics["k"] = metrics["k"].astype("Int64")
    metrics.to_csv(out / PREDICTOR_METRICS, index=False)
    pd.DataFrame(result.curves, columns=["model", "k", "ndcg", "precision"]).to_csv(out / RANKING_CURVES,
                                                                                    index=False)
    (out / "feature_names.json").write_text(json.dumps(list(result.features.columns), indent=1))
    (out / PREDICTOR_SPLIT).write_text(json.dumps({"train": result.train_ids, "valid": result.valid_ids}, indent=1))


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, config, features, settings, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs):
        up = resolve_upstream("label", args.label_run, "label_run")
        records = read_jsonl(read_records(up.run_id, LABELED_SNAPSHOTS, f"label_run={args.label_run!r}",
                                          TRAINING), LabeledSnapshot)
        result = train_predictors(records, config, features, settings)
        chosen = result.predictors[result.chosen]
        fingerprint = feature_fingerprint(features)
        log_metrics({**result.flat_metrics(), "n_train": len(result.train_ids), "n_valid": len(result.valid_ids),
                     "n_features": result.features.shape[1]})
        mlflow.set_tags({"predictor.backend": result.chosen, "predictor.feature_fingerprint": fingerprint})
        ndcg = result.value(result.chosen, "ndcg")
        with tempfile.TemporaryDirectory() as tmp:
            write_tables(result, Path(tmp))
            mlflow.log_artifacts(tmp)
            folder = chosen.save(Path(tmp) / "predictor", extra={"label_run": up.run_id, "k": config.k,
                                                                  "validation_ndcg": ndcg})
            version = log_predictor(folder, chosen, result.features.iloc[:5], tags={
                VALIDATION_TAG: str(ndcg), K_TAG: str(config.k), FINGERPRINT_TAG: fingerprint,
                "backend": result.chosen, "label_run": up.run_id})
        MlflowClient().set_registered_model_alias(PREDICTOR_MODEL, CHALLENGER, version)
        mlflow.set_tag("registered_model", f"models:/{PREDICTOR_MODEL}/{version}")
        log.info("registered %s version %s (%s) as @%s", PREDICTOR_MODEL, version, result.chosen, CHALLENGER)


if __name__ == "__main__":
    run_cli(main)
