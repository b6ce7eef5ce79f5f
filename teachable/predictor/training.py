"""Train both predictor back ends on labeled snapshots and compare them with the baselines.

The labeled snapshots with an ELP_net are split by trajectory (`split.trajectory_split`); both
back ends are fitted on the training side and ranked on the validation side, together with two
baselines on the same validation snapshots: `entropy` (rank by the student's entropy U) and
`random` (random scores, the mean over `n_random` seeds). The chosen back end is the one with
the better validation NDCG@k (Spearman breaks a NaN NDCG; LightGBM wins ties), or the one named
in `backend`. The chosen model stays the one fitted on the training side, so its recorded
validation metrics are those of the model that is shipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from teachable.features import FeatureConfig, compute_features, feature_fingerprint
from teachable.predictor.metrics import mean_of, ranking_curve, ranking_metrics
from teachable.predictor.models import BACKENDS, PredictorSettings, TeachabilityPredictor
from teachable.predictor.split import trajectory_split
from teachable.records import LabeledSnapshot
from teachable.seeding import seeded_rng

log = logging.getLogger(__name__)


@dataclass
class PredictorConfig:
    """How predictors are chosen (the `train_predictor` phase): the back end, the split and the
    ranking metrics; the features are a `FeatureConfig`, the models' settings `PredictorSettings`."""

    backend: str = field(default="auto", metadata={"help": "auto (the better validation NDCG@k), lightgbm or mlp"})
    k: int = field(default=8, metadata={"help": "k of NDCG@k and precision@k"})
    valid_fraction: float = field(default=0.5, metadata={"help": "share of trajectories held out for validation (select on the same label run picks from this side only)"})
    n_random: int = field(default=20, metadata={"help": "seeds of the random baseline"})
    seed: int = field(default=0, metadata={"help": "seed of the split, the models and the random baseline"})

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *BACKENDS):
            raise ValueError(f"backend must be auto, lightgbm or mlp, got {self.backend!r}.")
        if self.k < 1 or self.n_random < 1:
            raise ValueError(f"k and n_random must be >= 1, got k={self.k}, n_random={self.n_random}.")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {self.valid_fraction}.")


@dataclass
class PredictorResult:
    """What `train_predictors` found.

    Attributes:
        predictors: the fitted predictor of each back end.
        chosen: the back end to ship.
        metrics: rows `model, metric, k, value` (k None for metrics without k).
        curves: rows `model, k, ndcg, precision` for k = 1 .. n_valid.
        train_ids, valid_ids: the snapshot ids on each side of the split.
        features: the feature table of every usable snapshot.
    """

    predictors: dict[str, TeachabilityPredictor]
    chosen: str
    metrics: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    train_ids: list[str]
    valid_ids: list[str]
    features: pd.DataFrame = field(repr=False)

    def value(self, model: str, metric: str) -> float:
        """One metric of one model (`metric` as in the rows, e.g. `ndcg`, `spearman`)."""
        for r in self.metrics:
            if r["model"] == model and r["metric"] == metric:
                return r["value"]
        raise KeyError(f"no metric {metric} for {model}")

    def flat_metrics(self) -> dict[str, float]:
        """`<model>.<metric>` (`<metric>_at_<k>` for the @k metrics), NaNs left out."""
        out = {}
        for r in self.metrics:
            key = f"{r['model']}.{r['metric']}" + (f"_at_{r['k']}" if r["k"] is not None else "")
            if r["value"] == r["value"]:
                out[key] = r["value"]
        return out


def usable_snapshots(records: Sequence[LabeledSnapshot]) -> list[LabeledSnapshot]:
    """The labeled snapshots with an ELP_net (a snapshot whose teacher failed has none)."""
    return [r for r in records if r.elp_net is not None and not math.isnan(r.elp_net)]


def _rows(model: str, m: dict[str, float], k: int) -> list[dict[str, Any]]:
    return [{"model": model, "metric": "spearman", "k": None, "value": m["spearman"]},
            {"model": model, "metric": "ndcg", "k": k, "value": m[f"ndcg_at_{k}"]},
            {"model": model, "metric": "precision", "k": k, "value": m[f"precision_at_{k}"]}]


