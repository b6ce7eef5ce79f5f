"""Batched lockstep rollouts: many episodes at once, one policy call per step for all of them.

Every phase that plays episodes (rollouts, labels, evaluation) goes through `run_episodes`;
`play_episodes` runs it on an executor (`teachable.executor`: this process or Ray actors, each
holding an `EpisodeWorld`). An episode starts from a reset on a goal or from a restored env
state (a snapshot), may have its first action forced and a patch text shown (at the first step
or at every step). Each episode draws its randomness from its own generator, seeded by
`EpisodeSpec.seed`, so its actions do not depend on which other episodes share the batch, the
batch size or the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from teachable.executor import (
    Executor,
    ExecutorConfig,
    LocalExecutor,
    PolicySpec,
    ShopSpec,
    make_executor,
)
from teachable.policy.base import Policy, memoized
from teachable.prompting import Context, context_from_env
from teachable.records import Snapshot, Step, Trajectory
from teachable.seeding import derive_seed, seeded_rng
from webshop_env.env import Shop, WebShopEnv

log = logging.getLogger(__name__)
PATCH_SCOPES = ("first", "every")
SPLITS = ("train", "dev", "test")


@dataclass
class RolloutsConfig(ExecutorConfig):
    """How a student plays goals of a split (the `rollouts` phase)."""

    split: str = field(default="train", metadata={"help": "goal split to play: train, dev or test"})
    n_goals: int = field(default=200, metadata={"help": "goals drawn from the split (0: all)"})
    test_goals: int = field(default=0, metadata={"help": "also play this many test goals, logged with the prefix test_"})
    episodes_per_goal: int = field(default=1, metadata={"help": "episodes per goal"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the student"})
    greedy: bool = field(default=False, metadata={"help": "take the most likely action instead of sampling"})
    max_steps: int = field(default=15, metadata={"help": "actions per episode before truncation"})
    batch_size: int = field(default=16, metadata={"help": "episodes stepped together"})
    success_threshold: float = field(default=1.0, metadata={"help": "reward counted as success"})
    seed: int = field(default=0, metadata={"help": "seed of the goal draw and the episodes"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} is unknown; use one of {', '.join(SPLITS)}.")
        for name in ("n_goals", "test_goals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("episodes_per_goal", "max_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.temperature <= 0 and not self.greedy:
            raise ValueError("temperature must be > 0 (or set greedy=true).")


@dataclass(frozen=True)
class EpisodeSpec:
    """How one episode starts.

    Attributes:
        traj_id: the id of the trajectory it produces.
        seed: seeds the episode's own generator.
        goal_idx: the goal to reset on (when `state` is None).
        goal: a goal dict to reset on instead of a goal index (e.g. a synthetic goal).
        state: an env state (`get_state().decode()`) to restore instead of resetting.
        history: actions taken before `state` (shown in the prompt's history).
        first_action: an action forced at the first step instead of asking the policy.
        patch: a teaching text shown in the prompt.
        patch_scope: `first` (only at the first step) or `every` (at every step).
        split: the goal split, recorded on the trajectory.
    """

    traj_id: str
    seed: int
    goal_idx: int | None = None
    state: str | None = None
    goal: dict | None = None
    history: tuple[str, ...] = ()
    first_action: str | None = None
    patch: str | None = None
    patch_scope: str = "first"
    split: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.goal_idx, self.state, self.goal)) != 1:
            raise ValueError(f"episode {self.traj_id}: give exactly one of goal_idx, goal or state.")
        if self.patch_scope not in PATCH_SCOPES:
            raise ValueError(f"patch_scope {self.patch_scope!r} is unknown; use one of {', '.join(PATCH_SCOPES)}.")


@dataclass
class _Live:
    index: int
    spec: EpisodeSpec
    env: WebShopEnv
    ctx: Context
    rng: np.random.Generator
    goal_idx: int | None
    steps: list[Step] = field(default_factory=list)


def _start(env: WebShopEnv, index: int, spec: EpisodeSpec) -> _Live:
    if spec.state is not None:
        obs, info = env.set_state(spec.state.encode())
        if info["page"] == "done" or info["steps"] >= env.max_steps:
            raise ValueError(f"episode {spec.traj_id}: the restored state is already at the end of an episode.")
    elif spec.goal is not None:
        obs, info = env.reset(options={"goal": spec.goal})
    else:
        obs, info = env.reset(options={"goal_idx": spec.goal_idx})
    ctx = context_from_env(env, obs, info, spec.history, patch=spec.patch)
    return _Live(index, spec, env, ctx, np.random.default_rng(spec.seed), info["goal_idx"])


def _finish(live: _Live, policy_name: str, reward: float, terminated: bool, success_threshold: float) -> Trajectory:
    return Trajectory(
        traj_id=live.spec.traj_id, goal_idx=live.goal_idx,
        goal=dict(live.env.goal), policy=policy_name, seed=live.spec.seed, steps=live.steps,
        reward=reward, success=terminated and reward >= success_threshold, terminated=terminated,
        split=live.spec.split, start_state=live.spec.state,
    )


def run_episodes(
    shop: Shop,
    policy: Policy,
    specs: Sequence[EpisodeSpec],
    *,
    max_steps: int = 15,
    batch_size: int = 32,
    greedy: bool = False,
    success_threshold: float = 1.0,
    progress: bool = False,
) -> list[Trajectory]:
    """Play every episode of `specs` with `policy`, `batch_size` at a time in lockstep.

    Finished episodes are replaced by the next pending ones, so the policy always sees a full
    batch while work remains.

    Args:
        shop: the shared catalogue, goals and search engine.
        policy: the policy; `act` is called once per step for all live episodes.
        specs: the episodes to play.
        max_steps: the episode length limit (counted from the episode's start, restored states
            included: a state at step 5 has `max_steps - 5` actions left).
        batch_size: how many episodes run at once.
        greedy: take the policy's most likely action instead of sampling.
        success_threshold: a bought episode with reward >= this is a success.
        progress: show a progress bar.

    Returns:
        One trajectory per spec, in the order of `specs`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    pending = list(enumerate(specs))[::-1]
    done: list[Trajectory | None] = [None] * len(specs)
    live: list[_Live] = []
    free = [WebShopEnv(shop=shop, max_steps=max_steps) for _ in range(min(batch_size, len(specs)))]
    bar = tqdm(total=len(specs), desc=f"episodes ({policy.name})", disable=not progress, unit="ep")
    n_steps = 0
    while free and pending:
        live.append(_start(free.pop(), *pending.pop()))
    with memoized(policy):  # the policy is fixed during the call: a context seen before is not rescored
        while live:
            asking = [x for x in live if not (x.spec.first_action and not x.steps)]
            actions = policy.act([x.ctx for x in asking], [x.rng for x in asking], greedy=greedy) if asking else []
            chosen = dict(zip((id(x) for x in asking), actions, strict=True))
            still: list[_Live] = []
            n_steps += len(live)  # every live episode takes one step
            for x in live:
                action = chosen.get(id(x)) or x.spec.first_action
                obs, reward, terminated, truncated, info = x.env.step(action)
                x.steps.append(Step(observation=x.ctx.observation, action=action, reward=reward,
                                    valid_actions=list(x.ctx.valid_actions), has_search_bar=x.ctx.has_search_bar,
                                    state=x.ctx.state or "", invalid=bool(info["invalid_action"])))
                if terminated or truncated:
                    done[x.index] = _finish(x, policy.name, reward, terminated, success_threshold)
                    free.append(x.env)
                    bar.update()
                    continue
                patch = x.spec.patch if x.spec.patch_scope == "every" else None
                x.ctx = context_from_env(x.env, obs, info, (*x.ctx.history, action), patch=patch)
                still.append(x)
            live = still
            while free and pending:
                live.append(_start(free.pop(), *pending.pop()))
            if progress:  # per step too: a batch of long episodes would otherwise sit still for minutes
                bar.set_postfix_str(f"{n_steps} steps, {len(live)} live", refresh=True)
    bar.close()
    return [t for t in done if t is not None]


def goal_specs(goal_indices: Iterable[int], *, seed: int, episodes_per_goal: int = 1, split: str | None = None,
               prefix: str = "") -> list[EpisodeSpec]:
    """Episodes from resets: `episodes_per_goal` per goal, each with its own derived seed."""
    return [
        EpisodeSpec(traj_id=f"{prefix}{split or 'goal'}-{g}-{k}", seed=derive_seed(seed, g, k), goal_idx=int(g), split=split)
        for g in goal_indices for k in range(episodes_per_goal)
    ]


class EpisodeWorld:
    """A worker's shop and the policy it plays with, built once per policy spec (the last one is kept)."""

    def __init__(self, shop: Shop, policies: dict[PolicySpec, Policy] | None = None) -> None:
        self.shop = shop
        self._policies = dict(policies or {})

    def policy(self, spec: PolicySpec) -> Policy:
        if spec not in self._policies:
            self._policies = {spec: spec.build(self.shop)}  # one model in memory at a time
        return self._policies[spec]


@dataclass(frozen=True)
class EpisodeSetup:
    """Builds an `EpisodeWorld` where it runs (a Ray actor) from the shop's spec."""

    shop: ShopSpec

    def __call__(self) -> EpisodeWorld:
        return EpisodeWorld(self.shop.load())


def episode_executor(config: ExecutorConfig, shop: Shop, data_dir: str, policies: Sequence[PolicySpec],
                     held: dict[PolicySpec, Policy] | None = None) -> LocalExecutor[EpisodeWorld] | Executor:
    """The executor `config` asks for, playing episodes of `policies` on the shop of `data_dir`:
    in this process on `shop` (holding `held`, policies already built), or on Ray actors that
    load the shop themselves."""
    return make_executor(config, EpisodeSetup(ShopSpec.of(data_dir)), policies=policies,
                         local=lambda: EpisodeWorld(shop, held))


def play_batch(world: EpisodeWorld, specs: Sequence[EpisodeSpec], policy: PolicySpec, **settings) -> list[Trajectory]:
    """`run_episodes` of `specs` with the world's shop and the policy `policy` (settings as there)."""
    return run_episodes(world.shop, world.policy(policy), specs, **settings)


def play_episodes(
    executor: Executor,
    policy: PolicySpec,
    specs: Sequence[EpisodeSpec],
    *,
    max_steps: int = 15,
    batch_size: int = 32,
    greedy: bool = False,
    success_threshold: float = 1.0,
    progress: bool = False,
) -> list[Trajectory]:
    """`run_episodes` on an executor's workers; trajectories in the order of `specs`.

    On a `LocalExecutor` every spec goes through one `run_episodes` call, as without an executor;
    otherwise the specs are cut into chunks of `4 * batch_size` (each a rolling lockstep batch
    on its worker), whatever the number of workers. Episodes are seeded by their specs, so the
    trajectories are the same on any executor (for an LM policy, up to the rounding differences
    between batch layouts that `LMPolicy.act` describes).
    """
    chunk = len(specs) if isinstance(executor, LocalExecutor) else 4 * batch_size
    chunks = [specs[i:i + chunk] for i in range(0, len(specs), max(chunk, 1))]
    fn = partial(play_batch, policy=policy, max_steps=max_steps, batch_size=batch_size, greedy=greedy,
                 success_threshold=success_threshold, progress=progress and len(chunks) == 1)
    done: dict[int, list[Trajectory]] = dict(executor.map(fn, chunks))
    return [t for i in range(len(chunks)) for t in done[i]]


def summarize(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Success rate, mean score, mean steps and invalid-action rate of a set of episodes."""
    if not trajectories:
        return {"n_episodes": 0}
    steps = [s for t in trajectories for s in t.steps]
    return {
        "n_episodes": len(trajectories),
        "success_rate": float(np.mean([t.success for t in trajectories])),
        "mean_score": float(np.mean([t.reward for t in trajectories])),
        "mean_steps": float(np.mean([t.n_steps for t in trajectories])),
        "invalid_action_rate": float(np.mean([s.invalid for s in steps])) if steps else 0.0,
        "bought_rate": float(np.mean([t.terminated for t in trajectories])),
    }


def sample_goals(shop: Shop, split: str, n: int, seed: int) -> list[int]:
    """`n` goal indices of `split` drawn without replacement with `seed` (all of them if fewer), sorted."""
    pool = np.asarray(shop.split_goal_indices(split))
    if n <= 0 or n >= len(pool):
        return pool.tolist()
    picked = seeded_rng(seed, len(pool)).choice(pool, size=n, replace=False)
    return sorted(int(i) for i in picked)


def collect_rollouts(shop: Shop, policy: Policy | PolicySpec, config: RolloutsConfig, progress: bool = True,
                     executor: Executor | None = None) -> dict[str, list[Trajectory]]:
    """Play `config.n_goals` goals of `config.split` (and `config.test_goals` test goals).

    Args:
        shop: the shop (the goals are drawn from its splits).
        policy: the policy, or its spec when an executor's workers build it.
        config: the rollouts configuration.
        progress: show a progress bar.
        executor: runs the episodes (default: this process, with `policy`).

    Returns:
        Trajectories by split name.
    """
    if executor is None:
        if isinstance(policy, PolicySpec):
            policy = policy.build(shop)
        spec = PolicySpec(policy.name)  # only names the policy this world already holds
        executor, policy = LocalExecutor(EpisodeWorld(shop, {spec: policy})), spec
    elif not isinstance(policy, PolicySpec):
        raise ValueError("with an executor, pass the policy as a PolicySpec (its workers build it).")
    plan = {config.split: config.n_goals}
    if config.test_goals:
        plan["test"] = config.test_goals
    out = {}
    for split, n in plan.items():
        goals = sample_goals(shop, split, n, config.seed)
        specs = goal_specs(goals, seed=config.seed, episodes_per_goal=config.episodes_per_goal, split=split)
        out[split] = play_episodes(executor, policy, specs, max_steps=config.max_steps, batch_size=config.batch_size,
                                   greedy=config.greedy, success_threshold=config.success_threshold, progress=progress)
        log.info("%s: %s", split, summarize(out[split]))
    return out


def step_context(trajectory: Trajectory, i: int, patch: str | None = None) -> Context:
    """The context the policy saw at step `i` of a recorded trajectory (goal and state attached)."""
    step = trajectory.steps[i]
    history = tuple(s.action for s in trajectory.steps[:i])
    return Context(instruction=trajectory.goal["instruction_text"], observation=step.observation,
                   valid_actions=tuple(step.valid_actions), has_search_bar=step.has_search_bar,
                   history=history, patch=patch, goal=trajectory.goal, state=step.state)


def snapshot_context(snapshot: Snapshot, patch: str | None = None) -> Context:
    """The context at a failure snapshot (goal and state attached)."""
    return Context(instruction=snapshot.goal["instruction_text"], observation=snapshot.observation,
                   valid_actions=tuple(snapshot.valid_actions), has_search_bar=snapshot.has_search_bar,
                   history=tuple(snapshot.history), patch=patch, goal=snapshot.goal, state=snapshot.state)
