"""Figures and tables of the teachability predictor (`ranking_curves.csv`, `predictor_metrics.csv`).

`ranking_curves.csv` has one row per model (lightgbm, mlp, entropy, random) and cut-off k
(1..n_test) with NDCG@k and precision@k of the held-out ranking by predicted ELP_net;
`predictor_metrics.csv` one row per model, metric (spearman, ndcg, precision, route_accuracy)
and k (empty for metrics without a cut-off).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from teachable.reporting.tables import require_columns  # noqa: E402

CURVE_COLUMNS: tuple[str, ...] = ("model", "k", "ndcg", "precision")
METRIC_COLUMNS: tuple[str, ...] = ("model", "metric", "k", "value")
MODEL_ORDER: tuple[str, ...] = ("lightgbm", "mlp", "entropy", "random")
MODEL_STYLE = {"lightgbm": ("tab:blue", "-"), "mlp": ("tab:purple", "-"), "entropy": ("tab:orange", "--"),
               "random": ("tab:gray", ":")}


def _model_key(model: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model)


def ranking_curves_figure(curves: pd.DataFrame):
    """NDCG@k and precision@k against k, one line per model (the baselines dashed / dotted)."""
    require_columns(curves, CURVE_COLUMNS, "ranking_curves.csv (of train_predictor)")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for model in sorted(curves["model"].unique(), key=_model_key):
        part = curves[curves["model"] == model].sort_values("k")
        color, style = MODEL_STYLE.get(model, (None, "-"))
        for ax, col in zip(axes, ("ndcg", "precision"), strict=True):
            ax.plot(part["k"], part[col], linestyle=style, color=color, label=model)
    for ax, col in zip(axes, ("NDCG@k", "precision@k"), strict=True):
        ax.set_xlabel("k (top-k held-out snapshots by predicted ELP_net)")
        ax.set_ylabel(col)
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("Teachability predictor: ranking on the held-out split")
    fig.tight_layout()
    return fig


def predictor_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column per metric (`<metric>@<k>` for cut-off metrics)."""
    require_columns(metrics, METRIC_COLUMNS, "predictor_metrics.csv (of train_predictor)")
    k = pd.to_numeric(metrics["k"], errors="coerce")
    name = [m if pd.isna(kk) else f"{m}@{int(kk)}" for m, kk in zip(metrics["metric"], k, strict=True)]
    frame = pd.DataFrame({"model": metrics["model"], "metric": name, "value": metrics["value"].astype(float)})
    wide = frame.pivot_table(index="model", columns="metric", values="value", aggfunc="first", sort=False)
    wide = wide.loc[sorted(wide.index, key=_model_key)]
    wide.columns.name = None
    return wide.reset_index()
