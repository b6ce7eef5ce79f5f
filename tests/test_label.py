"""Labels: uncertainty, leverage, patch gains, quadrants, depth; batching, resume, bad input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from teachable.label.branching import Branching, BranchStats, run_branches
from teachable.label.depth import intervention_depths
from teachable.label.labeling import (
    LabelConfig,
    finalize,
    label_snapshots,
    select_snapshots,
    summarize_labels,
)
from teachable.label.leverage import leverage_labels, profile_of
from teachable.label.patch_gain import patch_gain_labels
from teachable.label.quadrant import quadrant_of, thresholds
from teachable.label.uncertainty import uncertainty_of
from teachable.mining import mine_failures
from teachable.policy import RandomPolicy
from teachable.policy.expert import ExpertPolicy
from teachable.policy.teacher.offline import OfflineTeacher
from teachable.prompting import Context, context_from_env
from teachable.records import LabeledSnapshot, Snapshot, read_jsonl
from teachable.rollouts import goal_specs, run_episodes
from teachable.stats import AdaptivePlan
from webshop_env.env import WebShopEnv


class DemoFollower(RandomPolicy):
    """A random student that takes the action a DEMO patch names (a student that can be taught)."""

    name = "demo-follower"

    def act(self, contexts: Sequence[Context], rng, greedy: bool = False) -> list[str]:
        out = super().act(contexts, rng, greedy)
        for i, ctx in enumerate(contexts):
            if ctx.patch and ctx.patch.startswith("The right move here is "):
                out[i] = ctx.patch.removeprefix("The right move here is ").rstrip(".")
        return out


class BrokenTeacher:
    name = "broken"

    def advise(self, contexts, student_actions):
        raise RuntimeError("teacher unavailable (429 after retries)")


@pytest.fixture(scope="module")
def snapshots(small_shop) -> list[Snapshot]:
    trajs = run_episodes(small_shop, RandomPolicy(), goal_specs(range(0, 60, 3), seed=11), batch_size=16)
    snaps, _ = mine_failures(trajs, offsets=(1, 2, 4))
    return snaps


def snapshot_at(shop, goal_idx: int, actions: list[str]) -> Snapshot:
    """A hand-built snapshot: the state after `actions` on goal `goal_idx`."""
    env = WebShopEnv(shop=shop)
    obs, info = env.reset(options={"goal_idx": goal_idx})
    for a in actions:
        obs, _, _, _, info = env.step(a)
    ctx = context_from_env(env, obs, info, tuple(actions))
    return Snapshot(snapshot_id=f"hand:{goal_idx}:{len(actions)}", traj_id=f"hand:{goal_idx}", goal_idx=goal_idx,
                    goal=env.goal, step_index=len(actions), state=ctx.state, observation=obs,
                    valid_actions=list(ctx.valid_actions), has_search_bar=ctx.has_search_bar, history=list(actions),
                    student_action="click[< prev]", final_reward=0.0, steps_to_end=0)


def expert_path(shop, goal_idx: int) -> list[str]:
    env, expert = WebShopEnv(shop=shop), ExpertPolicy(shop)
    obs, info = env.reset(options={"goal_idx": goal_idx})
    actions: list[str] = []
    while True:
        a = expert.act([context_from_env(env, obs, info, tuple(actions))], np.random.default_rng(0))[0]
        actions.append(a)
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:
            assert r >= 1.0
            return actions


def test_uncertainty_known_values() -> None:
    u = uncertainty_of({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25})
    assert u.entropy == pytest.approx(math.log(4)) and u.entropy_norm == pytest.approx(1.0) and u.margin == 0.0
    one = uncertainty_of({"a": 1.0})
    assert (one.entropy, one.entropy_norm, one.margin, one.n_actions) == (0.0, 0.0, 1.0, 1)
    skew = uncertainty_of({"a": 0.1, "b": 0.7, "c": 0.2})
    assert skew.top_action == "b" and skew.margin == pytest.approx(0.5) and skew.topk_spread == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no action"):
        uncertainty_of({})


def test_one_click_from_success_has_full_force_leverage(small_shop) -> None:
    goal = next(g for g in small_shop.split_goal_indices("train") if small_shop.goals[g]["goal_options"])
    path = expert_path(small_shop, goal)
    assert path[-1] == "click[buy now]"
    snap = snapshot_at(small_shop, goal, path[:-1])
    advice = OfflineTeacher(small_shop).advise([Context(snap.goal["instruction_text"], snap.observation,
                                                        tuple(snap.valid_actions), goal=snap.goal, state=snap.state)],
                                               [snap.student_action])[0]
    assert advice.action == "click[buy now]"
    counts = run_branches([Branching(snap, advice.action)], student=RandomPolicy(), expert=ExpertPolicy(small_shop),
                          shop=small_shop, plan=AdaptivePlan(n_min=8, n_max=24, ci_halfwidth=0.2), seed=0)[0]
    lev = leverage_labels(counts)
    assert lev["p_force"] == 1.0 and lev["p_expert"] == 1.0 and counts["expert"] == (1, 1)
    assert lev["p_policy"] < 1.0 and lev["L_local"]["value"] > 0.3
    assert profile_of(lev) == "bottleneck"


def test_a_dead_end_has_no_upper_leverage(small_shop) -> None:
    # 14 of 15 steps spent paging on the start page: one action left, no way to buy in time
    snap = snapshot_at(small_shop, 3, ["click[nothing]"] * 14)
    counts = run_branches([Branching(snap, "search[anything]")], student=RandomPolicy(),
                          expert=ExpertPolicy(small_shop), shop=small_shop,
                          plan=AdaptivePlan(n_min=8, n_max=24, ci_halfwidth=0.2), seed=0)[0]
    lev = leverage_labels(counts)
    assert lev["p_expert"] == 0.0 and lev["L_upper"]["value"] == 0.0 and profile_of(lev) == "dead_end"
    assert counts["policy"] == (0, 8)  # a clear case stops at n_min


def test_patch_gain_finds_the_format_that_teaches(small_shop, tmp_path: Path) -> None:
    goals = [g for g in small_shop.split_goal_indices("train") if small_shop.goals[g]["goal_options"]][:4]
    picked = [snapshot_at(small_shop, g, expert_path(small_shop, g)[:-1]) for g in goals]  # one click from success
    config = LabelConfig(n_min=8, n_max=16, ci_halfwidth=0.15)
    records, _ = label_snapshots(picked, shop=small_shop, student=DemoFollower(), expert=ExpertPolicy(small_shop),
                                 teacher=OfflineTeacher(small_shop), config=config, work_file=tmp_path / "w.jsonl",
                                 show_progress=False)
    assert [r.route for r in records] == ["demo"] * len(picked)
    for r in records:
        assert set(r.conditions) == {"policy", "force", "expert", "placebo", "demo", "contrast", "hint"}
        assert r.conditions["demo"]["p"] == 1.0 and r.elp["demo"]["beats_placebo"]
        assert r.elp_net == max(e["value"] for e in r.elp.values()) == r.elp["demo"]["value"]


def test_patch_gain_statistics_directly() -> None:
    elp, net, route = patch_gain_labels({"placebo": (2, 20), "demo": (15, 20), "contrast": (4, 20), "hint": (2, 20)})
    assert route == "demo" and net == pytest.approx(0.65) and elp["demo"]["p_value"] < 0.01
    _, _, none = patch_gain_labels({"placebo": (5, 10), "demo": (6, 10), "contrast": (5, 10), "hint": (4, 10)})
    assert none == "none"
    assert patch_gain_labels({"policy": (1, 8)}) == ({}, None, "none")


def label_all(shop, snaps, work: Path, **overrides):
    config = LabelConfig(n_min=4, n_max=8, ci_halfwidth=0.3, rollout_batch=4, **overrides)
    return label_snapshots(snaps, shop=shop, student=RandomPolicy(), expert=ExpertPolicy(shop),
                           teacher=OfflineTeacher(shop), config=config, work_file=work, show_progress=False)


def test_labels_do_not_depend_on_the_batching(small_shop, snapshots, tmp_path: Path) -> None:
    a, _ = label_all(small_shop, snapshots[:10], tmp_path / "a.jsonl", snapshot_batch=10)
    b, _ = label_all(small_shop, snapshots[:10], tmp_path / "b.jsonl", snapshot_batch=3, branch_batch=7)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]


def test_lm_labels_do_not_depend_on_the_batching(small_shop, snapshots, tiny_student, tmp_path: Path,
                                                 one_torch_thread) -> None:
    from teachable.policy.lm import LMPolicy

    student = LMPolicy.from_pretrained(tiny_student)
    runs = []
    for snapshot_batch, branch_batch in ((6, 128), (4, 7), (1, 16)):
        config = LabelConfig(n_min=4, n_max=8, ci_halfwidth=0.3, rollout_batch=4,
                             snapshot_batch=snapshot_batch, branch_batch=branch_batch)
        records, progress = label_snapshots(snapshots[:6], shop=small_shop, student=student,
                                            teacher=OfflineTeacher(small_shop), config=config,
                                            work_file=tmp_path / f"{snapshot_batch}.jsonl", show_progress=False)
        runs.append([r.to_dict() for r in records])
        # the branches keep meeting contexts already scored in their batch: far fewer are scored than asked
        assert 0 < progress.branch.contexts_scored < progress.branch.contexts_asked / 2
    assert len(runs[0]) == 6 and any(r["uncertainty"]["entropy"] > 0 for r in runs[0])
    assert runs[0] == runs[1] == runs[2]


def test_resume_after_a_crash_gives_the_same_file(small_shop, snapshots, tmp_path: Path) -> None:
    snaps = snapshots[:9]
    whole, _ = label_all(small_shop, snaps, tmp_path / "whole.jsonl", snapshot_batch=3)

    class Crash(Exception):
        pass

    def crash(progress):
        raise Crash

    config = LabelConfig(n_min=4, n_max=8, ci_halfwidth=0.3, rollout_batch=4, snapshot_batch=3)
    work = tmp_path / "crashed.jsonl"
    with pytest.raises(Crash):
        label_snapshots(snaps, shop=small_shop, student=RandomPolicy(), expert=ExpertPolicy(small_shop),
                        teacher=OfflineTeacher(small_shop), config=config, work_file=work, show_progress=False,
                        on_batch=crash)
    assert len(read_jsonl(work, LabeledSnapshot)) == 3
    with work.open("a") as f:
        f.write('{"kind": "LabeledSnapsh')  # killed mid-write
    resumed, progress = label_all(small_shop, snaps, work, snapshot_batch=3)
    assert progress.resumed == 3 and progress.labeled == 6
    assert [r.to_dict() for r in resumed] == [r.to_dict() for r in whole]
    assert work.read_text() == (tmp_path / "whole.jsonl").read_text()


def test_unrestorable_snapshots_are_skipped_and_counted(small_shop, snapshots, tmp_path: Path) -> None:
    bad = replace(snapshots[0], snapshot_id="bad", state=snapshots[0].state.replace('"crc":', '"crc":1'))
    records, progress = label_all(small_shop, [bad, *snapshots[1:3]], tmp_path / "w.jsonl")
    assert progress.skipped_unrestorable == 1 and progress.skipped_ids == ["bad"]
    assert [r.snapshot_id for r in records] == [s.snapshot_id for s in snapshots[1:3]]
    assert summarize_labels(records, progress)["skipped_unrestorable"] == 1


def test_teacher_failure_is_recorded_with_or_without_fallback(small_shop, snapshots, tmp_path: Path) -> None:
    config = LabelConfig(n_min=4, n_max=4, ci_halfwidth=0.3, rollout_batch=4)
    common = dict(shop=small_shop, student=RandomPolicy(), expert=ExpertPolicy(small_shop), teacher=BrokenTeacher(),
                  config=config, show_progress=False)
    alone, p1 = label_snapshots(snapshots[:2], work_file=tmp_path / "a.jsonl", **common)
    assert p1.teacher_errors == 2 and all("429" in r.teacher_error and r.teacher is None for r in alone)
    assert all(set(r.conditions) == {"policy", "expert"} and r.route == "none" for r in alone)
    helped, p2 = label_snapshots(snapshots[:2], work_file=tmp_path / "b.jsonl",
                                 fallback=OfflineTeacher(small_shop), **common)
    assert p2.teacher_fallbacks == 2 and all(r.teacher_error and r.teacher["source"] == "offline" for r in helped)


def test_finalize_quadrants_and_depth(small_shop, snapshots, tmp_path: Path) -> None:
    records, progress = label_all(small_shop, snapshots[:16], tmp_path / "w.jsonl")
    config = LabelConfig()
    final, thr = finalize(records, config)
    assert all(r.quadrant is not None for r in final)
    for r in final:
        u, l_local = r.uncertainty["entropy"], r.leverage["L_local"]["value"]
        assert r.quadrant == quadrant_of(u, l_local, thr["u_threshold"], thr["l_threshold"])
    depths = intervention_depths(final, 0.5)
    for r in final:
        assert (r.d_expert, r.d_force) == depths[r.traj_id]
        if r.leverage["p_expert"] >= 0.5:
            assert r.d_expert >= r.steps_to_end + 1
    s = summarize_labels(final, progress)
    assert s["n_labeled"] == 16 and sum(s[f"n_{q}"] for q in ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL",
                                                               "Q4_lowU_highL")) == 16
    assert s["rollouts_spent"] == sum(r.rollouts for r in final) > 0


def test_quadrant_thresholds_and_selection(snapshots) -> None:
    assert thresholds([0, 1, 2, 3], [0, 0, 1, 1]) == (1.5, 0.5)
    assert quadrant_of(2, 1, 1.5, 0.5) == "Q1_highU_highL" and quadrant_of(0, 0, 1.5, 0.5) == "Q3_lowU_lowL"
    with pytest.raises(ValueError, match="quantile"):
        thresholds([1], [1], 1.0)
    picked = select_snapshots(snapshots, 5, seed=0)
    assert len(picked) == 5 and picked == select_snapshots(snapshots, 5, seed=0)
    assert [s.snapshot_id for s in picked] == [s.snapshot_id for s in snapshots if s in picked]


def test_branch_dedup_counts(small_shop, snapshots) -> None:
    stats = BranchStats()
    b = Branching(snapshots[0], None)
    run_branches([b, b], student=RandomPolicy(), expert=ExpertPolicy(small_shop), shop=small_shop,
                 plan=AdaptivePlan(n_min=4, n_max=4, ci_halfwidth=0.3, batch=4), seed=0, stats=stats)
    assert stats.episodes == 5 and stats.deduplicated == 5  # 4 policy + 1 expert, the copy served by them
