"""Phase `mine`: failure snapshots (with env states) from a rollouts run.

    mlflow run . -e mine --env-manager local -P rollouts_run=latest
    python -m entry_points.mine --rollouts_run <run id> --offsets 1,2,4

Logs the counts (trajectories, failed, candidates, duplicates, snapshots) and the artifact
`failure_snapshots.jsonl` (one `Snapshot` per line). The rollouts read and the snapshots written
are the run's datasets (contexts `training` and `output`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from entry_points.cli import PhaseError, parse_configs, run_cli
from entry_points.datasets import TRAINING
from entry_points.runs import TrackingArgs, log_metrics, start_phase
from entry_points.upstream import log_records, read_records, resolve_upstream
from teachable.mining import MiningConfig, mine_failures, parse_offsets
from teachable.names import FAILURE_SNAPSHOTS, ROLLOUTS
from teachable.records import Trajectory, iter_jsonl, write_jsonl

PHASE = "mine"


@dataclass
class MineArgs:
    """The rollouts the `mine` phase reads."""

    rollouts_run: str = field(default="latest", metadata={"help": "rollouts run: latest or a run id"})


CONFIG = (MineArgs, MiningConfig, TrackingArgs)


class NoFailuresError(PhaseError):
    """The rollouts contain no failure to learn from."""


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, config, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs):
        up = resolve_upstream("rollouts", args.rollouts_run, "rollouts_run")
        rollouts = read_records(up.run_id, ROLLOUTS, f"rollouts_run={args.rollouts_run!r}", TRAINING)
        snapshots, counts = mine_failures(
            iter_jsonl(rollouts, Trajectory), offsets=parse_offsets(config.offsets),
            include_search_steps=config.include_search_steps, max_per_trajectory=config.max_per_trajectory,
            success_threshold=config.success_threshold,
        )
        log_metrics(counts)
        if not snapshots:
            raise NoFailuresError(
                f"rollouts run {up.run_id} has no failure snapshots ({counts['n_failed']} failed of "
                f"{counts['n_trajectories']} episodes); run rollouts on more goals or at a higher temperature, "
                "or widen offsets."
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / FAILURE_SNAPSHOTS
            write_jsonl(path, snapshots)
            log_records(path)


if __name__ == "__main__":
    run_cli(main)
