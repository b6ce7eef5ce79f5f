"""Intervention depth: how far back before a failure an intervention still recovers the episode.

For a failed trajectory T with labeled snapshots S_T (mined at several offsets before its end),
the distance of a snapshot s is `steps_to_end(s) + 1`: the number of actions from s to the end
of the failed episode, s's own action included (the last action has distance 1). Then

    d_expert(T) = max { distance(s) : s in S_T, p_expert(s) >= recover_threshold }
    d_force(T)  = max { distance(s) : s in S_T, p_force(s)  >= recover_threshold }

and 0 when no labeled snapshot of T recovers. A depth of 3 means that taking over (expert) or
correcting one action (force) three actions before the end still saves the episode. Depths
are only as fine as the mining offsets: mine with `offsets=1,2,4,8` to measure them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from teachable.records import LabeledSnapshot


def intervention_depths(records: Iterable[LabeledSnapshot], recover_threshold: float = 0.5) -> dict[str, tuple[int, int]]:
    """(d_expert, d_force) per trajectory id."""
    if not 0.0 < recover_threshold <= 1.0:
        raise ValueError(f"recover_threshold must be in (0, 1], got {recover_threshold}.")
    depths: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        d = depths[r.traj_id]
        distance = r.steps_to_end + 1
        if r.leverage.get("p_expert", 0.0) >= recover_threshold:
            d[0] = max(d[0], distance)
        if r.leverage.get("p_force", 0.0) >= recover_threshold:
            d[1] = max(d[1], distance)
    return {k: (v[0], v[1]) for k, v in depths.items()}
