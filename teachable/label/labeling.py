"""Label failure snapshots: U, teacher advice, leverage, patch gains, then quadrants and depth.

`label_snapshots` works through the snapshots in batches (`snapshot_batch` consecutive snapshots
not yet labeled) and appends one `LabeledSnapshot` per line to a work file, flushed per snapshot;
run again on the same work file, it skips what is already there, so a killed run resumes where
it stopped with nothing lost or labeled twice. The batches run on an executor
(`teachable.executor`): in this process, or on Ray actors that each build a `LabelWorld` once
from a `LabelSetup`; only this process writes the work file. Every branch is seeded from the
run's seed and its snapshot, so the labels are the same whatever the executor, the number of
workers or the batch a snapshot lands in. `finalize` then assigns quadrants (from the quantiles
of the whole set) and intervention depths. A snapshot whose state does not restore on this
catalogue is reported and skipped, and counted. The final read keeps each snapshot once and
checks that every planned snapshot is labeled or skipped (`read_work_file`, `check_plan`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from teachable.executor import Executor, ExecutorConfig, LocalExecutor, PolicySpec, ShopSpec
from teachable.label.branching import Branching, BranchStats, run_branches
from teachable.label.depth import intervention_depths
from teachable.label.leverage import leverage_labels, profile_of
from teachable.label.patch_gain import patch_gain_labels
from teachable.label.quadrant import QUADRANTS, quadrant_of, thresholds, u_value
from teachable.label.uncertainty import measure_uncertainty
from teachable.policy.base import Policy
from teachable.policy.teacher.base import Teacher, TeacherAdvice
from teachable.records import JsonlAppender, LabeledSnapshot, Snapshot, iter_jsonl
from teachable.rollouts import PATCH_SCOPES, snapshot_context
from teachable.seeding import seeded_subset
from teachable.stats import TESTS, AdaptivePlan, rate
from teachable.supervision.formats import condition_patches
from webshop_env.env import Shop, WebShopEnv
from webshop_env.state import StateError

if TYPE_CHECKING:
    from teachable.policy.teacher.openai_teacher import TeacherCall

log = logging.getLogger(__name__)
TEACHERS = ("offline", "openai")


@dataclass
class LabelConfig(ExecutorConfig):
    """How mined failure snapshots are labeled by branched rollouts (the `label` phase)."""

    max_snapshots: int = field(default=200, metadata={"help": "label at most this many snapshots, drawn with the seed (0: all)"})
    teacher: str = field(default="offline", metadata={"help": "offline (expert-based) or openai (any OpenAI-compatible endpoint)"})
    teacher_model: str = field(default="gpt-4.1-mini", metadata={"help": "model name for the openai teacher"})
    teacher_base_url: str = field(default="", metadata={"help": "base URL for the openai teacher (empty: the client's default)"})
    teacher_fallback: bool = field(default=True, metadata={"help": "when the openai teacher fails after retries, use the offline teacher for that snapshot"})
    teacher_timeout_s: float = field(default=60.0, metadata={"help": "per-request timeout of the openai teacher, seconds"})
    teacher_concurrency: int = field(default=8, metadata={"help": "openai teacher requests in flight at once (the labels are those of asking one at a time)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the student's continuations"})
    n_min: int = field(default=8, metadata={"help": "rollouts per condition before an early stop is allowed"})
    n_max: int = field(default=24, metadata={"help": "most rollouts per condition"})
    ci_halfwidth: float = field(default=0.2, metadata={"help": "stop a condition once its interval half-width is at most this"})
    rollout_batch: int = field(default=8, metadata={"help": "rollouts added per condition and round"})
    confidence: float = field(default=0.95, metadata={"help": "confidence of every interval"})
    route_test: str = field(default="fisher", metadata={"help": "test for 'format beats placebo': fisher or bayes"})
    route_alpha: float = field(default=0.1, metadata={"help": "significance level of the route test"})
    patch_scope: str = field(default="first", metadata={"help": "CPT patch at the snapshot step only (first) or at every step (every)"})
    quantile: float = field(default=0.5, metadata={"help": "quadrant split quantile of U and L_local"})
    u_measure: str = field(default="entropy", metadata={"help": "U for quadrants: entropy, entropy_norm, margin or topk_spread"})
    dead_end_max: float = field(default=0.1, metadata={"help": "profile dead_end: p_expert at most this"})
    bottleneck_min: float = field(default=0.3, metadata={"help": "profile bottleneck: L_local at least this"})
    trajectory_min: float = field(default=0.3, metadata={"help": "profile trajectory: L_upper at least this (and not a bottleneck)"})
    recover_threshold: float = field(default=0.5, metadata={"help": "depth: a snapshot recovers when p_expert / p_force reaches this"})
    success_threshold: float = field(default=1.0, metadata={"help": "a branch succeeds when its reward reaches this"})
    max_steps: int = field(default=15, metadata={"help": "episode length limit (counted from the episode's start)"})
    snapshot_batch: int = field(default=16, metadata={"help": "snapshots labeled together (their branches step in lockstep)"})
    branch_batch: int = field(default=128, metadata={"help": "branch episodes stepped together"})
    seed: int = field(default=0, metadata={"help": "seed of the snapshot draw and of every branch"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher {self.teacher!r} is unknown; use one of {', '.join(TEACHERS)}.")
        if self.route_test not in TESTS:
            raise ValueError(f"route_test {self.route_test!r} is unknown; use one of {', '.join(TESTS)}.")
        if self.patch_scope not in PATCH_SCOPES:
            raise ValueError(f"patch_scope {self.patch_scope!r} is unknown; use one of {', '.join(PATCH_SCOPES)}.")
        for name in ("snapshot_batch", "branch_batch", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.teacher_timeout_s <= 0 or self.teacher_concurrency < 1:
            raise ValueError(f"teacher_timeout_s must be > 0 and teacher_concurrency >= 1, got "
                             f"{self.teacher_timeout_s} and {self.teacher_concurrency}.")
        if self.max_snapshots < 0:
            raise ValueError(f"max_snapshots must be >= 0, got {self.max_snapshots}.")
        self.plan()  # validates n_min, n_max, ci_halfwidth, rollout_batch, confidence

    def plan(self) -> AdaptivePlan:
        return AdaptivePlan(n_min=self.n_min, n_max=self.n_max, ci_halfwidth=self.ci_halfwidth,
                            batch=self.rollout_batch, confidence=self.confidence)


@dataclass
class LabelProgress:
    """Counts of a labeling run."""

    labeled: int = 0
    resumed: int = 0
    skipped_unrestorable: int = 0
    teacher_errors: int = 0
    teacher_fallbacks: int = 0
    branch: BranchStats = field(default_factory=BranchStats)
    skipped_ids: list[str] = field(default_factory=list)

    def add(self, other: LabelProgress) -> None:
        """Add the counts of `other` (a batch's, e.g. from a worker) to these."""
        for name in ("labeled", "resumed", "skipped_unrestorable", "teacher_errors", "teacher_fallbacks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("episodes", "deduplicated", "rounds", "contexts_asked", "contexts_scored"):
            setattr(self.branch, name, getattr(self.branch, name) + getattr(other.branch, name))
        self.skipped_ids += other.skipped_ids


@dataclass
class LabelWorld:
    """What labels a batch: the shop, the student, the expert, the teacher and its fallback."""

    shop: Shop
    student: Policy
    expert: Policy
    teacher: Teacher
    fallback: Teacher | None = None


@dataclass(frozen=True)
class LabelSetup:
    """Builds a `LabelWorld` where it runs (a Ray actor, or this process) from small specs.

    Attributes:
        shop: the catalogue to load.
        student: the student policy to build.
        config: the label configuration (its teacher fields choose the teacher).
        cache_dir: the OpenAI teacher's disk cache.
        on_teacher_call: given each OpenAI teacher call (a `TeacherCall`), e.g. to trace it; it
            travels to the Ray actors, so it must pickle.
    """

    shop: ShopSpec
    student: PolicySpec
    config: LabelConfig
    cache_dir: str | None = None
    on_teacher_call: Callable[[TeacherCall], None] | None = None

    def __call__(self) -> LabelWorld:
        from teachable.policy.expert import ExpertPolicy

        shop = self.shop.load()
        teacher, fallback = make_teachers(self.config, shop, self.cache_dir, self.on_teacher_call)
        return LabelWorld(shop, self.student.build(shop), ExpertPolicy(shop), teacher, fallback)


def select_snapshots(snapshots: Sequence[Snapshot], max_snapshots: int, seed: int) -> list[Snapshot]:
    """At most `max_snapshots` snapshots drawn without replacement with `seed`, in file order."""
    return seeded_subset(snapshots, max_snapshots, seed)


def teacher_advice(teacher: Teacher, fallback: Teacher | None, contexts: Sequence, actions: Sequence[str],
                progress: LabelProgress) -> list[tuple[TeacherAdvice | None, str | None]]:
    """The teacher's advice on each decision (with the error when it failed, and the fallback's advice).

    A teacher with `advise_settled` (the OpenAI teacher) has its requests in flight together;
    its results come back in the order asked, so the labels do not depend on how many ran at once.
    """
    settled = getattr(teacher, "advise_settled", None)
    if settled is not None:
        results = settled(contexts, actions)
    else:
        results = []
        for ctx, action in zip(contexts, actions, strict=True):
            try:
                results.append(teacher.advise([ctx], [action])[0])
            except Exception as e:  # noqa: BLE001 - any teacher failure is recorded on the label, never lost
                results.append(e)
    out = []
    for ctx, action, result in zip(contexts, actions, results, strict=True):
        if not isinstance(result, Exception):
            out.append((result, None))
            continue
        progress.teacher_errors += 1
        error = f"{type(result).__name__}: {result}"
        log.warning("teacher failed on a snapshot: %s", error)
        if fallback is None:
            out.append((None, error))
        else:
            progress.teacher_fallbacks += 1
            out.append((fallback.advise([ctx], [action])[0], error))
    return out


def state_catalogue(state: str) -> str | None:
    """The content hash of the catalogue a saved state belongs to (None when unreadable)."""
    try:
        found = json.loads(state).get("cat")  # a state is one JSON object (see webshop_env.state)
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def foreign_catalogues(snapshots: Sequence[Snapshot], catalog_hash: str) -> Counter[str]:
    """How many snapshots belong to each catalogue other than `catalog_hash` (empty: all restore here)."""
    return Counter(c or "unreadable" for c in (state_catalogue(s.state) for s in snapshots) if c != catalog_hash)


def _restorable(env: WebShopEnv, snapshot: Snapshot) -> str | None:
    try:
        obs, _ = env.set_state(snapshot.state.encode())
    except StateError as e:
        return str(e)
    if obs != snapshot.observation:
        return "the restored observation differs from the recorded one (another catalogue or version?)"
    return None


def label_batch(snapshots: Sequence[Snapshot], *, shop: Shop, student: Policy, expert: Policy, teacher: Teacher,
                fallback: Teacher | None, config: LabelConfig, progress: LabelProgress) -> list[LabeledSnapshot]:
    """Label a batch of (restorable) snapshots; all their branches roll out together."""
    contexts = [snapshot_context(s) for s in snapshots]
    # one snapshot per call: its U must not depend on the rows padded beside it in a batched forward pass
    measured = [measure_uncertainty(student, [ctx]) for ctx in contexts]
    uncertainties, dists = [u[0] for u, _ in measured], [d[0] for _, d in measured]
    advice = teacher_advice(teacher, fallback, contexts, [s.student_action for s in snapshots], progress)
    branchings = [Branching(s, a.action if a else None, condition_patches(a) if a else {})
                  for s, (a, _) in zip(snapshots, advice, strict=True)]
    before = progress.branch.episodes + progress.branch.deduplicated
    counts = run_branches(branchings, student=student, expert=expert, shop=shop, plan=config.plan(), seed=config.seed,
                          max_steps=config.max_steps, batch_size=config.branch_batch, patch_scope=config.patch_scope,
                          success_threshold=config.success_threshold, stats=progress.branch)
    log.debug("batch of %d snapshots: %d branch requests", len(snapshots),
              progress.branch.episodes + progress.branch.deduplicated - before)
    out = []
    for s, u, dist, (adv, error), b, c in zip(snapshots, uncertainties, dists, advice, branchings, counts, strict=True):
        lev = leverage_labels(c, confidence=config.confidence)
        elp, elp_net, route = patch_gain_labels(c, confidence=config.confidence, test=config.route_test,
                                                alpha=config.route_alpha)
        top = dict(sorted(dist.items(), key=lambda kv: -kv[1])[:10])
        out.append(LabeledSnapshot(
            **{k: getattr(s, k) for k in Snapshot.__dataclass_fields__},
            uncertainty=u.to_dict(), student_dist=top, teacher=adv.to_dict() if adv else None, teacher_error=error,
            patches=dict(b.patches), conditions={k: rate(*kn, confidence=config.confidence).to_dict() for k, kn in c.items()},
            leverage=lev, elp=elp, elp_net=elp_net, route=route,
            profile=profile_of(lev, dead_end_max=config.dead_end_max, bottleneck_min=config.bottleneck_min,
                               trajectory_min=config.trajectory_min),
            rollouts=sum(n for _, n in c.values()),
        ))
    return out


def label_world_batch(world: LabelWorld, batch: Sequence[Snapshot], config: LabelConfig) -> tuple[list[LabeledSnapshot], LabelProgress]:
    """Label one batch on a worker: skip (and count) the snapshots that do not restore, label the rest.

    Returns:
        The labeled snapshots in batch order and the batch's counts.
    """
    progress = LabelProgress()
    env = WebShopEnv(shop=world.shop, max_steps=config.max_steps)
    ok = []
    for s in batch:
        problem = _restorable(env, s)
        if problem:
            progress.skipped_unrestorable += 1
            progress.skipped_ids.append(s.snapshot_id)
            log.warning("snapshot %s skipped: its state does not restore here: %s", s.snapshot_id, problem)
        else:
            ok.append(s)
    records = label_batch(ok, shop=world.shop, student=world.student, expert=world.expert, teacher=world.teacher,
                          fallback=world.fallback, config=config, progress=progress) if ok else []
    progress.labeled = len(records)
    return records, progress


def label_snapshots(
    snapshots: Sequence[Snapshot],
    *,
    config: LabelConfig,
    work_file: str | Path,
    shop: Shop | None = None,
    student: Policy | None = None,
    expert: Policy | None = None,
    teacher: Teacher | None = None,
    fallback: Teacher | None = None,
    executor: Executor | None = None,
    show_progress: bool = True,
    on_batch: Callable[[LabelProgress], None] | None = None,
) -> tuple[list[LabeledSnapshot], LabelProgress]:
    """Label `snapshots`, appending to `work_file` and skipping those already in it (resume).

    Args:
        snapshots: the snapshots to label (already selected).
        config: the label configuration.
        work_file: the JSONL work file (created, or continued when it exists).
        shop, student, expert, teacher: the world and the policies, to label in this process
            (`expert` defaults to `ExpertPolicy(shop)`); not needed with `executor`.
        fallback: a teacher to use when `teacher` fails (recorded as `teacher_error`).
        executor: runs the batches on worlds of its own (e.g. a `RayExecutor` built on a
            `LabelSetup`); default: in this process with the objects above.
        show_progress: show a progress bar.
        on_batch: called after each batch is written (e.g. to log progress metrics).

    Returns:
        All labeled snapshots in the work file (resumed and new, without quadrants yet) in the
        order of `snapshots`, and counts.

    Raises:
        ValueError: neither an executor nor shop, student and teacher were given.
    """
    if executor is None:
        if shop is None or student is None or teacher is None:
            raise ValueError("label_snapshots needs shop, student and teacher (to label in this process) or an "
                             "executor built on a LabelSetup.")
        if expert is None:
            from teachable.policy.expert import ExpertPolicy

            expert = ExpertPolicy(shop)
        executor = LocalExecutor(LabelWorld(shop, student, expert, teacher, fallback))
    work_file = Path(work_file)
    done = {r.snapshot_id for r in iter_jsonl(work_file, LabeledSnapshot)} if work_file.is_file() else set()
    progress = LabelProgress(resumed=len(done & {s.snapshot_id for s in snapshots}))
    todo = [s for s in snapshots if s.snapshot_id not in done]
    if progress.resumed:
        log.info("resuming: %d snapshots already labeled, %d to go", progress.resumed, len(todo))
    batches = [todo[i:i + config.snapshot_batch] for i in range(0, len(todo), config.snapshot_batch)]
    bar = tqdm(total=len(todo), desc="labeling", unit="snapshot", disable=not show_progress)
    with JsonlAppender(work_file) as out:
        for i, (records, batch_progress) in executor.map(partial(label_world_batch, config=config), batches):
            for record in records:
                out.append(record)
            progress.add(batch_progress)
            bar.update(len(batches[i]))
            if on_batch:
                on_batch(progress)
    bar.close()
    labeled = read_work_file(work_file, snapshots)
    check_plan(labeled, progress.skipped_ids, snapshots, work_file)
    return labeled, progress


class WorkFileError(ValueError):
    """A work file does not hold what the plan asked for (items missing, or from another plan)."""


def read_work_file(work_file: Path, snapshots: Sequence[Snapshot]) -> list[LabeledSnapshot]:
    """The labels in `work_file` of `snapshots`, once each (the first line of an id wins), in their order.

    A second line of the same id can only come from two writers on one file (the entry points
    lock it) or a hand-made copy; it is dropped with a warning so nothing is counted twice.
    """
    order = {s.snapshot_id: i for i, s in enumerate(snapshots)}
    first: dict[str, LabeledSnapshot] = {}
    doubled = 0
    for r in iter_jsonl(work_file, LabeledSnapshot):
        if r.snapshot_id in first:
            doubled += 1
        elif r.snapshot_id in order:
            first[r.snapshot_id] = r
    if doubled:
        log.warning("%s: %d lines repeat a snapshot already labeled; each snapshot is kept once", work_file, doubled)
    return sorted(first.values(), key=lambda r: order[r.snapshot_id])


def check_plan(labeled: Sequence[LabeledSnapshot], skipped_ids: Sequence[str], snapshots: Sequence[Snapshot],
               work_file: Path) -> None:
    """Every planned snapshot is labeled or skipped (unrestorable) exactly once.

    Raises:
        WorkFileError: some are neither, naming how many and the work file.
    """
    planned = {s.snapshot_id for s in snapshots}
    missing = planned - {r.snapshot_id for r in labeled} - set(skipped_ids)
    if missing:
        raise WorkFileError(f"{work_file}: {len(missing)} of {len(planned)} planned snapshots are neither labeled "
                            f"nor skipped (e.g. {sorted(missing)[0]}); the work file was changed by another "
                            "process: delete it and run again.")


def finalize(records: Sequence[LabeledSnapshot], config: LabelConfig) -> tuple[list[LabeledSnapshot], dict[str, float]]:
    """Assign quadrants and intervention depths; return the records and the quadrant thresholds."""
    with_l = [r for r in records if "L_local" in r.leverage]
    if not with_l:
        raise ValueError("no labeled snapshot has L_local (the teacher failed on all of them): no quadrants; "
                         "check the teacher or enable teacher_fallback.")
    u = [u_value(r.uncertainty, config.u_measure) for r in with_l]
    l_local = [r.leverage["L_local"]["value"] for r in with_l]
    u_thr, l_thr = thresholds(u, l_local, config.quantile)
    depths = intervention_depths(records, config.recover_threshold)
    out = []
    for r in records:
        quadrant = (quadrant_of(u_value(r.uncertainty, config.u_measure), r.leverage["L_local"]["value"], u_thr, l_thr)
                    if "L_local" in r.leverage else None)
        d_expert, d_force = depths[r.traj_id]
        out.append(replace(r, quadrant=quadrant, d_expert=d_expert, d_force=d_force))
    return out, {"u_threshold": u_thr, "l_threshold": l_thr}


def summarize_labels(records: Sequence[LabeledSnapshot], progress: LabelProgress | None = None) -> dict[str, float]:
    """Figures of merit of a labeled set: counts per quadrant / route / profile, means, rollouts spent."""
    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else math.nan

    out: dict[str, float] = {"n_labeled": len(records)}
    quadrants = Counter(r.quadrant for r in records)
    out.update({f"n_{q}": quadrants.get(q, 0) for q in QUADRANTS})
    out.update({f"n_route_{k}": v for k, v in Counter(r.route for r in records).items()})
    out.update({f"n_profile_{k}": v for k, v in Counter(r.profile for r in records).items()})
    out["mean_U"] = mean([r.uncertainty["entropy"] for r in records])
    for key in ("p_policy", "p_force", "p_expert"):
        out[f"mean_{key}"] = mean([r.leverage[key] for r in records if key in r.leverage])
    for key in ("L_local", "L_upper"):
        out[f"mean_{key}"] = mean([r.leverage[key]["value"] for r in records if key in r.leverage])
    out["mean_ELP_net"] = mean([r.elp_net for r in records if r.elp_net is not None])
    out["mean_d_expert"] = mean([r.d_expert for r in records if r.d_expert is not None])
    out["mean_d_force"] = mean([r.d_force for r in records if r.d_force is not None])
    out["rollouts_spent"] = sum(r.rollouts for r in records)
    out["teacher_errors"] = sum(r.teacher_error is not None for r in records)
    if progress is not None:
        out.update(skipped_unrestorable=progress.skipped_unrestorable, resumed=progress.resumed,
                   episodes_rolled_out=progress.branch.episodes, rollouts_deduplicated=progress.branch.deduplicated,
                   student_contexts_asked=progress.branch.contexts_asked,
                   student_contexts_scored=progress.branch.contexts_scored)
    return out


def rollouts_saved_vs_fixed(records: Sequence[LabeledSnapshot], n_max: int) -> int:
    """Rollouts adaptive sampling saved against running every student condition to n_max."""
    return sum(max(0, n_max - c["n"]) for r in records for name, c in r.conditions.items() if name != "expert")



def make_teachers(config: LabelConfig, shop: Shop, cache_dir: str | Path | None,
                  on_call: Callable[[TeacherCall], None] | None = None) -> tuple[Teacher, Teacher | None]:
    """The configured teacher and the fallback used when it fails (None when not allowed); `on_call`
    is given each OpenAI teacher call."""
    from teachable.policy.teacher.offline import OfflineTeacher

    if config.teacher == "offline":
        return OfflineTeacher(shop), None
    from teachable.policy.teacher.openai_teacher import OpenAITeacher

    teacher = OpenAITeacher(model=config.teacher_model, base_url=config.teacher_base_url or None, cache_dir=cache_dir,
                            timeout_s=config.teacher_timeout_s, max_concurrency=config.teacher_concurrency,
                            on_call=on_call)
    return teacher, OfflineTeacher(shop) if config.teacher_fallback else None
