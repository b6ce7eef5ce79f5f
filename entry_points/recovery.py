"""Phase `recovery`: expert continuations from the high-L_upper failure snapshots of a label run,
a LoRA adapter trained on them, and its evaluation like a matrix cell's.

    mlflow run . -e recovery --env-manager local -P min_l_upper=0.5
    python -m entry_points.recovery --label_run latest --epochs 2

Logs `recovery_trajectories.jsonl` (one step-level prompt-completion pair per line), the counts
(snapshots continued, recovered, examples), the loss curve, the adapter (an MLflow Model
registered as a version of `teachable-adapter` tagged kind=recovery), and the evaluation of the base student and the
adapter on the same held-out, failure and retention items (`eval_*.csv`, `<set>_success/<model>`,
`<set>_success_gain/recovery` and `eval_<set>_success_gain`). With `executor=ray` the evaluation
episodes run on Ray actors; the LoRA training stays in this process.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from entry_points.cli import ShopArgs, config_of, parse_configs, run_cli
from entry_points.comparison import log_comparison
from entry_points.lm_registry import ADAPTER_MODEL, base_reference, log_adapter
from entry_points.runs import TrackingArgs, executor_metrics, log_metrics, log_series, start_phase
from entry_points.upstream import label_run_rollouts, labeled_inputs
from entry_points.workfiles import model_identity, open_work
from teachable.evaluation import EvalConfig, build_eval_sets
from teachable.names import RECOVERY_TRAJECTORIES
from teachable.policy.lm import PromptRenderer
from teachable.records import LabeledSnapshot, write_jsonl
from teachable.recovery import RecoveryConfig, export_recovery
from teachable.rollouts import episode_executor
from teachable.teach import BASE, compare_to_base, policy_spec, train_adapter
from teachable.training.sft import LoraRecipe
from webshop_env.env import Shop

PHASE = "recovery"
MODEL_NAME = "recovery"
log = logging.getLogger(__name__)


@dataclass
class RecoveryArgs:
    """The labels and the base student the `recovery` phase reads, and where it trains."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest or a run id"})
    student: str = field(default="label", metadata={"help": "base model: label (the label run's student), latest, a run id, models:/..., or a folder"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})


CONFIG = (RecoveryArgs, ShopArgs, RecoveryConfig, EvalConfig, LoraRecipe, TrackingArgs)


def train_and_register(configs: tuple, records: list[LabeledSnapshot], shop: Shop, base_model: str, adapter: Path,
                       tmp: Path) -> None:
    """Export the expert continuations, train the recovery adapter into `adapter`, log and register it."""
    args, config, episodes, recipe = (config_of(configs, cls) for cls in (RecoveryArgs, RecoveryConfig, EvalConfig, LoraRecipe))
    renderer = PromptRenderer.from_pretrained(base_model)  # prompts as the model was trained
    examples, counts = export_recovery(records, shop, config, episodes, render=renderer.prompt,
                                       complete=renderer.completion)
    write_jsonl(tmp / RECOVERY_TRAJECTORIES, examples)
    mlflow.log_artifact(str(tmp / RECOVERY_TRAJECTORIES))
    metrics = train_adapter(base_model, [(e.prompt, e.completion) for e in examples], adapter, recipe,
                            seed=episodes.seed, device=args.device or None)
    log_series("train_loss", metrics["losses"])
    log_metrics({**counts, "final_train_loss": metrics["train_loss"], "train_seconds": metrics["seconds"]})
    mlflow.log_artifacts(str(adapter), "adapter")
    version = log_adapter(adapter, base_reference(base_model), tags={
        "kind": "recovery", "cell": MODEL_NAME, "quadrant": "all", "format": "recovery", "base_model": base_model})
    mlflow.set_tag("registered_model", f"models:/{ADAPTER_MODEL}/{version}")


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, shop_args, _, config, _, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs) as run, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        label_run_id, records, base_model = labeled_inputs(args.label_run, args.student)
        shop = shop_args.load()
        # in the work folder, not a temporary one: Ray actors on other nodes read it when TEACHABLE_WORK_DIR is shared
        adapter = stack.enter_context(open_work(
            PHASE, configs, {"label": label_run_id, "student": model_identity(args.student, base_model)}, "adapter"))
        models = {name: policy_spec(base_model, config, device=args.device, adapter=folder)
                  for name, folder in ((BASE, None), (MODEL_NAME, str(adapter)))}
        # the executor first: a cluster that cannot hold the actors fails the run before any training
        with episode_executor(config, shop, shop_args.data_dir, list(models.values())) as executor:
            train_and_register(configs, records, shop, base_model, adapter, Path(tmp))
            sets = build_eval_sets(shop, labeled=records, rollouts=label_run_rollouts(label_run_id), config=config)
            comparison = compare_to_base(shop, models, sets, config, executor)
        log_metrics(executor_metrics(executor))
        log_comparison(comparison, {MODEL_NAME: {"run_id": run.info.run_id}})


if __name__ == "__main__":
    run_cli(main)
