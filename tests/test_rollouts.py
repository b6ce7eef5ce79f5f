from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from teachable.mining import failure_snapshots, mine_failures, parse_offsets
from teachable.policy import RandomPolicy
from teachable.prompting import Context
from teachable.rollouts import (
    EpisodeSpec,
    RolloutsConfig,
    collect_rollouts,
    goal_specs,
    run_episodes,
    sample_goals,
    summarize,
)
from teachable.seeding import derive_seed
from webshop_env.env import WebShopEnv


class Recorder(RandomPolicy):
    """A random policy that records the contexts it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[Context]] = []

    def act(self, contexts: Sequence[Context], rng, greedy: bool = False) -> list[str]:
        self.seen.append(list(contexts))
        return super().act(contexts, rng, greedy)


def dicts(trajectories):
    return [t.to_dict() for t in trajectories]


def test_same_seed_same_rollouts_whatever_the_batch(small_shop) -> None:
    specs = goal_specs(range(30), seed=3, split="train")
    a = run_episodes(small_shop, RandomPolicy(), specs, batch_size=8)
    b = run_episodes(small_shop, RandomPolicy(), specs[::-1], batch_size=3)
    assert dicts(a) == dicts(b[::-1])
    c = run_episodes(small_shop, RandomPolicy(), goal_specs(range(30), seed=4, split="train"), batch_size=8)
    assert dicts(a) != dicts(c)


def test_trajectories_are_consistent(small_shop) -> None:
    trajs = run_episodes(small_shop, RandomPolicy(), goal_specs(range(20), seed=0), max_steps=6, batch_size=7)
    assert [t.traj_id for t in trajs] == [f"goal-{g}-0" for g in range(20)]
    for t in trajs:
        assert 1 <= t.n_steps <= 6
        assert t.terminated == (t.steps[-1].action == "click[buy now]")
        assert t.success == (t.terminated and t.reward >= 1.0)
        assert t.steps[0].has_search_bar and t.steps[0].action.startswith("search[")
        if not t.terminated:
            assert t.n_steps == 6 and t.reward == 0.0


def test_every_step_state_restores_its_observation(small_shop) -> None:
    trajs = run_episodes(small_shop, RandomPolicy(), goal_specs(range(10), seed=1), batch_size=4)
    env = WebShopEnv(shop=small_shop)
    for t in trajs:
        for step in t.steps:
            obs, info = env.set_state(step.state.encode())
            assert obs == step.observation
            assert info["valid_actions"] == step.valid_actions


def test_restored_start_forced_action_and_patch(small_shop) -> None:
    base = run_episodes(small_shop, RandomPolicy(), goal_specs([5], seed=2), batch_size=1)[0]
    k = 1
    step = base.steps[k]
    forced = step.valid_actions[0]
    policy = Recorder()
    spec = EpisodeSpec(traj_id="b", seed=9, state=step.state, history=tuple(s.action for s in base.steps[:k]),
                       first_action=forced, patch="look at the options", patch_scope="first")
    branch = run_episodes(small_shop, policy, [spec], batch_size=1)[0]
    assert branch.steps[0].action == forced and branch.steps[0].observation == step.observation
    assert branch.start_state == step.state and branch.goal_idx == 5
    asked = [ctxs[0] for ctxs in policy.seen]
    assert all(c.patch is None for c in asked)  # the patched first step was forced, not asked
    assert asked and asked[0].history[: k + 1] == (*spec.history, forced)
    policy = Recorder()
    every = EpisodeSpec(traj_id="c", seed=9, state=step.state, patch="hint", patch_scope="every")
    run_episodes(small_shop, policy, [every], batch_size=1)
    assert all(ctxs[0].patch == "hint" for ctxs in policy.seen)


def test_bad_specs_are_refused(small_shop) -> None:
    with pytest.raises(ValueError, match="exactly one of goal_idx, goal or state"):
        EpisodeSpec(traj_id="x", seed=0)
    with pytest.raises(ValueError, match="patch_scope"):
        EpisodeSpec(traj_id="x", seed=0, goal_idx=1, patch_scope="sometimes")
    env = WebShopEnv(shop=small_shop, max_steps=1)
    env.reset(options={"goal_idx": 0})
    env.step("search[shoes]")
    over = env.get_state().decode()
    with pytest.raises(ValueError, match="already at the end"):
        run_episodes(small_shop, RandomPolicy(), [EpisodeSpec(traj_id="x", seed=0, state=over)], max_steps=1)


def test_goal_sampling_and_seeds(small_shop) -> None:
    a = sample_goals(small_shop, "train", 12, seed=0)
    assert a == sample_goals(small_shop, "train", 12, seed=0) and len(set(a)) == 12
    assert set(a) <= set(small_shop.split_goal_indices("train"))
    assert a != sample_goals(small_shop, "train", 12, seed=1)
    assert sample_goals(small_shop, "test", 0, seed=0) == list(small_shop.split_goal_indices("test"))
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)


def test_collect_and_summarize(small_shop) -> None:
    config = RolloutsConfig(n_goals=10, test_goals=4, max_steps=8, batch_size=5)
    out = collect_rollouts(small_shop, RandomPolicy(), config, progress=False)
    assert {k: len(v) for k, v in out.items()} == {"train": 10, "test": 4}
    s = summarize(out["train"])
    assert s["n_episodes"] == 10 and 0 <= s["success_rate"] <= s["bought_rate"] <= 1
    assert s["mean_steps"] == np.mean([t.n_steps for t in out["train"]])
    with pytest.raises(ValueError, match="split 'val' is unknown"):
        RolloutsConfig(split="val")


def test_mining_takes_failed_steps_and_dedups(small_shop) -> None:
    trajs = run_episodes(small_shop, RandomPolicy(), goal_specs(range(40), seed=5, episodes_per_goal=2), batch_size=16)
    snaps, counts = mine_failures(trajs)
    failed = [t for t in trajs if not t.success]
    assert counts["n_failed"] == len(failed) > 0
    assert counts["n_candidates"] == sum(t.n_steps for t in failed)
    assert counts["n_snapshots"] == len(snaps) == counts["n_candidates"] - counts["n_duplicates"]
    assert counts["n_duplicates"] > 0  # both episodes of a goal start on the same search page
    assert len({s.state for s in snaps}) == len(snaps)
    env = WebShopEnv(shop=small_shop)
    for s in snaps[:50]:
        obs, info = env.set_state(s.state.encode())
        assert obs == s.observation and info["valid_actions"] == s.valid_actions
        traj = next(t for t in trajs if t.traj_id == s.traj_id)
        assert s.history == [x.action for x in traj.steps[: s.step_index]]
        assert s.student_action == traj.steps[s.step_index].action
        assert s.steps_to_end == traj.n_steps - s.step_index - 1


def test_mining_offsets_and_filters(small_shop) -> None:
    traj = next(t for t in run_episodes(small_shop, RandomPolicy(), goal_specs(range(10), seed=6), batch_size=4)
                if not t.success and t.n_steps >= 4)
    assert [s.step_index for s in failure_snapshots(traj, offsets=(1, 3))] == [traj.n_steps - 3, traj.n_steps - 1]
    assert all(not s.has_search_bar for s in failure_snapshots(traj, include_search_steps=False))
    assert len(failure_snapshots(traj, max_per_trajectory=2)) == 2
    assert parse_offsets("") is None and parse_offsets("4, 1,1") == (1, 4)
    for bad in ("0", "a,b", "-1"):
        with pytest.raises(ValueError, match="offsets"):
            parse_offsets(bad)


def test_an_lm_student_scores_each_distinct_context_once_per_call(small_shop, tiny_student) -> None:
    from teachable.policy.lm import LMPolicy

    base = run_episodes(small_shop, RandomPolicy(), goal_specs([3], seed=2), batch_size=1)[0]
    k = next(i for i, s in enumerate(base.steps) if not s.has_search_bar and s.valid_actions)
    branch = EpisodeSpec(traj_id="b", seed=0, state=base.steps[k].state,
                         history=tuple(s.action for s in base.steps[:k]))
    specs = [EpisodeSpec(traj_id=f"b{j}", seed=j, state=branch.state, history=branch.history) for j in range(12)]
    out = {}
    for memoize in (True, False):
        policy = LMPolicy.from_pretrained(tiny_student, batch_size=4, memoize=memoize)
        asked: list[int] = []
        scores = policy.action_scores
        policy.action_scores = lambda ctxs, f=scores, n=asked: n.append(len(ctxs)) or f(ctxs)  # type: ignore[method-assign]
        rows: list[int] = []
        prefill = policy._prefill
        policy._prefill = lambda seqs, f=prefill, n=rows: n.append(len(seqs)) or f(seqs)  # type: ignore[method-assign]
        # in two calls, as adaptive rounds: the second replays the first's opening steps
        out[memoize] = dicts(run_episodes(small_shop, policy, specs[:6], batch_size=3)
                             + run_episodes(small_shop, policy, specs[6:], batch_size=3))
        out[memoize, "rows"], out[memoize, "asked"] = sum(rows), sum(asked)
        assert policy._memo is None  # the memo lives for one call only
    assert out[True] == out[False]  # reusing scores changes no action
    assert out[True, "asked"] == out[False, "asked"]
    assert out[True, "rows"] < out[False, "rows"] <= out[False, "asked"]


def test_a_model_or_adapter_folder_that_is_not_here_is_named(small_shop, tiny_student, tmp_path) -> None:
    from teachable.policy.factory import ModelNotFoundError, make_policy

    with pytest.raises(ModelNotFoundError, match=r"the model folder '/no/such/model' is not on this machine .*shared"):
        make_policy("/no/such/model", small_shop)
    with pytest.raises(ModelNotFoundError, match="the adapter folder"):
        make_policy(tiny_student, small_shop, adapter=str(tmp_path / "gone"))
    assert make_policy(tiny_student, small_shop).name == "student"


def test_policy_batch_reaches_the_lm_policy(small_shop, tiny_student) -> None:
    from teachable.executor import PolicySpec
    from teachable.training.micro import MicroConfig, batch_settings

    assert PolicySpec(tiny_student, batch_size=5).build(small_shop).batch_size == 5
    assert PolicySpec(tiny_student).build(small_shop).batch_size == 16  # 0: the policy's default
    assert PolicySpec("random", batch_size=5).build(small_shop).name == "random"  # not an LM: nothing to batch
    loading = MicroConfig().model_loading()
    assert batch_settings(MicroConfig(policy_batch=7)) == {"batch_size": 7, **loading}
    assert batch_settings(MicroConfig()) == loading
    with pytest.raises(ValueError, match="policy_batch must be >= 0"):
        RolloutsConfig(policy_batch=-1)
