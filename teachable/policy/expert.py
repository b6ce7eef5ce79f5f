"""`ExpertPolicy`: a deterministic oracle that knows the goal and shops it as well as it can.

The expert reads the hidden fields of a `Context` (`goal` and `state`), decodes the env state
and acts on the page it is on:

- start page: `search[<instruction without the price clause>]`, as WebShop research agents
  do. When that query finds nothing, the last word is dropped until it does (so the expert
  never lands on empty results of its own making).
- results page: the *target* is chosen among all the search results (up to 50): the goal's
  ASIN when it is there, else the product with the highest reward under its best options
  (`best_options`), ties to the better search rank. When the current results come from
  another query (e.g. the student's) and the expert's own query would find a strictly better
  product, or the results are empty, it clicks `back to search`. Otherwise it pages
  (`next >` / `< prev`) to the target's page and clicks its ASIN.
- item page: an item is accepted when it is the target or scores at least as well; then each
  goal option not yet chosen is clicked (its matching product value), then `buy now`. An item
  that is not accepted is left with `< prev`.
- sub-page (Description / Features / Reviews): `< prev`. Done page: ValueError.

The target depends only on the goal and the search results of the session, so it is stable
across the steps of an episode. Scores and targets are cached per goal and result list.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thefuzz import fuzz

from teachable.policy.base import RngLike, check_batch
from teachable.prompting import Context
from webshop_env.env import Shop
from webshop_env.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    RESULTS_PER_PAGE,
    option_group_of,
)
from webshop_env.reward import FUZZY_THRESHOLD, get_reward, normalize_color
from webshop_env.state import Session, decode

logger = logging.getLogger(__name__)

PRICE_CLAUSE_RE = re.compile(r",?\s*and price lower than [\d,]+(?:\.\d+)? dollars\.?\s*$", re.IGNORECASE)
CACHE_SIZE = 20_000

SEARCH = "search"
OPEN_TARGET = "open_target"
PAGE_NEXT = "page_next"
PAGE_PREV = "page_prev"
BACK_TO_SEARCH_KIND = "back_to_search"
LEAVE_ITEM = "leave_item"
CHOOSE_OPTION = "choose_option"
BUY = "buy"
LEAVE_SUBPAGE = "leave_subpage"
DECISION_KINDS: tuple[str, ...] = (
    SEARCH, OPEN_TARGET, PAGE_NEXT, PAGE_PREV, BACK_TO_SEARCH_KIND, LEAVE_ITEM, CHOOSE_OPTION, BUY,
    LEAVE_SUBPAGE,
)


def click(label: str) -> str:
    """The click action for a button, ASIN or option label (lower-cased, as WebShop's clickables)."""
    return f"click[{label.lower()}]"


def strip_price_clause(instruction: str) -> str:
    """The instruction without WebShop's trailing ", and price lower than X dollars"."""
    return PRICE_CLAUSE_RE.sub("", instruction).strip()


def goal_option_values(goal: Mapping[str, Any]) -> list[str]:
    """The goal's option values (a list, or the values of a name -> value dict), lower-cased."""
    raw = goal["goal_options"]
    values = raw.values() if isinstance(raw, Mapping) else raw
    return [str(v).strip().lower() for v in values]


def option_matches_goal(group: str, value: str, goal_option: str) -> bool:
    """Whether buying `value` in option `group` matches `goal_option` as the reward judges it."""
    value_n, goal_n = normalize_color(value), normalize_color(goal_option)
    return fuzz.token_set_ratio(goal_n, value_n) > FUZZY_THRESHOLD


def offers_option(product: Mapping[str, Any], goal_option: str) -> bool:
    """Whether some option value of `product` matches `goal_option` (exactly or as the reward judges)."""
    offered = product["options"]
    return any(
        value == goal_option or option_matches_goal(option_group_of(product, value) or "", value, goal_option)
        for values in offered.values() for value in values
    )


def best_options(product: Mapping[str, Any], goal: Mapping[str, Any]) -> dict[str, str]:
    """The options to buy `product` with for `goal`: group -> value, in goal-option order.

    For each goal option, the product's matching value: an exact match first, else the best
    fuzzy match as the reward counts it (`option_matches_goal`). A group already taken by an
    earlier goal option is not reused, so no chosen value overwrites another.
    """
    offered = product["options"]
    chosen: dict[str, str] = {}
    for goal_option in goal_option_values(goal):
        candidates = []
        for value in dict.fromkeys(v for values in offered.values() for v in values):
            group = option_group_of(product, value)
            if group is None or group in chosen:
                continue
            if value == goal_option:
                candidates.append((2, 100, group, value))
            elif option_matches_goal(group, value, goal_option):
                candidates.append((1, fuzz.token_set_ratio(goal_option, value), group, value))
        if candidates:
            _, _, group, value = max(candidates, key=lambda c: (c[0], c[1]))
            chosen[group] = value
    return chosen


@dataclass(frozen=True)
class Target:
    """The product the expert heads for among a session's search results.

    Attributes:
        index: product index in the catalogue, or None when the results are empty.
        rank: 0-based position in the results, or None.
        score: its reward under its best options (-1.0 when there is none).
    """

    index: int | None
    rank: int | None
    score: float


@dataclass(frozen=True)
class ExpertDecision:
    """The expert's move at one context, with what it is based on.

    Attributes:
        action: the action string.
        kind: one of `DECISION_KINDS` (what the move does).
        session: the decoded env session.
        target: the target among the session's results (None on the start page).
        research: True when the expert would rather search again with its own query.
        query: the expert's own search query for the goal.
    """

    action: str
    kind: str
    session: Session
    target: Target | None
    research: bool
    query: str


class ExpertPolicy:
    """An oracle policy that reads the goal and the env state (see the module docstring).

    Args:
        shop: the shop the contexts' env states belong to.
        name: the policy name.
    """

    deterministic = True  # the same context always gives the same action: one rollout is exact

    def __init__(self, shop: Shop, name: str = "expert") -> None:
        self.shop = shop
        self.name = name
        self._scores: dict[tuple[str, int], float] = {}
        self._targets: dict[tuple[str, tuple[int, ...]], Target] = {}
        self._queries: dict[str, str] = {}

    # ----------------------------------------------------------------- Policy protocol
    def action_distribution(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        """`{expert action: 1.0}` for each context.

        Raises:
            ValueError: a context lacks its goal or state, or the episode is over.
        """
        return [{self.decide(ctx).action: 1.0} for ctx in contexts]

    def act(self, contexts: Sequence[Context], rng: RngLike, greedy: bool = False) -> list[str]:
        """The expert action for each context (deterministic: `rng` and `greedy` are not used).

        Raises:
            ValueError: a generator list of the wrong length, a context without goal or state,
                or a context on the done page.
        """
        check_batch(contexts, rng)
        return [self.decide(ctx).action for ctx in contexts]

    # ----------------------------------------------------------------- decisions
    def session_of(self, ctx: Context) -> Session:
        """Decode the env session carried by `ctx`.

        Raises:
            ValueError: the context has no goal or state.
            StateError: the state is corrupted or belongs to another catalogue.
        """
        if ctx.goal is None or ctx.state is None:
            raise ValueError(
                "ExpertPolicy needs the context's hidden goal and env state; build contexts with "
                "teachable.prompting.context_from_env(env, obs, info, history)."
            )
        catalog = self.shop.catalog
        return decode(ctx.state.encode(), catalog.content_hash, len(catalog), self.shop.goals)

    def decide(self, ctx: Context) -> ExpertDecision:
        """The expert's move at `ctx`.

        Raises:
            ValueError: the context has no goal or state, or it is on the done page.
        """
        session = self.session_of(ctx)
        if session.page == "done":
            raise ValueError("the episode is over (done page): the expert has no move; reset the env.")
        query = self.query_for(session.goal)
        if session.page == "start":
            return ExpertDecision(f"search[{query}]", SEARCH, session, None, False, query)
        target, research = self._plan(session, query)
        action, kind = self._move(session, target, research)
        return ExpertDecision(action, kind, session, target, research, query)

    def _move(self, session: Session, target: Target, research: bool) -> tuple[str, str]:
        if session.page == "sub":
            return click(PREV_PAGE), LEAVE_SUBPAGE
        if session.page == "item":
            return self._item_move(session, target, research)
        if research or target.rank is None:
            return click(BACK_TO_SEARCH), BACK_TO_SEARCH_KIND
        target_page = target.rank // RESULTS_PER_PAGE + 1
        if session.page_num < target_page:
            return click(NEXT_PAGE), PAGE_NEXT
        if session.page_num > target_page:
            return click(PREV_PAGE), PAGE_PREV
        return click(self.shop.catalog.products[target.index]["asin"]), OPEN_TARGET

    def _item_move(self, session: Session, target: Target, research: bool) -> tuple[str, str]:
        if not self.accepts_item(session, target, research):
            return click(PREV_PAGE), LEAVE_ITEM
        product = self.shop.catalog.products[session.item]
        for group, value in best_options(product, session.goal).items():
            if session.options.get(group) != value:
                return click(value), CHOOSE_OPTION
        return click(BUY_NOW), BUY

    def accepts_item(self, session: Session, target: Target, research: bool) -> bool:
        """Whether the open item is good enough to buy: the target, or it scores as well.

        When the expert would search again (`research`), the bar is its own query's best.
        """
        if session.item is None:
            return False
        if research:
            return self.score(session.item, session.goal) >= self._own_best(session.goal)
        if session.item == target.index or target.index is None:
            return True  # no results to compare with (a state built by hand): keep the item
        return self.score(session.item, session.goal) >= target.score

    # ----------------------------------------------------------------- targets and scores
    def query_for(self, goal: Mapping[str, Any]) -> str:
        """The expert's search query: the instruction without its price clause, shortened
        word by word from the end until the search finds something (kept whole when no
        prefix finds anything)."""
        text = strip_price_clause(goal["instruction_text"])
        if text not in self._queries:
            words = text.split()
            query = text
            for n in range(len(words), 0, -1):
                if self.shop.search(" ".join(words[:n]).lower()):
                    query = " ".join(words[:n])
                    break
            self._queries[text] = query
        return self._queries[text]

    def score(self, index: int, goal: Mapping[str, Any]) -> float:
        """The reward of buying product `index` for `goal` with its `best_options`."""
        key = (_goal_key(goal), index)
        if key not in self._scores:
            self._bound(self._scores)
            product = self.shop.catalog.products[index]
            self._scores[key] = float(get_reward(
                product, goal, price=self.shop.catalog.prices[index],
                options=best_options(product, goal), tagger=self.shop.tagger,
            ))
        return self._scores[key]

    def target_in(self, results: Sequence[int], goal: Mapping[str, Any]) -> Target:
        """The target among `results`: the goal's ASIN if present, else the best score
        (ties to the better rank)."""
        key = (_goal_key(goal), tuple(results))
        if key not in self._targets:
            self._bound(self._targets)
            self._targets[key] = self._choose_target(tuple(results), goal)
        return self._targets[key]

    def _choose_target(self, results: tuple[int, ...], goal: Mapping[str, Any]) -> Target:
        goal_index = self.shop.catalog.asin_to_index.get(str(goal.get("asin", "")).upper())
        if goal_index is not None and goal_index in results:
            return Target(goal_index, results.index(goal_index), self.score(goal_index, goal))
        best = Target(None, None, -1.0)
        for rank, index in enumerate(results):
            score = self.score(index, goal)
            if score > best.score:
                best = Target(index, rank, score)
        return best

    def _own_best(self, goal: Mapping[str, Any]) -> float:
        return self.target_in(self.shop.search(self.query_for(goal).lower()), goal).score

    def _plan(self, session: Session, query: str) -> tuple[Target, bool]:
        """The target in the session's results, and whether to search again instead."""
        target = self.target_in(session.results, session.goal)
        own_search = session.keywords == query.lower().split(" ")
        research = not own_search and self._own_best(session.goal) > target.score
        return target, research

    @staticmethod
    def _bound(cache: dict) -> None:
        if len(cache) >= CACHE_SIZE:
            cache.clear()


def _goal_key(goal: Mapping[str, Any]) -> str:
    """A hashable key of a goal dict (its JSON text: goals given as dicts have no index)."""
    return json.dumps(goal, sort_keys=True, default=str)
