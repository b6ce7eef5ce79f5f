"""Phase `rollouts`: the student plays train goals (and optionally test goals).

    mlflow run . -e rollouts --env-manager local -P n_goals=200
    python -m entry_points.rollouts --student latest --n_goals 200

Logs success rate, mean score, mean steps and invalid-action rate (test goals with prefix
`test_`) and the artifact `rollouts.jsonl` (one `Trajectory` per line).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from entry_points.common import log_metrics, parse_config, resolve_model, start_phase
from teachable.policy.factory import BUILTIN_POLICIES, make_policy
from teachable.records import write_jsonl
from teachable.rollouts import RolloutsConfig, collect_rollouts, summarize
from webshop_env.env import Shop

PHASE = "rollouts"
CONFIG = RolloutsConfig


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(RolloutsConfig, argv, __doc__)
    with start_phase(PHASE, config):
        student = config.student if config.student in BUILTIN_POLICIES else resolve_model(config.student, "student")
        shop = Shop.load(config.data_dir or None)
        policy = make_policy(student, shop, temperature=config.temperature)
        by_split = collect_rollouts(shop, policy, config)
        for split, trajectories in by_split.items():
            prefix = "test_" if split == "test" and split != config.split else ""
            log_metrics({prefix + k: v for k, v in summarize(trajectories).items()})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rollouts.jsonl"
            write_jsonl(path, [t for trajectories in by_split.values() for t in trajectories])
            mlflow.log_artifact(str(path))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
