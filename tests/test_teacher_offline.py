"""OfflineTeacher: each error-type rule, hints that never give the action away, batches."""

from __future__ import annotations

import numpy as np
import pytest

from teachable.policy.teacher import ERROR_TYPES, OfflineTeacher, Teacher, TeacherAdvice
from teachable.policy.teacher.offline import product_phrase
from teachable.prompting import Context, context_from_env
from tests.test_expert import context_at, goal_index, product_index
from webshop_env.env import Shop, WebShopEnv

SHOE_QUERY = ["running", "shoes"]


@pytest.fixture(scope="module")
def teacher(tiny_shop: Shop) -> OfflineTeacher:
    return OfflineTeacher(tiny_shop)


def advice(teacher: OfflineTeacher, ctx: Context, action: str) -> TeacherAdvice:
    (out,) = teacher.advise([ctx], [action])
    assert out.source == "offline"
    assert out.error_type in ERROR_TYPES
    assert out.action not in out.hint
    assert out.contrast.startswith(f"You chose {action}")
    return out


def shoe_results(shop: Shop, asin: str, **fields) -> Context:
    """A context of the goal for `asin` on the "running shoes" results or an item of them."""
    fields.setdefault("page", "results")
    fields.setdefault("page_num", 1)
    return context_at(shop, goal_index(shop, asin), keywords=SHOE_QUERY,
                      results=shop.search("running shoes"), **fields)


def dear_shoe(shop: Shop, goal_asin: str) -> int:
    """A shoe of the "running shoes" results that costs more than the goal's cap."""
    cap = shop.goals[goal_index(shop, goal_asin)]["price_upper"]
    return next(i for i in shop.search("running shoes") if shop.catalog.prices[i] > cap)


def test_is_a_teacher(teacher: OfflineTeacher) -> None:
    typed: Teacher = teacher  # the protocol is not runtime-checkable: check its members
    assert typed.name == "offline"
    assert callable(typed.advise)