def _choose(by_model: dict[str, dict[str, float]], k: int) -> str:
    def key(name: str) -> tuple[float, float]:
        ndcg, rho = by_model[name][f"ndcg_at_{k}"], by_model[name]["spearman"]
        return (ndcg if ndcg == ndcg else -math.inf, rho if rho == rho else -math.inf)

    return max(BACKENDS, key=key)  # max keeps the first of equals: lightgbm


def train_predictors(records: Sequence[LabeledSnapshot], config: PredictorConfig,
                     fconfig: FeatureConfig | None = None, settings: PredictorSettings | None = None) -> PredictorResult:
    """Fit both back ends (with `settings`, default `PredictorSettings()`) on the features of
    `fconfig` (default `FeatureConfig()`), rank the validation snapshots, compare with the
    baselines, choose one.

    Raises:
        ValueError: too few labeled snapshots or trajectories to split.
    """
    usable = usable_snapshots(records)
    if len(usable) < 4:
        raise ValueError(f"{len(usable)} labeled snapshots with an ELP_net; the predictor needs at least 4 "
                         "(label more snapshots with max_snapshots).")
    fconfig = fconfig or FeatureConfig()
    settings = settings or PredictorSettings()
    fingerprint = feature_fingerprint(fconfig)
    features = compute_features(usable, fconfig)
    train, valid = trajectory_split([r.traj_id for r in usable], config.valid_fraction, config.seed)
    y = np.array([r.elp_net for r in usable], dtype=np.float64)
    routes = [r.route for r in usable]
    x_train, x_valid = features.iloc[train], features.iloc[valid]
    y_valid = y[valid]
    by_model: dict[str, dict[str, float]] = {}
    metrics: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    predictors = {}
    for name in BACKENDS:
        predictor = TeachabilityPredictor(name, settings, list(features.columns), fingerprint, fconfig.to_dict())
        predictor.fit(x_train, y[train], [routes[i] for i in train], fingerprint)
        out = predictor.predict(x_valid, fingerprint)
        predictors[name] = predictor
        by_model[name] = ranking_metrics(y_valid, out["elp_net"].to_numpy(), config.k)
        metrics += _rows(name, by_model[name], config.k)
        accuracy = float(np.mean(out["route"].to_numpy() == np.array([routes[i] for i in valid])))
        metrics.append({"model": name, "metric": "route_accuracy", "k": None, "value": accuracy})
        curves += [{"model": name, **c} for c in ranking_curve(y_valid, out["elp_net"].to_numpy())]
    entropy = x_valid["u_entropy"].to_numpy()
    by_model["entropy"] = ranking_metrics(y_valid, entropy, config.k)
    metrics += _rows("entropy", by_model["entropy"], config.k)
    curves += [{"model": "entropy", **c} for c in ranking_curve(y_valid, entropy)]
    random_scores = [seeded_rng(config.seed, 7919, i).random(len(valid))
                     for i in range(config.n_random)]
    by_model["random"] = mean_of([ranking_metrics(y_valid, s, config.k) for s in random_scores])
    metrics += _rows("random", by_model["random"], config.k)
    random_curves = [ranking_curve(y_valid, s) for s in random_scores]
    for i in range(len(valid)):
        mean = mean_of([{"ndcg": c[i]["ndcg"], "precision": c[i]["precision"]} for c in random_curves])
        curves.append({"model": "random", "k": i + 1, **mean})
    chosen = _choose(by_model, config.k) if config.backend == "auto" else config.backend
    log.info("predictor: %d train / %d validation snapshots; chosen %s; %s", len(train), len(valid), chosen,
             {m: {k: round(v, 3) for k, v in d.items()} for m, d in by_model.items()})
    return PredictorResult(predictors=predictors, chosen=chosen, metrics=metrics, curves=curves,
                           train_ids=[usable[i].snapshot_id for i in train],
                           valid_ids=[usable[i].snapshot_id for i in valid], features=features)
