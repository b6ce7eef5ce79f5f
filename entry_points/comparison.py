"""A comparison with the base student on the phase run: evaluate, recovery and select log it here.

Metrics on the active run: `<set>_success/<model>`, `<set>_score/<model>`,
`<set>_success_gain/<model>` and `<set>_success_gain_mde/<model>`; on a cell's own run (its
`run_id` in `cells`): `eval_<set>_success`, `eval_<set>_score`, `eval_<set>_success_gain`.
Artifacts: `eval_<set>.csv` and `eval_summary.csv` (see `teachable.evaluation.write_eval_csvs`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from entry_points.runs import log_metrics
from teachable.evaluation import write_eval_csvs
from teachable.teach import Comparison


def log_comparison(comparison: Comparison, cells: Mapping[str, Mapping[str, Any]] | None = None, *,
                   metrics: bool = True) -> None:
    """Log the comparison's CSVs and (with `metrics`) its metrics, on the run and each cell's run."""
    if metrics:
        log_results(comparison, cells or {})
    with tempfile.TemporaryDirectory() as tmp:
        write_eval_csvs(comparison.rows, comparison.summary, tmp, gains=comparison.gains)
        mlflow.log_artifacts(tmp)


def log_results(comparison: Comparison, cells: Mapping[str, Mapping[str, Any]]) -> None:
    """Metrics on the active run (`<set>_success/<model>`, ...) and on each cell's nested run."""
    client = MlflowClient()
    out = {}
    for r in comparison.summary:
        out[f"{r['set']}_success/{r['model']}"] = r["success_rate"]
        out[f"{r['set']}_score/{r['model']}"] = r["mean_score"]
        run_id = cells.get(r["model"], {}).get("run_id")
        if run_id:
            client.log_metric(run_id, f"eval_{r['set']}_success", r["success_rate"])
            client.log_metric(run_id, f"eval_{r['set']}_score", r["mean_score"])
    for g in comparison.gains:
        out[f"{g['set']}_success_gain/{g['model']}"] = g["success_gain"]
        out[f"{g['set']}_success_gain_mde/{g['model']}"] = g["success_gain_mde"]
        run_id = cells.get(g["model"], {}).get("run_id")
        if run_id and g["success_gain"] == g["success_gain"]:
            client.log_metric(run_id, f"eval_{g['set']}_success_gain", g["success_gain"])
    log_metrics(out)
