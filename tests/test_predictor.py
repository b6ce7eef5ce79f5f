"""The teachability predictor: ranking metrics by hand, the split by trajectory, both back ends,
save / load, and train_predictor -> registry -> promote -> `models:/teachable-predictor@champion`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from teachable.features import FeatureConfig, compute_features, feature_fingerprint, feature_names
from teachable.predictor import BACKENDS, FeatureSetError, TeachabilityPredictor
from teachable.predictor.metrics import ndcg_at_k, precision_at_k, ranking_curve, spearman
from teachable.predictor.models import PredictorSettings
from teachable.predictor.split import trajectory_split
from teachable.predictor.training import PredictorConfig, train_predictors

SMALL = ["--k", "4", "--embed_dim", "16", "--lgb_rounds", "30", "--mlp_epochs", "60"]


def small_config() -> tuple[PredictorConfig, FeatureConfig, PredictorSettings]:
    """The configs of `SMALL`: (choice, features, back ends)."""
    return PredictorConfig(k=4), FeatureConfig(embed_dim=16), PredictorSettings(lgb_rounds=30, mlp_epochs=60)


def test_metrics_against_hand_computed_values() -> None:
    y, scores = [3.0, 2.0, 0.0, 1.0], [0.1, 0.9, 0.5, 0.3]  # ranked: y = 2, 0, 1, 3
    assert ndcg_at_k(y, scores, 2) == pytest.approx(2.0 / (3.0 + 2.0 / math.log2(3)))
    assert ndcg_at_k(y, scores, 4) == pytest.approx((2.0 + 1.0 / 2.0 + 3.0 / math.log2(5)) /
                                                    (3.0 + 2.0 / math.log2(3) + 1.0 / 2.0))
    assert ndcg_at_k(y, scores, 10) == ndcg_at_k(y, scores, 4)
    assert ndcg_at_k(y, y, 2) == 1.0
    assert precision_at_k(y, scores, 2) == 0.5 and precision_at_k(y, scores, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, scores, 3, threshold=1.5) == pytest.approx(1 / 3)
    assert spearman(y, scores) == pytest.approx(-0.4)  # 1 - 6 * 14 / (4 * 15)
    assert ndcg_at_k([-1.0, 0.5], [1.0, 0.0], 1) == 0.0  # a negative ELP is no gain
    assert math.isnan(ndcg_at_k([-1.0, 0.0], [1.0, 0.0], 1))
    assert precision_at_k([0.0, 1.0, 1.0], [5.0, 5.0, 1.0], 1) == 0.0  # ties keep the input order
    curve = ranking_curve(y, scores)
    assert [c["k"] for c in curve] == [1, 2, 3, 4] and curve[1]["ndcg"] == ndcg_at_k(y, scores, 2)
    with pytest.raises(ValueError, match="equal length"):
        ndcg_at_k([1.0], [1.0, 2.0], 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        precision_at_k([1.0], [1.0], 0)


def test_split_by_trajectory_has_no_leakage() -> None:
    trajs = [f"t{i // 3}" for i in range(30)] + ["t99"]
    train, valid = trajectory_split(trajs, 0.3, seed=0)
    assert sorted(train + valid) == list(range(31))
    assert not {trajs[i] for i in train} & {trajs[i] for i in valid}
    assert len({trajs[i] for i in valid}) == 3  # 30% of 11 trajectories
    assert (train, valid) == trajectory_split(trajs, 0.3, seed=0) != trajectory_split(trajs, 0.3, seed=1)
    with pytest.raises(ValueError, match="at least two"):
        trajectory_split(["t"] * 5, 0.3, 0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        trajectory_split(trajs, 1.0, 0)


@pytest.fixture(scope="module")
def trained(labeled_records: list) -> tuple:
    import copy

    from tests.conftest import synthetic_teachability

    records = []
    for r in labeled_records:
        s = copy.deepcopy(r)
        s.elp_net, s.route = synthetic_teachability(s)
        records.append(s)
    config = small_config()
    return records, config, train_predictors(records, *config)


def test_both_backends_against_the_baselines(trained: tuple) -> None:
    records, config, result = trained
    assert set(result.predictors) == set(BACKENDS) and result.chosen in BACKENDS
    by_id = {r.snapshot_id: r for r in records}
    assert not {by_id[i].traj_id for i in result.train_ids} & {by_id[i].traj_id for i in result.valid_ids}
    models = {r["model"] for r in result.metrics}
    assert models == {"lightgbm", "mlp", "entropy", "random"}
    flat = result.flat_metrics()
    assert {"lightgbm.spearman", "lightgbm.ndcg_at_4", "lightgbm.precision_at_4", "lightgbm.route_accuracy",
            "mlp.ndcg_at_4", "entropy.ndcg_at_4", "random.ndcg_at_4"} <= set(flat)
    # the target is learnable from the features: the chosen model ranks better than chance
    assert flat[f"{result.chosen}.spearman"] > 0.3
    assert flat[f"{result.chosen}.ndcg_at_4"] > flat["random.ndcg_at_4"]
    chosen_ndcg = result.value(result.chosen, "ndcg")
    assert all(chosen_ndcg >= result.value(b, "ndcg") for b in BACKENDS)
    n_valid = len(result.valid_ids)
    assert sorted(c["k"] for c in result.curves if c["model"] == "random") == list(range(1, n_valid + 1))
    again = train_predictors(records, *config)
    assert again.metrics == result.metrics  # deterministic given the seed


def test_save_load_round_trip_and_feature_set_checks(trained: tuple, tmp_path: Path) -> None:
    records, config, result = trained
    features = result.features
    for name, predictor in result.predictors.items():
        before = predictor.predict(features)
        loaded = TeachabilityPredictor.load(predictor.save(tmp_path / name))
        after = loaded.predict(features)
        assert np.allclose(before["elp_net"], after["elp_net"], rtol=1e-9, atol=1e-12)
        assert list(before["route"]) == list(after["route"]) and list(after.columns)[:2] == ["elp_net", "route"]
        assert loaded.fingerprint == feature_fingerprint(config[1])
    assert not any(p.suffix in (".pkl", ".pickle", ".pt") for p in tmp_path.rglob("*"))
    other = FeatureConfig(embed_dim=8)
    with pytest.raises(FeatureSetError, match="trained on"):
        result.predictors["lightgbm"].predict(compute_features(records, other), feature_fingerprint(other))
    with pytest.raises(FeatureSetError, match="lack .* columns"):
        result.predictors["lightgbm"].predict(compute_features(records, other))
    with pytest.raises(FileNotFoundError, match="not a predictor folder"):
        TeachabilityPredictor.load(tmp_path)


def test_bad_predictor_config() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        PredictorConfig(backend="xgboost")
    with pytest.raises(ValueError, match="valid_fraction"):
        PredictorConfig(valid_fraction=0.0)
    with pytest.raises(ValueError, match="at least 4"):
        train_predictors([], PredictorConfig())


def test_promote_decision() -> None:
    from entry_points.predictor_registry import decide_predictor as decide

    assert decide(0.5, None) and decide(0.6, 0.5) and not decide(0.5, 0.5) and not decide(0.4, 0.5)
    assert decide(0.1, math.nan)
    from entry_points.cli import UpstreamError

    for champion in (0.5, None):  # a NaN challenger is refused, champion or not
        with pytest.raises(UpstreamError, match="NDCG is NaN"):
            decide(math.nan, champion)


def test_registry_round_trip_and_promotion(synthetic_label_run: dict) -> None:
    from entry_points import promote, train_predictor
    from entry_points.cli import UpstreamError
    from entry_points.predictor_registry import PREDICTOR_MODEL, VALIDATION_TAG, load_predictor

    label_run = synthetic_label_run["label_run"]
    train_predictor.main(["--label_run", label_run, *SMALL])
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name("teachable").experiment_id
    run = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'train_predictor'")[0]
    assert run.info.status == "FINISHED" and run.data.tags["upstream.label"] == label_run
    for model in ("lightgbm", "mlp", "entropy", "random"):
        assert {f"{model}.spearman", f"{model}.ndcg_at_4", f"{model}.precision_at_4"} <= set(run.data.metrics)
    backend = run.data.tags["predictor.backend"]
    assert backend in BACKENDS
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=""))
    metrics = pd.read_csv(local / "predictor_metrics.csv")
    assert list(metrics.columns) == ["model", "metric", "k", "value"]
    assert metrics.loc[metrics.metric == "spearman", "k"].isna().all()
    assert (metrics.loc[metrics.metric == "ndcg", "k"] == 4).all()
    curves = pd.read_csv(local / "ranking_curves.csv")
    assert list(curves.columns) == ["model", "k", "ndcg", "precision"]
    assert curves.groupby("model")["k"].max().eq(run.data.metrics["n_valid"]).all()
    assert json.loads((local / "feature_names.json").read_text()) == feature_names(FeatureConfig(embed_dim=16))

    v1 = client.get_model_version_by_alias(PREDICTOR_MODEL, "challenger")
    assert str(v1.version) == "1" and v1.run_id == run.info.run_id and v1.tags["backend"] == backend
    with pytest.raises(UpstreamError, match="no alias @champion.*-e promote"):
        load_predictor(f"models:/{PREDICTOR_MODEL}@champion")
    promote.main([])
    assert str(client.get_model_version_by_alias(PREDICTOR_MODEL, "champion").version) == "1"

    # models:/teachable-predictor@champion predicts what the same predictor did before logging
    records = synthetic_label_run["records"]
    result = train_predictors(records, *small_config())
    features = compute_features(records, FeatureConfig(embed_dim=16))
    expected = result.predictors[backend].predict(features)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{PREDICTOR_MODEL}@champion")
    got = pyfunc.predict(features.reset_index(drop=True))
    assert np.allclose(got["elp_net"], expected["elp_net"], rtol=1e-6, atol=1e-9)
    assert list(got["route"]) == list(expected["route"])
    assert pyfunc.metadata.signature is not None

    # a second predictor: promoted only if its validation NDCG is higher; a version on request
    train_predictor.main(["--label_run", label_run, *SMALL, "--backend", "mlp", "--mlp_epochs", "1"])
    v2 = client.get_model_version_by_alias(PREDICTOR_MODEL, "challenger")
    assert str(v2.version) == "2"
    promote.main([])
    better = float(v2.tags[VALIDATION_TAG]) > float(v1.tags[VALIDATION_TAG])
    assert str(client.get_model_version_by_alias(PREDICTOR_MODEL, "champion").version) == ("2" if better else "1")
    promote.main(["--version", "2"])
    assert str(client.get_model_version_by_alias(PREDICTOR_MODEL, "champion").version) == "2"
    with pytest.raises(UpstreamError, match="no version 7"):
        promote.main(["--version", "7"])
