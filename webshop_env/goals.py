"""Shopping goals as WebShop builds them, with a seeded price cap and WebShop's goal order.

Human goals come from `items_human_ins.json` (one goal per instruction with non-empty
`instruction_attributes`); synthetic goals from the `instruction` of `items_ins_v2.json`,
one per combination of the product's option values. The price cap draws two of the (up to
four) price bins above the product's price and keeps the larger; with fewer than two bins
above, the cap is 1,000,000 and the instruction carries no price text. The original drew
these from the unseeded global RNG; here a private `random.Random(goal_seed)` draws them.

Goals are then shuffled with a private `random.Random(233)`, the seed WebShop uses, so the
published splits select the same positions: for the full human goal set, test is 0-499,
dev 500-1499 and train 1500+. Smaller goal sets keep the same proportions.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from webshop_env.catalog import Catalog, CatalogError

logger = logging.getLogger(__name__)

PRICE_BINS = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_CAP = 1000000
GOAL_SHUFFLE_SEED = 233
FULL_HUMAN_GOALS = 12087
TEST_END, DEV_END = 500, 1500
SPLITS = ("test", "dev", "train")


def price_cap(price: float, rng: random.Random) -> tuple[float, str]:
    """Return (price_upper, price text appended to the instruction)."""
    above = [p for p in PRICE_BINS if p > price][:4]
    if len(above) < 2:
        return NO_PRICE_CAP, ""
    _, upper = sorted(rng.sample(above, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


class HumanGoals(Sequence):
    """The human goals of a store-backed catalogue, in WebShop's order, built on access.

    Holds per goal only its position in catalogue order, its price cap and the shuffle; the goal
    dict (the same as `human_goals` builds, then shuffled) is made when a goal is looked at and
    the most recent ones are kept. The price caps are drawn with the same calls on the same RNG
    in the same order as `price_cap` (``rng.sample`` depends only on the population's length).
    """

    def __init__(self, catalog: Catalog, goal_seed: int, cache_size: int = 65536) -> None:
        store = catalog.store
        n_goals = int(np.searchsorted(store.arrays["human_goals.product"], len(catalog), side="left"))
        self._product = store.arrays["human_goals.product"]
        self._row = store.arrays["human_goals.row"]
        self._pos = store.arrays["human_goals.pos"]
        self._table = store.tables["human"]
        self._catalog = catalog
        self._upper, self._order = self._caps_and_order(catalog, goal_seed, n_goals)
        self._get = lru_cache(maxsize=cache_size)(self._build)

    def _caps_and_order(self, catalog: Catalog, goal_seed: int, n_goals: int) -> tuple[np.ndarray, np.ndarray]:
        """Price caps and WebShop's shuffle; a million Python RNG calls, so kept beside the store
        (keyed by the catalogue's content hash, which covers prices and `num_products`)."""
        memo = catalog.store.path.parent / "derived" / f"human-goals-{catalog.content_hash}-g{goal_seed}.npz"
        try:
            with np.load(memo, allow_pickle=False) as f:
                upper, order = f["upper"], f["order"]
            if upper.shape == order.shape == (n_goals,):
                return upper, order
        except (OSError, ValueError, KeyError):
            pass
        prices = np.asarray(catalog.prices, dtype=np.float64)[np.asarray(self._product[:n_goals])]
        upper = self._price_caps(prices, random.Random(goal_seed))
        order = list(range(n_goals))
        random.Random(GOAL_SHUFFLE_SEED).shuffle(order)  # the permutation shuffling the goals makes
        order = np.array(order, dtype=np.int64)
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f".{memo.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, upper=upper, order=order)
            os.replace(tmp, memo)
        except OSError as e:  # a read-only cache only costs this again next time
            logger.warning("could not keep the goal price caps in %s: %s", memo, e)
        return upper, order

    @staticmethod
    def _price_caps(prices: np.ndarray, rng: random.Random) -> np.ndarray:
        bins = np.array(PRICE_BINS)
        first = np.searchsorted(bins, prices, side="right")  # bins <= price
        n_above = np.minimum(4, bins.size - first)
        upper = np.full(prices.size, np.nan)
        sample = rng.sample
        for i in np.flatnonzero(n_above >= 2).tolist():
            a, b = sample(range(int(n_above[i])), 2)
            upper[i] = bins[first[i] + max(a, b)]
        return upper

    def _build(self, j: int) -> dict[str, Any]:
        product = self._catalog.products[int(self._product[j])]
        ins = json.loads(self._table.value(int(self._row[j])))[int(self._pos[j])]
        upper = self._upper[j]
        if np.isnan(upper):
            upper, price_text = NO_PRICE_CAP, ""
        else:
            upper = float(upper)
            price_text = f", and price lower than {upper:.2f} dollars"
        text = ins["instruction"].strip(".") + price_text
        return _goal(product, text, ins["instruction_attributes"], upper, ins["instruction_options"])

    def __len__(self) -> int:
        return int(self._order.size)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._get(int(self._order[j])) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"goal index {i} out of range (0..{n - 1})")
        return self._get(int(self._order[i % n]))

    def __eq__(self, other: object) -> bool:  # compares as the list it stands for
        if isinstance(other, HumanGoals | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _goal(product: dict[str, Any], instruction: str, attributes: list[str], upper: float, options: Any) -> dict[str, Any]:
    return {
        "asin": product["asin"],
        "category": product["category"],
        "query": product["query"],
        "name": product["name"],
        "product_category": product["product_category"],
        "instruction_text": instruction,
        "attributes": attributes,
        "price_upper": upper,
        "goal_options": options,
        "weight": 1,
    }


def human_goals(catalog: Catalog, rng: random.Random) -> list[dict[str, Any]]:
    """One goal per human instruction with attributes, in catalogue order."""
    goals = []
    for index, instructions in catalog.records_in_order("human"):
        product, price = catalog.products[index], catalog.prices[index]
        for ins in instructions:
            if not ins["instruction_attributes"]:
                continue  # WebShop skips instructions without attributes
            upper, price_text = price_cap(price, rng)
            text = ins["instruction"].strip(".") + price_text
            goals.append(_goal(product, text, ins["instruction_attributes"], upper, ins["instruction_options"]))
    return goals


def synthetic_goals(catalog: Catalog, rng: random.Random) -> list[dict[str, Any]]:
    """One goal per option combination of every product with a synthetic instruction."""
    goals = []
    attr_counts: dict[str, int] = defaultdict(int)
    for index, record in catalog.records_in_order("attributes"):
        product, price = catalog.products[index], catalog.prices[index]
        instruction = record.get("instruction")
        if instruction is None:
            continue
        attributes = record.get("instruction_attributes") or []
        if not attributes:
            raise CatalogError(f"items_ins_v2: {product['asin']} has an instruction but no 'instruction_attributes'.")
        upper, price_text = price_cap(price, rng)
        names = sorted(product["options"])
        for combo in itertools.product(*(product["options"][n] for n in names)):
            goal_options = dict(zip(names, combo, strict=True))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = " with " + option_text if option_text else ""
            goals.append(_goal(product, f"{instruction}{option_text}{price_text}", attributes, upper, goal_options))
            for att in attributes:
                attr_counts[att] += 1
    for goal in goals:
        goal["weight"] = sum(1.0 / attr_counts[a] for a in goal["attributes"]) / len(goal["attributes"])
    return goals


def build_goals(catalog: Catalog, human: bool = True, goal_seed: int = 0) -> Sequence[dict[str, Any]]:
    """Build the goal list in WebShop's order.

    Human goals of a store-backed catalogue come as a lazy `HumanGoals` sequence (WebShop's
    full data has 12,087; a generated catalogue of that size about 880k); otherwise a list.

    Args:
        catalog: the loaded catalogue.
        human: human goals (WebShop's default for agents) or synthetic goals.
        goal_seed: seed of the price-cap draws.

    Raises:
        CatalogError: the files needed for this kind of goal are missing or yield no goal.
    """
    rng = random.Random(goal_seed)
    if human and not catalog.human_instructions:
        raise CatalogError(
            f"{catalog.data_dir}: human goals need items_human_ins.json; add it or use human_goals=False."
        )
    if human and catalog.store is not None:
        goals: Sequence[dict[str, Any]] = HumanGoals(catalog, goal_seed)
    else:
        goals = human_goals(catalog, rng) if human else synthetic_goals(catalog, rng)
    if not goals:
        raise CatalogError(f"{catalog.data_dir}: the catalogue yields no {'human' if human else 'synthetic'} goals.")
    if isinstance(goals, list):
        random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def split_bounds(n_goals: int) -> tuple[int, int]:
    """(end of test, end of dev) for a goal list of `n_goals` goals."""
    if n_goals >= FULL_HUMAN_GOALS:
        return TEST_END, DEV_END
    test_end = max(1, round(n_goals * TEST_END / FULL_HUMAN_GOALS)) if n_goals >= 3 else 0
    dev_end = max(test_end + 1, round(n_goals * DEV_END / FULL_HUMAN_GOALS)) if n_goals >= 3 else 0
    return test_end, dev_end


def split_goal_indices(n_goals: int, split: str) -> range:
    """Goal indices of a named split (`test`, `dev`, `train`).

    Raises:
        ValueError: unknown split name.
    """
    test_end, dev_end = split_bounds(n_goals)
    ranges = {"test": range(0, test_end), "dev": range(test_end, dev_end), "train": range(dev_end, n_goals)}
    if split not in ranges:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    return ranges[split]
