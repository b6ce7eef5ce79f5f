"""ExpertPolicy: the oracle solves hand-checked tiny goals, pages, leaves wrong items, picks
options before buying, and solves the generated catalogue's test goals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from teachable.policy import ExpertPolicy, Policy
from teachable.policy.expert import best_options, strip_price_clause
from teachable.prompting import Context, context_from_env
from webshop_env.env import Shop, WebShopEnv
from webshop_env.state import Session, encode


def goal_index(shop: Shop, asin: str) -> int:
    """The index of the first goal whose product is `asin`."""
    return next(i for i, g in enumerate(shop.goals) if g["asin"] == asin)


def product_index(shop: Shop, asin: str) -> int:
    return shop.catalog.asin_to_index[asin]


def context_at(shop: Shop, goal_idx: int, history: tuple[str, ...] = (), **fields: Any) -> Context:
    """A context on a hand-built session (page, results, item, options, ...) of goal `goal_idx`."""
    env = WebShopEnv(shop)
    session = Session(goal_idx=goal_idx, goal=shop.goals[goal_idx], **fields)
    obs, info = env.set_state(encode(session, shop.catalog.content_hash))
    return context_from_env(env, obs, info, history)


def play(shop: Shop, policy: ExpertPolicy, goal_idx: int, prefix: tuple[str, ...] = (),
         max_steps: int = 15) -> tuple[float, list[str]]:
    """Run `prefix` actions, then the expert until the episode ends; (reward, expert actions)."""
    env = WebShopEnv(shop, max_steps=max_steps)
    obs, info = env.reset(options={"goal_idx": goal_idx})
    history: list[str] = []
    for action in prefix:
        obs, _, _, _, info = env.step(action)
        history.append(action)
    actions, reward = [], 0.0
    while True:
        action = policy.act([context_from_env(env, obs, info, tuple(history))], np.random.default_rng(0))[0]
        actions.append(action)
        history.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        assert not info["invalid_action"], action
        if terminated or truncated:
            return reward, actions


@pytest.fixture(scope="module")
def expert(tiny_shop: Shop) -> ExpertPolicy:
    return ExpertPolicy(tiny_shop)


@pytest.fixture(scope="module")
def default_shop() -> Shop:
    return Shop.load()


def test_is_a_policy(expert: ExpertPolicy) -> None:
    assert isinstance(expert, Policy)
    assert expert.name == "expert"


def test_strip_price_clause() -> None:
    text = "i want green tea bags, and price lower than 1,050.00 dollars"
    assert strip_price_clause(text) == "i want green tea bags"
    assert strip_price_clause("find me a zebra yoga mat") == "find me a zebra yoga mat"


def test_solves_tea_goal_exactly(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    reward, actions = play(tiny_shop, expert, goal_index(tiny_shop, "B0TEA00001"))
    assert reward == 1.0
    # "mint" is offered by two option groups; one click sets it (in the last group).
    assert actions == [
        "search[i want gluten free green tea bags with mint flavor]",
        "click[b0tea00001]", "click[mint]", "click[buy now]",
    ]


def test_solves_zebra_goal_without_options(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    reward, actions = play(tiny_shop, expert, goal_index(tiny_shop, "B0ZEBRA001"))
    assert reward == 1.0
    assert actions == ["search[find me a zebra yoga mat]", "click[b0zebra001]", "click[buy now]"]


def test_solves_every_tiny_goal(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    for gi in range(len(tiny_shop.goals)):
        reward, actions = play(tiny_shop, expert, gi)
        assert reward == 1.0, (gi, actions)


def test_pages_to_a_target_on_page_two(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0019")
    assert tiny_shop.search("running shoes").index(product_index(tiny_shop, "B0SHOE0019")) >= 10
    reward, actions = play(tiny_shop, expert, gi, prefix=("search[running shoes]",))
    assert reward == 1.0
    assert actions[:2] == ["click[next >]", "click[b0shoe0019]"]


def test_pages_back_to_an_earlier_target(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0002")
    ctx = context_at(tiny_shop, gi, page="results", keywords=["running", "shoes"],
                     results=tiny_shop.search("running shoes"), page_num=3)
    assert expert.act([ctx], np.random.default_rng(0)) == ["click[< prev]"]


def test_leaves_a_wrong_item(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0002")
    ctx = context_at(tiny_shop, gi, page="item", keywords=["running", "shoes", "tea"],
                     results=tiny_shop.search("running shoes tea"), page_num=1,
                     item=product_index(tiny_shop, "B0TEA00001"))
    assert expert.decide(ctx).action == "click[< prev]"
    reward, actions = play(tiny_shop, expert, gi, prefix=("search[running shoes tea]", "click[b0tea00001]"))
    assert reward == 1.0
    assert actions[0] == "click[< prev]"


def test_leaves_an_item_over_the_price(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0002")
    cap = tiny_shop.goals[gi]["price_upper"]
    dear = next(i for i in tiny_shop.search("running shoes") if tiny_shop.catalog.prices[i] > cap)
    ctx = context_at(tiny_shop, gi, page="item", keywords=["running", "shoes"],
                     results=tiny_shop.search("running shoes"), page_num=3, item=dear)
    assert expert.decide(ctx).action == "click[< prev]"


def test_chooses_options_before_buying(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0019")
    assert tiny_shop.goals[gi]["goal_options"] == ["navy blue", "9"]
    reward, actions = play(tiny_shop, expert, gi)
    assert reward == 1.0
    assert actions[-3:] == ["click[navy blue]", "click[9]", "click[buy now]"]


def test_replaces_a_wrong_option(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0019")
    item = product_index(tiny_shop, "B0SHOE0019")
    ctx = context_at(tiny_shop, gi, page="item", keywords=["running", "shoes"],
                     results=tiny_shop.search("running shoes"), page_num=2, item=item,
                     options={"color": "black | white", "size": "9"})
    assert expert.decide(ctx).action == "click[navy blue]"


def test_best_options_match_exactly_first(tiny_shop: Shop) -> None:
    shoe = tiny_shop.catalog.product("B0SHOE0001")
    goal = {"goal_options": ["navy blue", "9"]}
    assert best_options(shoe, goal) == {"color": "navy blue", "size": "9"}
    assert best_options(shoe, {"goal_options": ["11"]}) == {}  # size needs an exact value


def test_leaves_a_sub_page(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0SHOE0019")
    ctx = context_at(tiny_shop, gi, page="sub", sub="Reviews", keywords=["running", "shoes"],
                     results=tiny_shop.search("running shoes"), page_num=2,
                     item=product_index(tiny_shop, "B0SHOE0019"))
    assert expert.decide(ctx).action == "click[< prev]"


def test_searches_again_from_poor_results(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0ZEBRA001")
    reward, actions = play(tiny_shop, expert, gi, prefix=("search[running shoes]",))
    assert reward == 1.0
    assert actions[:2] == ["click[back to search]", "search[find me a zebra yoga mat]"]


def test_empty_results_go_back_to_search(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0ZEBRA001")
    ctx = context_at(tiny_shop, gi, page="results", keywords=["qqq"], results=(), page_num=1)
    assert expert.decide(ctx).action == "click[back to search]"


def test_done_page_raises(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0ZEBRA001")
    ctx = context_at(tiny_shop, gi, page="done", item=product_index(tiny_shop, "B0ZEBRA001"), reward=1.0)
    with pytest.raises(ValueError, match="episode is over"):
        expert.act([ctx], np.random.default_rng(0))


def test_act_accepts_one_generator_or_a_list(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    gi = goal_index(tiny_shop, "B0ZEBRA001")
    contexts = [context_at(tiny_shop, gi), context_at(tiny_shop, gi)]
    one = expert.act(contexts, np.random.default_rng(0))
    many = expert.act(contexts, [np.random.default_rng(1), np.random.default_rng(2)], greedy=True)
    assert one == many == ["search[find me a zebra yoga mat]"] * 2
    assert expert.action_distribution(contexts) == [{"search[find me a zebra yoga mat]": 1.0}] * 2
    with pytest.raises(ValueError, match="generators"):
        expert.act(contexts, [np.random.default_rng(1)])


def test_missing_goal_or_state_raises(tiny_shop: Shop, expert: ExpertPolicy) -> None:
    bare = Context(instruction="find me a zebra yoga mat", observation="...")
    with pytest.raises(ValueError, match="context_from_env"):
        expert.act([bare], np.random.default_rng(0))
    goal_only = Context(instruction="x", observation="...", goal=tiny_shop.goals[0])
    with pytest.raises(ValueError, match="context_from_env"):
        expert.action_distribution([goal_only])


def test_success_rate_on_generated_test_goals(default_shop: Shop) -> None:
    expert = ExpertPolicy(default_shop)
    goals = list(default_shop.split_goal_indices("test"))[:32]
    rewards = [play(default_shop, expert, gi, max_steps=15)[0] for gi in goals]
    assert np.mean(np.array(rewards) >= 1.0) >= 0.9
