from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from teachable.policy.expert import ExpertPolicy
from teachable.policy.lm import LMPolicy
from teachable.rollouts import goal_specs, run_episodes, sample_goals
from teachable.student import NoisyExpert, StudentConfig, demonstrations, train_student

TINY = dict(n_train_goals=12, epochs=3.0, train_batch_size=8, vocab_size=400, hidden_size=32, num_layers=2,
            num_heads=2, eval_goals=4, max_steps=8, max_observation_chars=600)


def test_demonstrations_are_labelled_by_the_expert(small_shop) -> None:
    goals = sample_goals(small_shop, "train", 8, seed=0)
    pairs = demonstrations(small_shop, goals, noise=0.5, seed=0, max_steps=8)
    expert = ExpertPolicy(small_shop)
    assert pairs and all(expert.act([c], np.random.default_rng(0))[0] == a for c, a in pairs[:30])
    assert len({c.goal["asin"] for c, _ in pairs}) > 1
    clean = demonstrations(small_shop, goals, noise=0.0, seed=0, max_steps=8)
    assert len(clean) < len(pairs)  # noise visits more (off-course) states


def test_noise_zero_is_the_expert(small_shop) -> None:
    specs = goal_specs(sample_goals(small_shop, "train", 6, seed=1), seed=1)
    expert = ExpertPolicy(small_shop)
    a = run_episodes(small_shop, expert, specs)
    b = run_episodes(small_shop, NoisyExpert(expert, 0.0), specs)
    assert [t.steps[-1].action for t in a] == [t.steps[-1].action for t in b]
    assert all(t.success for t in a)


def test_train_student_saves_a_loadable_deterministic_model(small_shop, tmp_path: Path) -> None:
    config = StudentConfig(**TINY)
    m1 = train_student(config, small_shop, tmp_path / "a")
    m2 = train_student(config, small_shop, tmp_path / "b")
    assert m1["losses"] == m2["losses"] and m1["train_steps"] > 0 and len(m1["losses"]) >= 2
    assert m1["losses"][-1] < m1["losses"][0]
    for key in ("heldout_success_rate", "heldout_greedy_success_rate", "expert_success_rate", "n_demonstrations"):
        assert key in m1
    assert m1["expert_success_rate"] == 1.0
    policy = LMPolicy.from_pretrained(str(tmp_path / "a"), device="cpu")
    assert policy.max_observation_chars == 600 and policy.max_history == config.max_history
    specs = goal_specs(sample_goals(small_shop, "dev", 2, seed=0), seed=0)
    assert len(run_episodes(small_shop, policy, specs, max_steps=4)) == 2


def test_bad_config_values_are_refused() -> None:
    with pytest.raises(ValueError, match="noise"):
        StudentConfig(noise=1.0)
    with pytest.raises(ValueError, match="eval_split"):
        StudentConfig(eval_split="train")
    with pytest.raises(ValueError, match="n_train_goals"):
        StudentConfig(n_train_goals=0)
