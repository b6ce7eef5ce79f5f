"""The report: tables as files, the H7 and predictor figures, and the `report` phase on runs made
by the real phases (label, train_matrix, evaluate) plus train_predictor / select runs logged
here with artifacts that follow those phases' contracts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError
from entry_points.runs import PHASE_TAG, setup_tracking
from teachable.reporting.predictor import predictor_table, ranking_curves_figure
from teachable.reporting.report import ReportConfig
from teachable.reporting.selection import aggregate_selection, frontier_figure, gain_vs_k_figure
from teachable.reporting.tables import to_latex, to_markdown, write_table

METHODS = ("random", "entropy", "predictor", "oracle")


def selection_summary() -> pd.DataFrame:
    """Random with three seeds, the other methods once, at K = 4 and 8; gains computed from simple rules."""
    rows = []
    for k in (4, 8):
        for seed in (0, 1, 2):
            rows.append({"method": "random", "K": k, "seed": seed, "failure_gain": 0.01 * (seed + 1) * k / 4,
                         "retention_change": -0.02 * seed, "heldout_gain": 0.0, "n_examples": k})
        for i, method in enumerate(METHODS[1:], start=1):
            rows.append({"method": method, "K": k, "seed": None, "failure_gain": 0.05 * i * k / 4,
                         "retention_change": -0.01 * i, "heldout_gain": 0.01 * i, "n_examples": k})
    return pd.DataFrame(rows)


def predictor_frames(n_test: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`predictor_metrics.csv` and `ranking_curves.csv` of a ranking of `n_test` held-out labels."""
    rng = np.random.default_rng(0)
    truth = rng.permutation(n_test).astype(float)
    scores = {"lightgbm": truth + rng.normal(0, 1, n_test), "mlp": truth + rng.normal(0, 3, n_test),
              "entropy": rng.normal(0, 1, n_test), "random": rng.normal(0, 1, n_test)}
    ideal = np.sort(truth)[::-1]
    discount = 1 / np.log2(np.arange(2, n_test + 2))
    curves, metrics = [], []
    for model, s in scores.items():
        order = np.argsort(-s)
        for k in range(1, n_test + 1):
            ndcg = float((truth[order[:k]] * discount[:k]).sum() / (ideal[:k] * discount[:k]).sum())
            precision = len(set(order[:k]) & set(np.argsort(-truth)[:k])) / k
            curves.append({"model": model, "k": k, "ndcg": ndcg, "precision": precision})
        at3 = [c for c in curves if c["model"] == model and c["k"] == 3][0]
        metrics += [{"model": model, "metric": "spearman", "k": None,
                     "value": float(np.corrcoef(np.argsort(np.argsort(s)), np.argsort(np.argsort(truth)))[0, 1])},
                    {"model": model, "metric": "ndcg", "k": 3, "value": at3["ndcg"]},
                    {"model": model, "metric": "precision", "k": 3, "value": at3["precision"]},
                    {"model": model, "metric": "route_accuracy", "k": None, "value": 0.5}]
    return pd.DataFrame(metrics), pd.DataFrame(curves)


def test_tables_are_written_as_csv_markdown_and_latex(tmp_path: Path) -> None:
    frame = pd.DataFrame({"model": ["base", "Q1__demo|x"], "success_rate": [0.125, float("nan")], "n": [32, 8]})
    assert to_markdown(frame) == ("| model | success_rate | n |\n|---|---:|---:|\n| base | 0.125 | 32 |\n"
                                  "| Q1__demo\\|x | no data | 8 |\n")
    latex = to_latex(frame)
    assert "success\\_rate" in latex and "Q1\\_\\_demo" in latex and "\\toprule" in latex and "0.125" in latex
    paths = write_table(frame, tmp_path / "tables", "eval")
    assert [p.name for p in paths] == ["eval.csv", "eval.md", "eval.tex"]
    back = pd.read_csv(paths[0])
    assert back["success_rate"].iloc[0] == 0.125 and back["n"].tolist() == [32, 8]
    with pytest.raises(ValueError, match="unknown table formats"):
        write_table(frame, tmp_path, "x", formats=("html",))


