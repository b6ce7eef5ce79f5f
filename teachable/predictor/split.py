"""Train / validation split by trajectory: all snapshots of one failed episode fall on the same
side, so the validation set never holds a sibling of a training snapshot (they share the goal,
the instruction and most of the history, which would leak)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def trajectory_split(traj_ids: Sequence[str], valid_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, validation indices) with whole trajectories on each side.

    About `valid_fraction` of the trajectories (at least one, and at least one left for
    training) go to validation, drawn with `seed`.

    Raises:
        ValueError: fewer than two trajectories, or a fraction outside (0, 1).
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction}.")
    groups = sorted(set(traj_ids))
    if len(groups) < 2:
        raise ValueError(f"{len(groups)} trajectory among the labeled snapshots: a split by trajectory needs at "
                         "least two; label snapshots from more failed episodes.")
    rng = np.random.default_rng(seed)
    n_valid = min(len(groups) - 1, max(1, round(valid_fraction * len(groups))))
    valid_groups = {groups[i] for i in rng.permutation(len(groups))[:n_valid]}
    train = [i for i, t in enumerate(traj_ids) if t not in valid_groups]
    valid = [i for i, t in enumerate(traj_ids) if t in valid_groups]
    return train, valid
