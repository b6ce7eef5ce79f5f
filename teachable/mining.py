"""Failure snapshots: states inside failed episodes, saved so an env can be restored there.

A trajectory failed when its reward is below the success threshold (not bought, truncated, or
bought the wrong thing). Each of its steps is a candidate snapshot: the env state just before
the step's action (restoring it reproduces the step's observation), what the student saw and
did there, and the actions before it. Offsets pick steps counted back from the end (offset 1 =
the last action). Identical states (same goal, page, results, options and step count) are kept
once, the first seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from teachable.records import Snapshot, Trajectory

log = logging.getLogger(__name__)


@dataclass
class MiningConfig:
    """How failure snapshots are mined from rollouts (the `mine` phase)."""

    offsets: str = field(default="", metadata={"help": "comma-separated steps before the end (1 = last action); empty: every step"})
    include_search_steps: bool = field(default=True, metadata={"help": "keep snapshots on pages with a search bar"})
    max_per_trajectory: int = field(default=0, metadata={"help": "keep at most this many snapshots per trajectory, latest first (0: all)"})
    success_threshold: float = field(default=1.0, metadata={"help": "an episode with reward below this failed"})

    def __post_init__(self) -> None:
        parse_offsets(self.offsets)
        if self.max_per_trajectory < 0:
            raise ValueError(f"max_per_trajectory must be >= 0, got {self.max_per_trajectory}.")


def parse_offsets(text: str) -> tuple[int, ...] | None:
    """`"1,2,4"` -> (1, 2, 4); empty -> None (every step).

    Raises:
        ValueError: an offset is not a positive whole number.
    """
    if not text.strip():
        return None
    try:
        offsets = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as e:
        raise ValueError(f"offsets {text!r}: expected comma-separated positive whole numbers such as '1,2,4'.") from e
    if not offsets or offsets[0] < 1:
        raise ValueError(f"offsets {text!r}: offsets count back from the end and start at 1.")
    return offsets


def failure_snapshots(
    trajectory: Trajectory,
    offsets: Sequence[int] | None = None,
    include_search_steps: bool = True,
    max_per_trajectory: int = 0,
) -> list[Snapshot]:
    """The snapshots of one (failed) trajectory, in step order."""
    n = trajectory.n_steps
    indices = range(n) if offsets is None else sorted({n - k for k in offsets if 0 <= n - k < n})
    chosen = [i for i in indices if include_search_steps or not trajectory.steps[i].has_search_bar]
    if max_per_trajectory:
        chosen = chosen[-max_per_trajectory:]
    history = [s.action for s in trajectory.steps]
    return [
        Snapshot(
            snapshot_id=f"{trajectory.traj_id}:{i}", traj_id=trajectory.traj_id, goal_idx=trajectory.goal_idx,
            goal=trajectory.goal, step_index=i, state=trajectory.steps[i].state,
            observation=trajectory.steps[i].observation, valid_actions=list(trajectory.steps[i].valid_actions),
            has_search_bar=trajectory.steps[i].has_search_bar, history=history[:i],
            student_action=trajectory.steps[i].action, final_reward=trajectory.reward, steps_to_end=n - i - 1,
        )
        for i in chosen
    ]


def mine_failures(
    trajectories: Iterable[Trajectory],
    *,
    offsets: Sequence[int] | None = None,
    include_search_steps: bool = True,
    max_per_trajectory: int = 0,
    success_threshold: float = 1.0,
) -> tuple[list[Snapshot], dict[str, int]]:
    """Failure snapshots of all failed trajectories, deduplicated by state.

    Returns:
        The snapshots and counts: trajectories, failed, candidates, duplicates, snapshots.
    """
    counts = {"n_trajectories": 0, "n_failed": 0, "n_candidates": 0, "n_duplicates": 0, "n_snapshots": 0}
    seen: set[str] = set()
    out: list[Snapshot] = []
    for traj in trajectories:
        counts["n_trajectories"] += 1
        if traj.reward >= success_threshold and traj.terminated:
            continue
        counts["n_failed"] += 1
        for snap in failure_snapshots(traj, offsets, include_search_steps, max_per_trajectory):
            counts["n_candidates"] += 1
            if snap.state in seen:
                counts["n_duplicates"] += 1
                continue
            seen.add(snap.state)
            out.append(snap)
    counts["n_snapshots"] = len(out)
    log.info("mined %s", counts)
    return out, counts
