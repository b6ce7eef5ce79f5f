"""Phase `student`: build and behaviour-clone the base student.

    mlflow run . -e student --env-manager local
    python -m entry_points.student --n_train_goals 300 --epochs 4
    python -m entry_points.student --base_model smollm2 --epochs 0          # SmolLM2 as it is
    python -m entry_points.student --base_model Qwen/Qwen2.5-0.5B-Instruct  # a cached hub model, LoRA-cloned

Logs the held-out success of the student and of the expert (the ceiling `p_expert` is measured
against), the loss curve, the student folder as artifact `model`, and logs it as an MLflow Model (a pyfunc
whose `predict` takes contexts, see `entry_points/lm_model.py`) registered as a new version of
`teachable-student` (tagged with its base model, kind and held-out success) with alias
`@candidate` (`promote -P model=student` makes it `@champion`). A
pretrained base is never copied: the folder holds a reference to it (and the LoRA adapter
cloned onto it, if any). The competence check (tag `teachable.competence`) says whether the
held-out success lies in `[min_success, max_success]`, where teachable moments can be measured;
`pipeline` stops before labeling when it does not.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from entry_points.cli import ShopArgs, parse_configs, run_cli
from entry_points.lm_registry import CANDIDATE, STUDENT_MODEL, log_student, set_alias
from entry_points.runs import TrackingArgs, log_metrics, log_series, start_phase
from teachable.student import TINY, StudentConfig, competence, train_student

PHASE = "student"
CONFIG = (ShopArgs, StudentConfig, TrackingArgs)
REGISTERED_NAME = STUDENT_MODEL
COMPETENCE_TAG = "teachable.competence"
log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    configs = shop_args, config, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs):
        shop = shop_args.load()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model"
            metrics = train_student(config, shop, out)
            log_series("train_loss", metrics.pop("losses", []))
            log_metrics(metrics)
            check = competence(metrics.get("heldout_success_rate"), int(metrics.get("n_eval_goals", 0)),
                               config.min_success, config.max_success)
            mlflow.log_artifacts(str(out), "model")
            kind = student_kind(config, out)
            version = log_student(out, tags={
                "base_model": config.base_model, "kind": kind,
                "heldout_success_rate": f"{metrics.get('heldout_success_rate', float('nan')):.3f}",
                "competence": check["status"],
            })
        mlflow.set_tags({COMPETENCE_TAG: check["status"], "teachable.competence.detail": json.dumps(check)})
        mlflow.log_metric("competence.in_band", float(check["status"] == "in_band"))
        if check["status"] != "in_band":
            log.warning("student: held-out success %s on %d goals is %s the band [%g, %g]: %s",
                        check["rate"], check["n_goals"], check["status"].replace("_", " "), config.min_success,
                        config.max_success, check["advice"])
        set_alias(REGISTERED_NAME, CANDIDATE, version)
        mlflow.set_tags({"registered_model": f"models:/{REGISTERED_NAME}/{version}", "student.kind": kind})


def student_kind(config: StudentConfig, folder: Path) -> str:
    """`trained` (the tiny model, whole), `lora` (an adapter and a reference to its base) or
    `reference` (a pretrained model used as it is: only its reference)."""
    if config.base_model == TINY:
        return "trained"
    return "lora" if (folder / "adapter_config.json").is_file() else "reference"


if __name__ == "__main__":
    run_cli(main)