def test_selection_is_aggregated_over_seeds_per_method_and_k() -> None:
    agg = aggregate_selection(selection_summary())
    assert list(zip(agg["method"], agg["K"], strict=True)) == [(m, k) for m in METHODS for k in (4, 8)]
    r8 = agg[(agg["method"] == "random") & (agg["K"] == 8)].iloc[0]
    assert r8["n_seeds"] == 3
    assert r8["failure_gain"] == pytest.approx((0.02 + 0.04 + 0.06) / 3)
    assert r8["failure_gain_sd"] == pytest.approx(0.02)  # sd of 0.02, 0.04, 0.06 (ddof 1)
    assert r8["retention_change"] == pytest.approx(-0.02) and r8["retention_change_sd"] == pytest.approx(0.02)
    oracle = agg[agg["method"] == "oracle"].iloc[1]
    assert oracle["n_seeds"] == 1 and oracle["failure_gain_sd"] == 0.0 and oracle["failure_gain"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"lacks columns \['retention_change'\]"):
        aggregate_selection(selection_summary().drop(columns="retention_change"))


def test_frontier_puts_random_at_its_mean_with_its_spread() -> None:
    fig = frontier_figure(selection_summary())
    ax = fig.axes[0]
    containers = {c.get_label().split(" ")[0]: c for c in ax.containers}
    assert set(containers) == set(METHODS)
    points = containers["random"].lines[0].get_xydata()
    np.testing.assert_allclose(points, [[-0.02, 0.02], [-0.02, 0.04]])
    assert containers["random"].has_xerr and containers["random"].has_yerr
    assert not containers["oracle"].has_yerr
    np.testing.assert_allclose(containers["oracle"].lines[0].get_xydata(), [[-0.03, 0.15], [-0.03, 0.3]])
    assert sorted(t.get_text() for t in ax.texts) == sorted(["K=4", "K=8"] * 4)
    plt.close(fig)
    fig = gain_vs_k_figure(selection_summary())
    assert len(fig.axes) == 2 and all(len(ax.containers) == 4 for ax in fig.axes)
    plt.close(fig)


