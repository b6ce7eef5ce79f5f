"""Phase `rollouts`: the student plays train goals (and optionally test goals).

    mlflow run . -e rollouts --env-manager local -P n_goals=200
    python -m entry_points.rollouts --student latest --n_goals 200

Logs success rate, mean score, mean steps and invalid-action rate (test goals with prefix
`test_`) and the artifact `rollouts.jsonl` (one `Trajectory` per line). With `executor=ray` the
episodes run in chunks on Ray actors (`executor.retries`: chunks retried after an actor died).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from entry_points.common import (
    executor_metrics,
    log_metrics,
    parse_config,
    resolve_model,
    run_cli,
    start_phase,
)
from teachable.executor import PolicySpec
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
CONFIG = RolloutsConfig


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(RolloutsConfig, argv, __doc__)
    with start_phase(PHASE, config):
        student = config.student if config.student in BUILTIN_POLICIES else resolve_model(config.student, "student")
        shop = Shop.load(config.data_dir or None)
        spec = PolicySpec(student, config.temperature, batch_size=config.policy_batch, **config.model_loading())
        with episode_executor(config, shop, config.data_dir, [spec], held={spec: spec.build(shop)}) as executor:
            by_split = collect_rollouts(shop, spec, config, executor=executor)
        for split, trajectories in by_split.items():
            prefix = "test_" if split == "test" and split != config.split else ""
            log_metrics({prefix + k: v for k, v in summarize(trajectories).items()})
        log_metrics(executor_metrics(executor))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rollouts.jsonl"
            write_jsonl(path, [t for trajectories in by_split.values() for t in trajectories])
            mlflow.log_artifact(str(path))


if __name__ == "__main__":
    run_cli(main)