def test_batch_gives_one_advice_per_context(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    start = context_at(tiny_shop, goal_index(tiny_shop, "B0ZEBRA001"))
    results = shoe_results(tiny_shop, "B0SHOE0019")
    out = teacher.advise([start, results, start], ["click[x]", "click[next >]", "search[yoga mat]"])
    assert [a.action for a in out] == ["search[find me a zebra yoga mat]", "click[next >]",
                                       "search[find me a zebra yoga mat]"]
    with pytest.raises(ValueError, match="one action per context"):
        teacher.advise([start, results], ["click[next >]"])


def test_agreeing_with_the_expert_says_so(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0019")
    out = advice(teacher, ctx, "click[Next >]")  # the env lower-cases arguments
    assert out.action == "click[next >]"
    assert "which is the right move" in out.contrast
    assert out.error_type == "exploration_failure"
    assert "later page" in out.hint


def test_invalid_click_is_an_affordance_miss(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, shoe_results(tiny_shop, "B0SHOE0019"), "click[add to cart]")
    assert out.error_type == "affordance_miss"
    assert "The right move is click[next >]" in out.contrast


def test_search_without_a_search_bar_is_an_affordance_miss(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, shoe_results(tiny_shop, "B0SHOE0019"), "search[running shoes]")
    assert out.error_type == "affordance_miss"
    assert "no search bar" in out.contrast


def test_click_on_the_start_page_is_an_affordance_miss(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, context_at(tiny_shop, goal_index(tiny_shop, "B0ZEBRA001")), "click[b0zebra001]")
    assert out.error_type == "affordance_miss"


def test_poor_query_is_an_exploration_failure(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = context_at(tiny_shop, goal_index(tiny_shop, "B0ZEBRA001"))
    out = advice(teacher, ctx, "search[running shoes]")
    assert out.error_type == "exploration_failure"
    assert "finds no product that matches the task as well" in out.contrast
    assert out.hint.startswith("Search for") and "yoga mat with 'zebra pattern'" in out.hint


def test_back_to_search_from_good_results_is_a_planning_error(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, shoe_results(tiny_shop, "B0SHOE0019"), "click[back to search]")
    assert out.error_type == "planning_error"


def test_paging_away_from_the_target_is_an_exploration_failure(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, shoe_results(tiny_shop, "B0SHOE0002"), "click[next >]")
    assert out.error_type == "exploration_failure"
    assert out.action == "click[b0shoe0002]"
    assert "on this page" in out.hint


def test_opening_a_mismatching_product_is_attribute_confusion(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    dear = dear_shoe(tiny_shop, "B0SHOE0002")
    rank = tiny_shop.search("running shoes").index(dear)
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page_num=rank // 10 + 1)
    asin = tiny_shop.catalog.products[dear]["asin"].lower()
    out = advice(teacher, ctx, f"click[{asin}]")
    assert out.error_type == "attribute_confusion"
    assert "costs more than" in out.contrast


def test_opening_an_equally_good_product_is_an_exploration_failure(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, shoe_results(tiny_shop, "B0SHOE0002"), "click[b0shoe0001]")
    assert out.error_type == "exploration_failure"


def test_buying_a_mismatching_item_is_attribute_confusion(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=dear_shoe(tiny_shop, "B0SHOE0002"), page_num=3)
    out = advice(teacher, ctx, "click[buy now]")
    assert out.action == "click[< prev]"
    assert out.error_type == "attribute_confusion"
    assert out.hint.startswith("This item does not match the task") and "go back to the results" in out.hint


def test_wrong_type_is_named_in_the_hint(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = context_at(tiny_shop, goal_index(tiny_shop, "B0SHOE0002"), page="item",
                     keywords=["running", "shoes", "tea"], results=tiny_shop.search("running shoes tea"),
                     page_num=1, item=product_index(tiny_shop, "B0TEA00001"))
    out = advice(teacher, ctx, "click[mint]")
    assert out.error_type == "attribute_confusion"
    assert "wrong kind of product" in out.hint


def test_buying_with_a_wrong_option_is_attribute_confusion(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=product_index(tiny_shop, "B0SHOE0002"),
                       options={"color": "black | white", "size": "9"})
    out = advice(teacher, ctx, "click[buy now]")
    assert out.action == "click[navy blue]"
    assert out.error_type == "attribute_confusion"
    assert "'black | white'" in out.contrast


def test_buying_with_missing_options_is_a_planning_error(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=product_index(tiny_shop, "B0SHOE0002"),
                       options={"color": "navy blue"})
    out = advice(teacher, ctx, "click[buy now]")
    assert out.action == "click[9]"
    assert out.error_type == "planning_error"
    assert "too early" in out.contrast
    assert "select the option(s) '9'" in out.hint


def test_clicking_a_wrong_option_is_attribute_confusion(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=product_index(tiny_shop, "B0SHOE0002"))
    out = advice(teacher, ctx, "click[10]")
    assert out.error_type == "attribute_confusion"
    assert "not an option the task asks for" in out.contrast


def test_leaving_the_right_item_is_a_planning_error(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=product_index(tiny_shop, "B0SHOE0002"))
    assert advice(teacher, ctx, "click[< prev]").error_type == "planning_error"
    assert advice(teacher, ctx, "click[back to search]").error_type == "planning_error"


def test_a_sub_page_detour_is_a_planning_error(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=product_index(tiny_shop, "B0SHOE0002"))
    out = advice(teacher, ctx, "click[reviews]")
    assert out.error_type == "planning_error"
    assert "detour" in out.contrast


def test_back_to_search_from_a_wrong_item_is_a_planning_error(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="item", item=dear_shoe(tiny_shop, "B0SHOE0002"), page_num=3)
    out = advice(teacher, ctx, "click[back to search]")
    assert out.error_type == "planning_error"
    assert out.action == "click[< prev]"


def test_back_to_search_from_a_sub_page_is_a_planning_error(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = shoe_results(tiny_shop, "B0SHOE0002", page="sub", sub="Features",
                       item=product_index(tiny_shop, "B0SHOE0002"))
    out = advice(teacher, ctx, "click[back to search]")
    assert out.error_type == "planning_error"
    assert out.action == "click[< prev]"
    assert "go back to the item page" in out.hint


def test_hints_never_contain_the_action_along_expert_play(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    rng = np.random.default_rng(0)
    for gi in range(len(tiny_shop.goals)):
        env = WebShopEnv(tiny_shop)
        obs, info = env.reset(options={"goal_idx": gi})
        history: list[str] = []
        done = False
        while not done:
            ctx = context_from_env(env, obs, info, tuple(history))
            student = str(rng.choice([*ctx.valid_actions, "search[shoes]"]))
            out = advice(teacher, ctx, student)
            history.append(out.action)
            obs, _, terminated, truncated, info = env.step(out.action)
            done = terminated or truncated


def test_product_phrase_leaves_out_attributes(tiny_shop: Shop) -> None:
    goal = tiny_shop.goals[goal_index(tiny_shop, "B0TEA00001")]
    assert product_phrase(goal, tiny_shop.tagger.nouns(goal["name"])) == "green tea bags"


def test_paging_through_poor_results_is_an_exploration_failure(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    out = advice(teacher, shoe_results(tiny_shop, "B0ZEBRA001"), "click[next >]")
    assert out.action == "click[back to search]"
    assert out.error_type == "exploration_failure"
    assert out.hint.startswith("None of these results")


def test_empty_results_hint_asks_for_fewer_words(tiny_shop: Shop, teacher: OfflineTeacher) -> None:
    ctx = context_at(tiny_shop, goal_index(tiny_shop, "B0ZEBRA001"), page="results", keywords=["qqq"],
                     results=(), page_num=1)
    out = advice(teacher, ctx, "click[next >]")
    assert out.action == "click[back to search]"
    assert "fewer, more general words" in out.hint