def test_predictor_table_and_curves() -> None:
    metrics, curves = predictor_frames()
    table = predictor_table(metrics)
    assert table["model"].tolist() == ["lightgbm", "mlp", "entropy", "random"]
    assert list(table.columns) == ["model", "spearman", "ndcg@3", "precision@3", "route_accuracy"]
    lgb = metrics[(metrics["model"] == "lightgbm") & (metrics["metric"] == "ndcg")]["value"].iloc[0]
    assert table.loc[0, "ndcg@3"] == lgb
    fig = ranking_curves_figure(curves)
    assert [len(ax.lines) for ax in fig.axes] == [4, 4]
    assert fig.axes[0].lines[0].get_xydata()[:, 1].tolist() == curves[curves["model"] == "lightgbm"]["ndcg"].tolist()
    plt.close(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        ranking_curves_figure(curves.drop(columns="ndcg"))


def test_report_config_checks_formats() -> None:
    with pytest.raises(ValueError, match="figure_formats='gif'"):
        ReportConfig(figure_formats="gif")
    from entry_points.report import ReportArgs

    assert ReportArgs().refs()["select"] == "latest"


def logged_run(phase: str, frames: dict[str, pd.DataFrame], params: dict[str, str]) -> str:
    with mlflow.start_run(run_name=phase) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tag(PHASE_TAG, phase)
        mlflow.log_params(params)
        for name, frame in frames.items():
            frame.to_csv(Path(tmp) / name, index=False)
        mlflow.log_artifacts(tmp)
    return run.info.run_id


def test_report_phase_on_real_and_contract_runs(mlflow_store: str, small_data_dir: Path, tiny_student: str,
                                                one_torch_thread) -> None:
    from entry_points import evaluate, label, mine, report, rollouts, train_matrix

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "12", "--max_steps", "8"])
    mine.main(["--offsets", "1,2", "--include_search_steps", "false"])
    label.main(["--data_dir", str(small_data_dir), "--student", tiny_student, "--max_snapshots", "8",
                "--n_min", "2", "--n_max", "2", "--rollout_batch", "2", "--max_steps", "8"])
    client = MlflowClient()
    exp = setup_tracking()
    label_run = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'label'")[0]
    cells = sorted({r.quadrant for r in read_labels(label_run.info.run_id)})[:1]
    train_matrix.main(["--cells", f"{cells[0]}__demo,B2_all", "--examples_per_cell", "2", "--train_steps", "1",
                       "--train_batch_size", "2"])
    evaluate.main(["--data_dir", str(small_data_dir), "--heldout_goals", "2", "--failure_snapshots", "3",
                   "--retention_goals", "0", "--episodes_per_item", "1", "--max_steps", "8", "--n_boot", "20"])
    metrics, curves = predictor_frames()
    predictor_run = logged_run("train_predictor", {"predictor_metrics.csv": metrics, "ranking_curves.csv": curves},
                               {"label_run": label_run.info.run_id})
    select_run = logged_run("select", {"selection_summary.csv": selection_summary()},
                            {"label_run": label_run.info.run_id, "budgets": "4,8"})

    report.main([])
    run = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'report'")[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["upstream.train_predictor"] == predictor_run and run.data.tags["upstream.select"] == select_run
    assert "report.skipped.recovery" in run.data.tags  # no recovery run: noted, not an error
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))
    figures = {p.name for p in (local / "figures").iterdir()}
    for name in ("quadrant_scatter", "elp_by_quadrant", "matrix_heatmap", "ranking_curves", "h7_frontier",
                 "h7_gain_vs_k"):
        assert {f"{name}.png", f"{name}.pdf"} <= figures
    tables = {p.name for p in (local / "tables").iterdir()}
    for name in ("label_summary", "training_matrix", "eval_summary", "predictor_metrics", "selection_summary"):
        assert {f"{name}.csv", f"{name}.md", f"{name}.tex"} <= tables
    assert run.data.metrics["n_figures"] == 12 and run.data.metrics["n_tables"] == 15

    matrix = pd.read_csv(local / "tables" / "training_matrix.csv")
    assert sorted(matrix["cell"]) == sorted([f"{cells[0]}__demo", "B2_all"])
    evaluation = pd.read_csv(local / "tables" / "eval_summary.csv")
    assert set(evaluation["model"]) == {"base", *matrix[matrix["status"] == "finished"]["cell"]}
    assert "failures_success_gain" in evaluation.columns
    selection = pd.read_csv(local / "tables" / "selection_summary.csv")
    assert len(selection) == 8 and selection[selection["method"] == "random"]["n_seeds"].tolist() == [3, 3]
    assert "| random | 8 | 3 |" in (local / "tables" / "selection_summary.md").read_text()
    predictor = pd.read_csv(local / "tables" / "predictor_metrics.csv")
    assert predictor["model"].tolist() == ["lightgbm", "mlp", "entropy", "random"]
    elp = pd.read_csv(local / "tables" / "label_summary.csv")
    assert set(elp["format"]) <= {"demo", "contrast", "hint", "net"} and elp["n"].sum() > 0

    report.main(["--select_run", "none", "--train_predictor_run", "none", "--evaluate_run", "none",
                 "--figure_formats", "png", "--table_formats", "csv"])
    partial = client.search_runs([exp], filter_string="tags.`teachable.phase` = 'report'",
                                 order_by=["attributes.start_time DESC"])[0]
    names = {a.path for a in client.list_artifacts(partial.info.run_id, "figures")}
    assert names == {"figures/quadrant_scatter.png", "figures/elp_by_quadrant.png"}
    assert partial.data.tags["report.skipped.select"] == "select_run=none"
    with pytest.raises(UpstreamError, match="is a label run, not a select run"):
        report.main(["--select_run", label_run.info.run_id])


