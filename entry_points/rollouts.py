"""Phase `rollouts`: the student plays train goals (and optionally test goals).

    mlflow run . -e rollouts --env-manager local -P n_goals=200
    python -m entry_points.rollouts --student latest --n_goals 200

Logs success rate, mean score, mean steps and invalid-action rate (test goals with prefix
`test_`) and the artifact `rollouts.jsonl` (one `Trajectory` per line), also logged as the run's
dataset (context `output`). With `executor=ray` the episodes run in chunks on Ray actors
(`executor.retries`: chunks retried after an actor died).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from entry_points.cli import ShopArgs, parse_configs, run_cli
from entry_points.runs import TrackingArgs, executor_metrics, log_metrics, start_phase
from entry_points.upstream import log_records, resolve_model
from teachable.executor import PolicySpec
from teachable.names import ROLLOUTS
from teachable.policy.factory import BUILTIN_POLICIES
from teachable.records import write_jsonl
from teachable.rollouts import (
    RolloutsConfig,
    collect_rollouts,
    episode_executor,
    summarize,
)
from webshop_env.env import Shop

PHASE = "rollouts"
COMPETENCE_TAG = "teachable.competence"
log = logging.getLogger(__name__)


@dataclass
class RolloutsArgs:
    """The student the `rollouts` phase plays."""

    student: str = field(default="latest", metadata={"help": "student model: latest, a run id, models:/name@alias, a local HF folder, smollm2, expert or random"})


CONFIG = (RolloutsArgs, ShopArgs, RolloutsConfig, TrackingArgs)


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, shop_args, config, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs):
        student = args.student if args.student in BUILTIN_POLICIES else resolve_model(args.student, "student")
        shop = shop_args.load()
        log_effective_sizes(config, shop)
        spec = PolicySpec(student, config.temperature, batch_size=config.policy_batch, **config.model_loading())
        policy = spec.build(shop)
        with episode_executor(config, shop, shop_args.data_dir, [spec], held={spec: policy}) as executor:
            by_split = collect_rollouts(shop, spec, config, executor=executor)
        for split, trajectories in by_split.items():
            prefix = "test_" if split == "test" and split != config.split else ""
            log_metrics({prefix + k: v for k, v in summarize(trajectories).items()})
        log_metrics({**executor_metrics(executor), **policy_counters(policy)})
        check_competence(summarize(by_split[config.split]))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ROLLOUTS
            write_jsonl(path, [t for trajectories in by_split.values() for t in trajectories])
            log_records(path)


def log_effective_sizes(config: RolloutsConfig, shop: Shop) -> None:
    """Warn about and record (`effective.<size>`) goal counts larger than the splits hold."""
    for name, split, asked in (("n_goals", config.split, config.n_goals), ("test_goals", "test", config.test_goals)):
        available = len(shop.split_goal_indices(split))
        if asked > available:
            log.warning("rollouts: %s=%d but the %s split of this catalogue has %d goals; playing %d", name, asked,
                        split, available, available)
        mlflow.log_metric(f"effective.{name}", min(asked, available) if asked > 0 or name == "n_goals" else 0)


def policy_counters(policy: object) -> dict[str, int]:
    """An LM policy's query and prompt counters (queries written, rewritten, replaced; prompts cut)."""
    out = {f"queries.{k}": v for k, v in getattr(policy, "query_stats", {}).items()}
    return {**out, **{f"prompts.{k}": v for k, v in getattr(policy, "prompt_stats", {}).items()}}


def check_competence(summary: dict[str, float]) -> None:
    """Tag whether the rollouts hold both failures and successes (`pipeline` stops before labeling otherwise)."""
    rate = summary.get("success_rate", 0.0)
    status = "no_successes" if rate <= 0 else "no_failures" if rate >= 1 else "in_band"
    mlflow.set_tag(COMPETENCE_TAG, status)
    if status != "in_band":
        log.warning("rollouts: success rate %.1f%% (%s): labels need failures to snapshot and successes to measure "
                    "leverage", 100 * rate, status.replace("_", " "))


if __name__ == "__main__":
    run_cli(main)
