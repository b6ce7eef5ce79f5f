"""The page model: what a WebShop page shows, as plain data.

A `Page` is built from the session state and the catalogue; renderers (`webshop_env.render`)
turn it into WebShop's `text` observation, `text_rich` or HTML, and `clickables` lists what can
be clicked, in WebShop's order: buttons in page order, then product ASINs (lower-cased), then
option values (a value in two option groups is listed once, at its first position).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PageKind = Literal["start", "results", "item", "sub", "done"]
PAGE_KINDS: tuple[str, ...] = ("start", "results", "item", "sub", "done")
SUB_PAGES: tuple[str, ...] = ("Description", "Features", "Reviews")

BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SEARCH = "Search"
RESULTS_PER_PAGE = 10


@dataclass(frozen=True)
class Page:
    """One page as a person would see it.

    Attributes:
        kind: start, results, item, sub (Description/Features/Reviews) or done.
        instruction: the goal's instruction text.
        buttons: button labels in page order.
        products: results shown on this results page.
        page_num, total: results page number and number of hits.
        product: the product of an item page or sub-page.
        sub: which sub-page.
        options: options selected so far (item pages, done page).
        visited: ASINs clicked in this search session (shown in `text_rich`).
        reward: the purchase reward (done page).
        asin: the purchased ASIN as shown on the done page.
    """

    kind: PageKind
    instruction: str
    buttons: tuple[str, ...] = ()
    products: tuple[dict[str, Any], ...] = ()
    page_num: int = 0
    total: int = 0
    product: dict[str, Any] | None = None
    sub: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    visited: frozenset[str] = frozenset()
    reward: float | None = None
    asin: str | None = None


def buttons_for(kind: str, page_num: int = 1) -> tuple[str, ...]:
    """Button labels of a page kind, in page order."""
    if kind == "start":
        return (SEARCH,)
    if kind == "results":
        return (BACK_TO_SEARCH, PREV_PAGE, NEXT_PAGE) if page_num > 1 else (BACK_TO_SEARCH, NEXT_PAGE)
    if kind == "item":
        return (BACK_TO_SEARCH, PREV_PAGE, *SUB_PAGES, BUY_NOW)
    if kind == "sub":
        return (BACK_TO_SEARCH, PREV_PAGE)
    return ()


def clickables(page: Page) -> list[str]:
    """WebShop's clickables: lower-cased buttons, then ASINs, then option values."""
    keys = dict.fromkeys(b.lower() for b in page.buttons)
    for p in page.products:
        keys.setdefault(p["asin"].lower(), None)
    if page.kind == "item" and page.product is not None:
        for values in page.product["options"].values():
            for value in values:
                keys.setdefault(value, None)
    return list(keys)


def option_group_of(product: dict[str, Any], value: str) -> str | None:
    """The option group a click on `value` sets: the *last* group offering it, as in WebShop."""
    group = None
    for name, values in product["options"].items():
        if value in values:
            group = name
    return group
