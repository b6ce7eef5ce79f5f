"""The page-reading demonstrator: it acts on what the page shows, never on the goal."""

from __future__ import annotations

import numpy as np

from teachable.policy.reader import PageReader
from teachable.prompting import Context
from teachable.rollouts import goal_specs, run_episodes, sample_goals
from teachable.student import demonstrations

TASK = "i need a dog leash in navy blue, size large, and price lower than 30.00 dollars"
RESULTS = ("Instruction: [SEP] " + TASK + " [SEP] Back to Search [SEP] Page 1 (Total results: 2) [SEP] Next > [SEP] "
           "B0LEASH001 [SEP] Nylon Dog Leash [SEP] $12.0 [SEP] B0LEASH002 [SEP] Leather Dog Leash [SEP] $25.0")
ITEM_ACTIONS = ("click[back to search]", "click[< prev]", "click[description]", "click[buy now]", "click[red]",
                "click[navy blue]", "click[small]", "click[large]")


def decide(**kw) -> str:
    return PageReader().act([Context(instruction=TASK, **kw)], np.random.default_rng(0))[0]


def test_reader_rules() -> None:
    assert decide(observation="WebShop [SEP] Search", has_search_bar=True) == "search[i need a dog leash in navy blue, size large]"
    assert decide(observation=RESULTS, valid_actions=("click[back to search]", "click[next >]", "click[b0leash001]",
                                                      "click[b0leash002]")) == "click[b0leash001]"
    assert decide(observation="item", valid_actions=ITEM_ACTIONS) == "click[navy blue]"
    assert decide(observation="item", valid_actions=ITEM_ACTIONS, history=("click[navy blue]",)) == "click[large]"
    assert decide(observation="item", valid_actions=ITEM_ACTIONS,
                  history=("click[navy blue]", "click[large]")) == "click[buy now]"
    # a results page without products, and a sub-page: the way back
    assert decide(observation="none", valid_actions=("click[back to search]", "click[next >]")) == "click[back to search]"
    assert decide(observation="description", valid_actions=("click[< prev]",)) == "click[< prev]"


def test_reader_solves_goals_it_never_saw_and_labels_the_demonstrations(small_shop) -> None:
    goals = sample_goals(small_shop, "dev", 16, seed=0)
    trajs = run_episodes(small_shop, PageReader(), goal_specs(goals, seed=0, split="dev"), greedy=True)
    assert 0.3 < np.mean([t.success for t in trajs]) <= 1.0  # it reads pages well, though not perfectly
    pairs = demonstrations(small_shop, sample_goals(small_shop, "train", 6, seed=0), noise=0.3, seed=0,
                           max_steps=8, by="reader")
    reader = PageReader()
    assert pairs and all(reader.decide(c) == a for c, a in pairs)
