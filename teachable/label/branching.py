"""Branched rollouts for many snapshots and conditions at once, with adaptive sampling.

Every condition of every snapshot in a batch is rolled out through one `run_episodes` call per
policy and round (the student's branches together, the expert's together), so the policy is
called once per step for all live branches. Rounds repeat while some condition's interval is
still too wide (`AdaptivePlan`): clear cases stop at `n_min`, ambiguous ones go on to `n_max`.
Identical branch requests are rolled out once: the expert is deterministic, so one rollout per
snapshot is its exact outcome, and requests equal in state, history, forced action, patch and
seed share one episode. The student holds one score memo for the whole call
(`teachable.policy.base.memoized`): a context met in any branch or round is scored once.

Each branch is seeded from (seed, snapshot id, condition, index), so a snapshot's labels do not
depend on the other snapshots in its batch, the batch size or the worker that runs it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from teachable.policy.base import Policy, memoized
from teachable.records import Snapshot
from teachable.rollouts import EpisodeSpec, run_episodes
from teachable.seeding import derive_seed
from teachable.stats import AdaptivePlan

log = logging.getLogger(__name__)

STUDENT_CONDITIONS: tuple[str, ...] = ("policy", "force", "placebo", "demo", "contrast", "hint")
EXPERT = "expert"
CONDITIONS: tuple[str, ...] = (*STUDENT_CONDITIONS[:2], EXPERT, *STUDENT_CONDITIONS[2:])


@dataclass(frozen=True)
class Branching:
    """What to roll out for one snapshot: its forced action and patch texts (None: no teacher)."""

    snapshot: Snapshot
    force_action: str | None = None
    patches: Mapping[str, str] = field(default_factory=dict)

    def conditions(self) -> tuple[str, ...]:
        extra = (["force"] if self.force_action else []) + [c for c in STUDENT_CONDITIONS[2:] if c in self.patches]
        return ("policy", EXPERT, *extra)


@dataclass
class BranchStats:
    """What a batch cost: episodes rolled out, requests served by an identical episode, and the
    student's contexts asked to score and actually scored (an LM student scores a context it has
    met in the batch once)."""

    episodes: int = 0
    deduplicated: int = 0
    rounds: int = 0
    contexts_asked: int = 0
    contexts_scored: int = 0


def snapshot_key(snapshot_id: str) -> int:
    return zlib.crc32(snapshot_id.encode())


def _spec(b: Branching, condition: str, j: int, seed: int, patch_scope: str) -> EpisodeSpec:
    s = b.snapshot
    return EpisodeSpec(
        traj_id=f"{s.snapshot_id}/{condition}/{j}",
        seed=derive_seed(seed, snapshot_key(s.snapshot_id), CONDITIONS.index(condition), j),
        state=s.state, history=tuple(s.history),
        first_action=b.force_action if condition == "force" else None,
        patch=b.patches.get(condition), patch_scope=patch_scope,
    )


def _request_key(spec: EpisodeSpec, policy: Policy) -> tuple:
    deterministic = bool(getattr(policy, "deterministic", False))
    return (policy.name, spec.state, spec.history, spec.first_action, spec.patch, spec.patch_scope,
            None if deterministic else spec.seed)


def run_branches(
    branchings: Sequence[Branching],
    *,
    student: Policy,
    expert: Policy,
    shop,
    plan: AdaptivePlan,
    seed: int,
    max_steps: int = 15,
    batch_size: int = 64,
    patch_scope: str = "first",
    success_threshold: float = 1.0,
    stats: BranchStats | None = None,
) -> list[dict[str, tuple[int, int]]]:
    """Roll out every condition of every snapshot until each is decided; return (k, n) per condition.

    Args:
        branchings: the snapshots with their forced actions and patches.
        student, expert: the policies (the expert plays only the `expert` condition).
        shop: the shop the snapshots' states belong to.
        plan: adaptive sampling (n_min, n_max, interval half-width, batch per round); a
            deterministic policy's condition takes one rollout.
        seed: the labeling seed.
        max_steps, batch_size: as in `run_episodes` (batch_size = branches stepped together).
        patch_scope: `first` (patch at the snapshot step only) or `every`.
        success_threshold: a branch succeeds when its reward reaches this.
        stats: accumulates episodes, deduplicated requests and rounds.
    """
    stats = stats if stats is not None else BranchStats()
    counts = getattr(student, "score_stats", None)
    before = dict(counts) if counts is not None else {}
    with memoized(student):  # later rounds replay the same first steps: their scores are reused
        out = _run_branches(branchings, student, expert, shop, plan, seed, max_steps, batch_size, patch_scope,
                            success_threshold, stats)
    if counts is not None:
        stats.contexts_asked += counts["asked"] - before["asked"]
        stats.contexts_scored += counts["scored"] - before["scored"]
    return out


def _run_branches(branchings: Sequence[Branching], student: Policy, expert: Policy, shop, plan: AdaptivePlan,
                  seed: int, max_steps: int, batch_size: int, patch_scope: str, success_threshold: float,
                  stats: BranchStats) -> list[dict[str, tuple[int, int]]]:
    counts = [{c: [0, 0] for c in b.conditions()} for b in branchings]
    policies = {EXPERT: expert}
    while True:
        wanted: list[tuple[int, str, EpisodeSpec]] = []
        for i, b in enumerate(branchings):
            for c, (k, n) in counts[i].items():
                policy = policies.get(c, student)
                more = (0 if n else 1) if getattr(policy, "deterministic", False) else plan.more(k, n)
                wanted += [(i, c, _spec(b, c, j, seed, patch_scope)) for j in range(n, n + more)]
        if not wanted:
            return [{c: (kn[0], kn[1]) for c, kn in cs.items()} for cs in counts]
        stats.rounds += 1
        for role in (EXPERT, "student"):
            group = [(i, c, spec) for i, c, spec in wanted if (c == EXPERT) == (role == EXPERT)]
            if not group:
                continue
            policy = policies.get(role, student)
            unique: dict[tuple, EpisodeSpec] = {}
            for _, _, spec in group:
                unique.setdefault(_request_key(spec, policy), spec)
            specs = list(unique.values())
            trajs = run_episodes(shop, policy, specs, max_steps=max_steps, batch_size=batch_size,
                                 success_threshold=success_threshold)
            outcome = {key: t.success for key, t in zip(unique, trajs, strict=True)}
            stats.episodes += len(specs)
            stats.deduplicated += len(group) - len(specs)
            for i, c, spec in group:
                counts[i][c][0] += int(outcome[_request_key(spec, policy)])
                counts[i][c][1] += 1