def test_report_with_nothing_to_report_fails_clearly(mlflow_store: str) -> None:
    from entry_points import report

    with pytest.raises(UpstreamError, match="nothing to report"):
        report.main([])


def read_labels(run_id: str):
    from teachable.records import LabeledSnapshot, read_jsonl

    return read_jsonl(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="labeled_snapshots.jsonl"),
                      LabeledSnapshot)


def test_training_summary_json_round_trip(tmp_path: Path) -> None:
    from teachable.reporting.evaluation import matrix_table

    summary = {"cells": {"Q1_highU_highL__demo": {"status": "finished", "n_examples": 4, "n_available": 2,
                                                  "with_replacement": True, "train_loss": 1.5, "version": "3"},
                         "B1_uniform": {"status": "failed", "error": "empty"}}}
    table = matrix_table(json.loads(json.dumps(summary)))
    assert table["quadrant"].tolist() == ["Q1_highU_highL", "all"] and table["format"].tolist() == ["demo", "mixed"]
    assert table["status"].tolist() == ["finished", "failed"] and table["train_loss"].iloc[0] == 1.5


def test_comparison_table_puts_each_set_in_a_column() -> None:
    from teachable.reporting.selection import comparison_table

    rows = [(k, "predictor", "random", s, 30, 0.01 * k, -0.02, 0.04) for k in (8, 16) for s in ("failures", "heldout")]
    rows.append((8, "oracle", "random", "failures", 30, 0.1, 0.05, 0.15))
    frame = pd.DataFrame(rows, columns=["K", "method", "versus", "set", "n_items", "success_diff", "success_diff_low",
                                        "success_diff_high"])
    table = comparison_table(frame)
    assert list(table.columns) == ["K", "method", "versus", "failures (diff [95% CI])", "heldout (diff [95% CI])"]
    assert table[["K", "method"]].values.tolist() == [[8, "predictor"], [8, "oracle"], [16, "predictor"]]
    assert table.iloc[0]["failures (diff [95% CI])"] == "0.080 [-0.020, 0.040]"
    assert pd.isna(table.iloc[1]["heldout (diff [95% CI])"])  # oracle vs random ran on the failure states only
    with pytest.raises(ValueError, match="selection_comparisons.csv"):
        comparison_table(frame.drop(columns="versus"))


def test_single_selections_get_their_bootstrap_intervals_as_error_bars(tmp_path: Path) -> None:
    from teachable.reporting.selection import _error

    summary = selection_summary()
    for col in ("failure_gain", "retention_change", "heldout_gain"):
        summary[f"{col}_low"], summary[f"{col}_high"] = summary[col] - 0.02, summary[col] + 0.05
    agg = aggregate_selection(summary)
    oracle = agg[(agg.method == "oracle") & (agg.K == 4)].iloc[0]
    assert oracle["failure_gain_low"] == pytest.approx(0.15 - 0.02) and oracle["failure_gain_high"] == pytest.approx(0.2)
    assert agg[agg.method == "random"]["failure_gain_low"].isna().all()  # seeds: the sd, not one interval
    bars = _error(agg[agg.method == "oracle"], "failure_gain")
    assert bars.shape == (2, 2) and np.allclose(bars, [[0.02, 0.02], [0.05, 0.05]])  # below, above: asymmetric
    assert np.allclose(_error(agg[agg.method == "random"], "failure_gain"), agg[agg.method == "random"]["failure_gain_sd"])
    assert _error(aggregate_selection(selection_summary()).query("method == 'oracle'"), "failure_gain") is None
    for fig in (frontier_figure(summary), gain_vs_k_figure(summary)):
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert "oracle (95% CI over items)" in labels and "random (mean ± sd over 3 seeds)" in labels
        fig.savefig(tmp_path / "h7.png")
