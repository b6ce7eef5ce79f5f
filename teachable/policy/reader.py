"""A demonstrator that sees only what the student sees: the instruction and the page.

The oracle (`ExpertPolicy`) knows the goal's product and options, which no page shows. A student
behaviour-cloned on the oracle can only learn, on a results page, how often the oracle clicked
which id for which goal: it memorises ids of train goals and, when ids are drawn afresh, learns
the marginal (half its mass on `next >`, the rest spread over the products), which helps on no
new goal. Cloning a demonstrator whose every action follows from the visible page closes that
gap (the privileged-information gap of imitation learning); the oracle stays the teacher.

Its rules (WebShop's page layout, no goal):
- search page: the instruction without its price clause, as WebShop research agents search;
- results page: the first product listed (the search engine's best match);
- item page: each option value named in the instruction (a whole phrase) and not yet clicked,
  then `buy now`;
- anything else (a sub-page, a results page without products): back to search, or `< prev`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from teachable.policy.base import RngLike, check_batch
from teachable.policy.expert import click, strip_price_clause
from teachable.prompting import Context

BUY = click("buy now")
NEXT, PREV, BACK = click("next >"), click("< prev"), click("back to search")
BUTTONS = frozenset({BUY, NEXT, PREV, BACK, *(click(b) for b in ("description", "features", "reviews"))})


def named_in(value: str, instruction: str) -> bool:
    """Whether the option value occurs in the instruction as a whole phrase (any case)."""
    return re.search(rf"(?<![\w-]){re.escape(value.lower())}(?![\w-])", instruction.lower()) is not None


class PageReader:
    """The page-reading demonstrator (see the module docstring); deterministic."""

    name = "reader"
    deterministic = True

    def action_distribution(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        return [{self.decide(ctx): 1.0} for ctx in contexts]

    def act(self, contexts: Sequence[Context], rng: RngLike, greedy: bool = False) -> list[str]:
        check_batch(contexts, rng)
        return [self.decide(ctx) for ctx in contexts]

    @staticmethod
    def decide(ctx: Context) -> str:
        """The reader's action at `ctx`."""
        if ctx.has_search_bar:
            return f"search[{strip_price_clause(ctx.instruction)}]"
        others = [a for a in ctx.valid_actions if a not in BUTTONS]
        if BUY in ctx.valid_actions:  # an item page: every other click is an option value
            for action in others:
                if action not in ctx.history and named_in(action[len("click["):-1], ctx.instruction):
                    return action
            return BUY
        if others and NEXT in ctx.valid_actions:  # a results page
            return others[0]
        for way_back in (BACK, PREV):
            if way_back in ctx.valid_actions:
                return way_back
        return ctx.valid_actions[0]
