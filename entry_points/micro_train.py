"""Phase `micro_train` (1b): does ELP_net predict what a tiny update on the snapshot does?

    mlflow run . -e micro_train --env-manager local -P per_quadrant=6
    python -m entry_points.micro_train --label_run latest --train_steps 2

For a stratified sample of labeled snapshots (per quadrant), a 1-2 step LoRA update on the
snapshot's supervision (its route's format), then the student's success from the snapshot
before and after. Logs `micro_spearman` (Spearman of ELP_net and the micro gain) with its
bootstrap interval, overall and per quadrant, and `micro_training_results.json`. With
`executor=ray` each snapshot's update and branches run on a Ray actor.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from entry_points.cli import ShopArgs, parse_configs, run_cli
from entry_points.runs import TrackingArgs, executor_metrics, log_metrics, start_phase
from entry_points.upstream import labeled_inputs
from teachable.executor import PolicySpec, ShopSpec, make_executor
from teachable.training.micro import MICRO_RECIPE, MicroConfig, MicroSetup, micro_validate

PHASE = "micro_train"


@dataclass
class MicroArgs:
    """The labels and the student the `micro_train` phase reads."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest or a run id"})
    student: str = field(default="label", metadata={"help": "student model: label (the label run's student), latest, a run id, models:/..., or a folder"})


CONFIG = (MicroArgs, ShopArgs, MicroConfig, MICRO_RECIPE, TrackingArgs)


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, shop_args, config, recipe, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs):
        _, records, base_model = labeled_inputs(args.label_run, args.student)
        setup = MicroSetup(ShopSpec.of(shop_args.data_dir), base_model, config)
        with make_executor(config, setup, policies=[PolicySpec(base_model, device=config.device or None, **config.model_loading())]) as executor:
            result = micro_validate(records, base_model=base_model, config=config, recipe=recipe, executor=executor)
        overall = result["overall"]
        metrics = {"micro_spearman": overall["spearman"], "micro_spearman_low": overall["low"],
                   "micro_spearman_high": overall["high"], "micro_n": overall["n"],
                   "micro_mean_gain": overall["mean_gain"], **executor_metrics(executor)}
        for q, s in result["per_quadrant"].items():
            metrics[f"micro_spearman_{q}"] = s["spearman"]
            metrics[f"micro_mean_gain_{q}"] = s["mean_gain"]
        log_metrics(metrics)  # NaN (too few points) is left out
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "micro_training_results.json"
            path.write_text(json.dumps(_finite(result), indent=2))
            mlflow.log_artifact(str(path))


def _finite(value):
    """JSON-safe: NaN becomes null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    run_cli(main)
