"""`OfflineTeacher`: rule-based advice built on the `ExpertPolicy` oracle; no model, no network.

For each (context, student action) the teacher returns a `TeacherAdvice`:

- `action`: the expert's action at the context.
- `hint`: a page-aware hint derived from the goal and the catalogue that points at the right
  move without the action string (start page: what to search for; results page: what to look
  for and where the best match is; item page: which options to select, or why the item does
  not match; sub-page: go back to the item).
- `contrast`: "You chose <student action>, but <why it is wrong>. The right move is
  <expert action> because <reason>." (or, when both agree, that the student's move is right).
- `error_type` (one of `ERROR_TYPES`), by these rules, first match wins:

  1. Same action as the expert (compared as the env parses actions): the skill the move
     exercises: searching and navigating the results -> exploration_failure; choosing
     options or leaving a non-matching item -> attribute_confusion; buying or leaving a
     sub-page -> planning_error.
  2. Not valid on the page (a click not among `Context.valid_actions`, a `search[...]` where
     the page has no search bar, or not an action at all) -> affordance_miss.
  3. A different search on the start page (a poor query) -> exploration_failure.
  4. Results page: `back to search` -> planning_error; paging (`next >` / `< prev`) away from
     or past the target -> exploration_failure; opening a product that scores below the
     target (or any product while the expert would search again) -> attribute_confusion;
     opening another product as good as the target -> exploration_failure.
  5. Item page: `buy now` on an item that does not match the task -> attribute_confusion;
     `buy now` with a wrong option selected -> attribute_confusion; `buy now` with options
     still missing (none wrong) -> planning_error (bought too early); clicking an option ->
     attribute_confusion (a wrong value, a value on a non-matching item, or a repeat);
     leaving the item (`< prev`, `back to search`) -> planning_error; opening a sub-page
     (a detour) -> planning_error.
  6. Sub-page: `back to search` -> planning_error.
  7. Anything else -> exploration_failure.

- `source`: "offline".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from teachable.policy.expert import (
    BACK_TO_SEARCH_KIND,
    BUY,
    CHOOSE_OPTION,
    LEAVE_ITEM,
    LEAVE_SUBPAGE,
    OPEN_TARGET,
    PAGE_NEXT,
    PAGE_PREV,
    SEARCH,
    ExpertDecision,
    ExpertPolicy,
    best_options,
    goal_option_values,
    offers_option,
    strip_price_clause,
)
from teachable.policy.teacher.base import TeacherAdvice
from teachable.prompting import Context
from webshop_env.env import Shop, parse_action
from webshop_env.goals import NO_PRICE_CAP
from webshop_env.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, SUB_PAGES
from webshop_env.reward import get_reward

logger = logging.getLogger(__name__)

SOURCE = "offline"
_WORD_RE = re.compile(r"[a-z0-9']+")
_FUNCTION_WORDS = frozenset("a an the for with of in and or to by from on that which is".split())

SKILL_OF_KIND: dict[str, str] = {
    SEARCH: "exploration_failure",
    OPEN_TARGET: "exploration_failure",
    PAGE_NEXT: "exploration_failure",
    PAGE_PREV: "exploration_failure",
    BACK_TO_SEARCH_KIND: "exploration_failure",
    LEAVE_ITEM: "attribute_confusion",
    CHOOSE_OPTION: "attribute_confusion",
    BUY: "planning_error",
    LEAVE_SUBPAGE: "planning_error",
}
BACK, NEXT, PREV, BUY_LABEL = (b.lower() for b in (BACK_TO_SEARCH, NEXT_PAGE, PREV_PAGE, BUY_NOW))
SUB_LABELS = frozenset(s.lower() for s in SUB_PAGES)


def normalize_action(action: str) -> str:
    """An action as the env reads it: `name[lower-cased argument]` (or the text unchanged)."""
    name, arg = parse_action(action)
    return action.strip() if arg is None else f"{name}[{arg}]"


def product_phrase(goal: Mapping[str, Any], nouns: Sequence[str]) -> str:
    """A short name of the product type the goal asks for, e.g. "raised garden bed".

    The longest run of words shared by the goal product's title and the instruction that holds
    no attribute or option word, does not start with a function word and ends with a noun of
    the title (`nouns`); the goal's `query` when there is none.
    """
    title = _WORD_RE.findall(goal["name"].lower())
    words = _WORD_RE.findall(strip_price_clause(goal["instruction_text"]).lower())
    grams = {tuple(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    banned = {w for text in [*goal["attributes"], *goal_option_values(goal)] for w in _WORD_RE.findall(text.lower())}
    noun_set, best = set(nouns), ()
    for i in range(len(title)):
        for j in range(i + len(best) + 1, len(title) + 1):
            gram = tuple(title[i:j])
            if gram in grams and not banned & set(gram) and gram[0] not in _FUNCTION_WORDS and gram[-1] in noun_set:
                best = gram
    return " ".join(best) if best else str(goal.get("query") or "product").strip()


def with_article(phrase: str) -> str:
    """'a'/'an' before a singular phrase; plural phrases (ending in 's') go bare."""
    if phrase.endswith("s") and not phrase.endswith("ss"):
        return phrase
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _listing(items: Sequence[str]) -> str:
    quoted = [f"'{i}'" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


class OfflineTeacher:
    """Advice from the expert oracle and the goal (rules in the module docstring).

    Args:
        shop: the shop the contexts' env states belong to.
        name: the teacher name.
    """

    def __init__(self, shop: Shop, name: str = "offline") -> None:
        self.shop = shop
        self.name = name
        self.expert = ExpertPolicy(shop)

    def advise(self, contexts: Sequence[Context], student_actions: Sequence[str]) -> list[TeacherAdvice]:
        """One `TeacherAdvice` per (context, student action).

        Raises:
            ValueError: the two sequences differ in length, a context lacks its goal or state
                (build it with `context_from_env`), or a context is on the done page.
        """
        if len(contexts) != len(student_actions):
            raise ValueError(
                f"got {len(contexts)} contexts and {len(student_actions)} student actions; pass one action per context."
            )
        return [self.advise_one(ctx, action) for ctx, action in zip(contexts, student_actions, strict=True)]

    def advise_one(self, ctx: Context, student_action: str) -> TeacherAdvice:
        """The advice for one decision (see `advise`)."""
        decision = self.expert.decide(ctx)
        error_type, why = self.classify(ctx, decision, student_action)
        reason = self._reason(decision)
        if why is None:
            contrast = f"You chose {student_action}, which is the right move: {reason}."
        else:
            contrast = (f"You chose {student_action}, but {why}. "
                        f"The right move is {decision.action} because {reason}.")
        return TeacherAdvice(action=decision.action, hint=self.hint(decision), contrast=contrast,
                             error_type=error_type, source=SOURCE)

    # ----------------------------------------------------------------- error types
    def classify(self, ctx: Context, decision: ExpertDecision, student_action: str) -> tuple[str, str | None]:
        """(error type, why the student's action is wrong, or None when it is the expert's)."""
        student = normalize_action(student_action)
        if student == normalize_action(decision.action):
            return SKILL_OF_KIND[decision.kind], None
        name, arg = parse_action(student_action)
        if name == "search" and arg and ctx.has_search_bar:
            return "exploration_failure", self._query_problem(decision, arg)
        if name != "click" or not arg or student not in ctx.valid_actions:
            return "affordance_miss", self._affordance_problem(ctx, name, arg)
        page = decision.session.page
        if page == "results":
            return self._results_error(decision, arg)
        if page == "item":
            return self._item_error(decision, arg)
        if page == "sub" and arg == BACK:
            return "planning_error", "going back to search throws away the search and the open item"
        return "exploration_failure", "it does not bring you closer to a matching product"

    @staticmethod
    def _affordance_problem(ctx: Context, name: str, arg: str | None) -> str:
        if name == "search" and arg:
            return "this page has no search bar, so a search is not one of its actions"
        if ctx.has_search_bar:
            return "this page only has a search bar: the next action must be a search"
        return "it is not one of the clickable elements on this page"

    def _query_problem(self, decision: ExpertDecision, query: str) -> str:
        goal = decision.session.goal
        found = self.expert.target_in(self.shop.search(query), goal).score
        if found < self.expert.target_in(self.shop.search(decision.query.lower()), goal).score:
            return f"the query '{query}' finds no product that matches the task as well"
        return f"the query '{query}' is less direct than the task's own words"

    def _results_error(self, decision: ExpertDecision, arg: str) -> tuple[str, str]:
        if arg == BACK:
            return "planning_error", "going back to search throws away results that already hold a good match"
        if arg in (NEXT, PREV):
            if decision.kind == BACK_TO_SEARCH_KIND:
                return "exploration_failure", "no page of these results holds a good match"
            return "exploration_failure", "it pages away from the best match"
        index = self.shop.catalog.asin_to_index.get(arg.upper())
        goal = decision.session.goal
        target_score = decision.target.score if decision.target else -1.0
        if index is not None and (decision.research or self.expert.score(index, goal) < target_score):
            problems = self.item_problems(index, goal) or ["a better match exists"]
            return "attribute_confusion", f"{arg} does not match the task ({'; '.join(problems)})"
        return "exploration_failure", f"{arg} is not the best-ranked match in the results"

    def _item_error(self, decision: ExpertDecision, arg: str) -> tuple[str, str]:
        session = decision.session
        goal, product = session.goal, self.shop.catalog.products[session.item]
        matches = decision.kind != LEAVE_ITEM
        if arg in SUB_LABELS:
            return "planning_error", f"the {arg} page is a detour: it does not change what to buy"
        if arg in (PREV, BACK):  # `< prev` on a non-matching item is the expert's own move
            if matches:
                return "planning_error", "it leaves the item that matches the task"
            return "planning_error", "going back to search throws away results that hold a better match"
        if not matches:
            problems = self.item_problems(session.item, goal) or ["a better match is in the results"]
            what = "buys" if arg == BUY_LABEL else "sets options on"
            return "attribute_confusion", f"it {what} an item that does not match the task ({'; '.join(problems)})"
        if arg == BUY_LABEL:
            wrong = self.wrong_options(session.options, product, goal)
            if wrong:
                return "attribute_confusion", f"the selected option(s) {_listing(wrong)} do not match the task"
            missing = self.missing_options(session.options, product, goal)
            return "planning_error", f"it buys too early: the option(s) {_listing(missing)} are not selected yet"
        return "attribute_confusion", self._option_problem(session.options, product, goal, arg)

    @staticmethod
    def _option_problem(chosen: Mapping[str, str], product: Mapping[str, Any], goal: Mapping[str, Any],
                        value: str) -> str:
        needed = best_options(product, goal)
        if value not in needed.values():
            return f"'{value}' is not an option the task asks for"
        if value in chosen.values():
            return f"'{value}' is already selected"
        return f"'{value}' is right, but another needed option comes first"

    # ----------------------------------------------------------------- item analysis
    def item_problems(self, index: int, goal: Mapping[str, Any]) -> list[str]:
        """Why product `index` falls short of `goal`: type, missing attributes, price, options."""
        product = self.shop.catalog.products[index]
        price = self.shop.catalog.prices[index]
        _, info = get_reward(product, goal, price=price, options={}, verbose=True, tagger=self.shop.tagger)
        problems = []
        if info["r_type"] < 1.0:
            nouns = self.shop.tagger.nouns(goal["name"])
            problems.append(f"it is the wrong kind of product, not {with_article(product_phrase(goal, nouns))}")
        missing = [a for a in goal["attributes"] if not self._has_attribute(product, price, goal, a)]
        if missing:
            problems.append(f"it lacks {_listing(missing)}")
        if price > goal["price_upper"]:
            problems.append(f"it costs more than {goal['price_upper']:.2f} dollars")
        absent = [o for o in goal_option_values(goal) if not offers_option(product, o)]
        if absent:
            problems.append(f"it does not offer {_listing(absent)}")
        return problems

    def _has_attribute(self, product: Mapping[str, Any], price: float, goal: Mapping[str, Any], attribute: str) -> bool:
        one = {**goal, "attributes": [attribute], "goal_options": []}
        _, info = get_reward(product, one, price=price, options={}, verbose=True, tagger=self.shop.tagger)
        return info["r_att"] >= 1.0

    @staticmethod
    def wrong_options(chosen: Mapping[str, str], product: Mapping[str, Any], goal: Mapping[str, Any]) -> list[str]:
        """Selected values in an option group the goal needs, other than the needed value."""
        needed = best_options(product, goal)
        return [v for g, v in chosen.items() if g in needed and needed[g] != v]

    @staticmethod
    def missing_options(chosen: Mapping[str, str], product: Mapping[str, Any], goal: Mapping[str, Any]) -> list[str]:
        """Needed option values not selected yet."""
        return [v for g, v in best_options(product, goal).items() if chosen.get(g) != v]

    # ----------------------------------------------------------------- texts
    def _wanted(self, goal: Mapping[str, Any], with_price: bool = True) -> str:
        """'a <product> with <attributes>[, under <cap> dollars]' for `goal`."""
        noun = product_phrase(goal, self.shop.tagger.nouns(goal["name"]))
        text = f"{with_article(noun)} with {_listing(goal['attributes'])}"
        if with_price and goal["price_upper"] < NO_PRICE_CAP:
            text += f", under {goal['price_upper']:.2f} dollars"
        return text

    def hint(self, decision: ExpertDecision) -> str:
        """A short hint toward the expert's move that never contains its action string."""
        hint = self._hint_text(decision)
        if decision.action.lower() in hint.lower():
            logger.debug("hint %r gave the action away; using the generic hint", hint)
            return "Compare the page with the task's product, attributes, options and price."
        return hint

    def _hint_text(self, decision: ExpertDecision) -> str:
        session, kind = decision.session, decision.kind
        goal = session.goal
        if kind == SEARCH:
            return f"Search for {self._wanted(goal, with_price=False)}, in the task's own words; leave the price out."
        if kind in (OPEN_TARGET, PAGE_NEXT, PAGE_PREV):
            where = {OPEN_TARGET: "on this page", PAGE_NEXT: "further down the results, on a later page",
                     PAGE_PREV: "on an earlier results page"}[kind]
            return f"Look for {self._wanted(goal)}; the best match is {where}."
        if kind == BACK_TO_SEARCH_KIND:
            if not session.results:
                return "The search found nothing; start a new search with fewer, more general words."
            return f"None of these results is {self._wanted(goal)}; start a new search with the task's words."
        if kind == LEAVE_ITEM:
            problems = self.item_problems(session.item, goal) or ["a better match is in the results"]
            return f"This item does not match the task ({'; '.join(problems)}); go back to the results."
        if kind == CHOOSE_OPTION:
            product = self.shop.catalog.products[session.item]
            missing = self.missing_options(session.options, product, goal)
            return f"This item matches the task; select the option(s) {_listing(missing)} before buying."
        if kind == BUY:
            return "This item matches the task and the options are set; complete the purchase."
        if self.expert.accepts_item(session, decision.target, decision.research):
            return "This page only shows details; go back to the item page to choose options and buy."
        problems = self.item_problems(session.item, goal) or ["a better match is in the results"]
        return f"This page only shows details, and this item does not match the task ({'; '.join(problems)}); go back."

    def _reason(self, decision: ExpertDecision) -> str:
        kind = decision.kind
        reasons = {
            SEARCH: "the task's own words, without the price, find the best-matching products",
            OPEN_TARGET: "it opens the product that best matches the task",
            PAGE_NEXT: "the best match is on a later results page",
            PAGE_PREV: "the best match is on an earlier results page",
            BACK_TO_SEARCH_KIND: "a new search with the task's words finds a better match than these results",
            LEAVE_ITEM: "this item does not match the task as well as the best result",
            CHOOSE_OPTION: "the task asks for this option and it is not selected yet",
            BUY: "the item matches the task and its options are set",
            LEAVE_SUBPAGE: "options are chosen and the purchase is made on the item page",
        }
        if kind == LEAVE_ITEM and decision.research:
            return "this item does not match the task as well as what a search with the task's words finds"
        session = decision.session
        if kind == LEAVE_SUBPAGE and not self.expert.accepts_item(session, decision.target, decision.research):
            return "this item does not match the task, and the way back to the results is through the item page"
        return reasons[kind]
