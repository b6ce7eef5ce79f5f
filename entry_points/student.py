"""Phase `student`: build the base student and behaviour-clone the expert.

    mlflow run . -e student --env-manager local
    python -m entry_points.student --n_train_goals 300 --epochs 4

Logs the held-out success of the student and of the expert (the ceiling `p_expert` is measured
against), the loss curve, the model folder as artifact `model`, and registers it as a new version
of `teachable-student` (tagged with its base model and held-out success).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from entry_points.common import (
    log_metrics,
    log_series,
    parse_config,
    register_folder,
    run_cli,
    start_phase,
)
from teachable.student import StudentConfig, train_student
from webshop_env.env import Shop

PHASE = "student"
CONFIG = StudentConfig
REGISTERED_NAME = "teachable-student"


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(StudentConfig, argv, __doc__)
    with start_phase(PHASE, config) as run:
        shop = Shop.load(config.data_dir or None)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model"
            metrics = train_student(config, shop, out)
            log_series("train_loss", metrics.pop("losses", []))
            log_metrics(metrics)
            mlflow.log_artifacts(str(out), "model")
        version = register_folder(REGISTERED_NAME, run.info.run_id, "model", tags={
            "base_model": config.base_model,
            "heldout_success_rate": f"{metrics.get('heldout_success_rate', float('nan')):.3f}",
        })
        mlflow.set_tag("registered_model", f"models:/{REGISTERED_NAME}/{version}")


if __name__ == "__main__":
    run_cli(main)
