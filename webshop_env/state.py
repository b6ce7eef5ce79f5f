"""The session state of one WebShop episode and its versioned, JSON-based serialisation.

A state is UTF-8 JSON with a CRC-32 of the payload appended as the last member, e.g.
`{"v":1,"cat":"3f2a...","gi":17,...,"crc":123456789}`. It never contains code (no pickle),
it names the catalogue it belongs to (restoring it on another catalogue is refused), and it is
small: search results are stored as product indices, so a restored env continues without
searching again.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webshop_env.pages import PAGE_KINDS, RESULTS_PER_PAGE, SUB_PAGES

STATE_VERSION = 1
_CRC_MARK = b',"crc":'
# The goal fields the env and the reward read; a goal given as a dict must have them all.
GOAL_FIELDS = (
    "asin", "instruction_text", "attributes", "goal_options", "price_upper",
    "query", "product_category", "name",
)
# A state of a built-in goal is a few hundred bytes; one with its goal inline a few kB.
MAX_STATE_BYTES = 256 * 1024
# WebShop shows at most 50 search results.
MAX_RESULTS = 50
# More actions than any episode takes; bounds the page numbers a state may claim.
MAX_STEPS = 1_000_000
_FIELDS = frozenset({"v", "cat", "gi", "pg", "kw", "res", "pn", "it", "op", "sub", "vis", "st", "rw"})


class StateError(ValueError):
    """A saved state cannot be restored; the message says why and what to do."""


@dataclass
class Session:
    """Everything that changes during an episode.

    Attributes:
        goal_idx: index of the goal in the env's goal list, or None for a goal given as a dict.
        goal: the goal dict.
        page: current page kind.
        keywords: search keywords of the current search, None before any search.
        results: product indices of the current search (at most `MAX_RESULTS`).
        page_num: results page number.
        item: product index of the open item, None when none.
        options: options selected on the open item.
        sub: sub-page name when on a sub-page.
        visited: ASINs opened since the last search reset (for `text_rich`).
        steps: actions taken so far.
        reward: the purchase reward once bought.
    """

    goal_idx: int | None
    goal: dict[str, Any]
    page: str = "start"
    keywords: list[str] | None = None
    results: tuple[int, ...] = ()
    page_num: int = 0
    item: int | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub: str | None = None
    visited: list[str] = field(default_factory=list)
    steps: int = 0
    reward: float | None = None
    reward_info: dict[str, Any] | None = None


def encode(session: Session, catalog_hash: str) -> bytes:
    """Serialise a session into a state blob."""
    payload: dict[str, Any] = {"v": STATE_VERSION, "cat": catalog_hash, "gi": session.goal_idx}
    if session.goal_idx is None:
        payload["goal"] = session.goal
    payload.update(
        pg=session.page, kw=session.keywords, res=list(session.results), pn=session.page_num,
        it=session.item, op=session.options, sub=session.sub, vis=session.visited,
        st=session.steps, rw=session.reward,
    )
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return body[:-1] + _CRC_MARK + str(zlib.crc32(body)).encode() + b"}"


def _refuse_constant(name: str) -> float:
    raise StateError(f"state holds the number {name}, which no state from get_state() does; the state is corrupted.")


# Refuses NaN and Infinity, which json.loads would otherwise accept; one decoder for all calls.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _payload(blob: bytes) -> dict[str, Any]:
    if not isinstance(blob, bytes | bytearray):
        raise StateError(f"a state must be bytes from get_state(), got {type(blob).__name__}.")
    if len(blob) > MAX_STATE_BYTES:
        raise StateError(
            f"state is {len(blob):,} bytes, more than the {MAX_STATE_BYTES:,} any episode state needs; "
            "it is not a WebShop state from get_state()."
        )
    cut = blob.rfind(_CRC_MARK)
    if cut < 0 or not blob.endswith(b"}"):
        raise StateError("state is truncated or not a WebShop state (no checksum); save it again with get_state().")
    body = bytes(blob[:cut]) + b"}"
    digits = bytes(blob[cut + len(_CRC_MARK):-1])
    if not digits.isdigit() or len(digits) > 10:
        raise StateError("state checksum is unreadable; the state is corrupted.")
    if zlib.crc32(body) != int(digits):
        raise StateError("state checksum does not match: the state is corrupted or truncated.")
    try:
        payload = _DECODER.decode(body.decode("utf-8"))
    except StateError:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StateError(f"state is not valid UTF-8 JSON ({type(e).__name__}); the state is corrupted.") from e
    if not isinstance(payload, dict):
        raise StateError("state payload is not a JSON object; the state is corrupted.")
    return payload


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise StateError(f"state field {what} is invalid; the state is corrupted.")


def _is_int(x: Any) -> bool:
    return type(x) is int  # not bool, which JSON's true would give


def _is_str_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def goal_problem(goal: Any) -> str | None:
    """What is wrong with a goal dict for this env, or None when it is usable.

    A usable goal has every field of `GOAL_FIELDS`: string `asin`, `instruction_text`, `query`,
    `product_category` and `name`; a non-empty list of string `attributes`; `goal_options` a
    list of strings or a dict of string to string; a finite number `price_upper`.
    """
    if not isinstance(goal, Mapping):
        return f"a goal must be a dict, got {type(goal).__name__}"
    missing = [k for k in GOAL_FIELDS if k not in goal]
    if missing:
        return f"the goal lacks WebShop goal fields {missing}"
    wrong = [k for k in ("asin", "instruction_text", "query", "product_category", "name") if not isinstance(goal[k], str)]
    if wrong:
        return f"goal fields {wrong} must be strings"
    if not _is_str_list(goal["attributes"]) or not goal["attributes"]:
        return "goal field attributes must be a non-empty list of strings"
    options = goal["goal_options"]
    if isinstance(options, Mapping):
        options_ok = all(isinstance(k, str) and isinstance(v, str) for k, v in options.items())
    else:
        options_ok = _is_str_list(options)
    if not options_ok:
        return "goal field goal_options must be a list of strings or a dict of strings"
    price = goal["price_upper"]
    if not (_is_int(price) or isinstance(price, float)) or not math.isfinite(price):
        return "goal field price_upper must be a finite number"
    return None


def _check_item_fields(p: dict[str, Any], catalog: Any) -> None:
    """Options that exist on the item and visited ASINs of the catalogue."""
    if p["it"] is not None:
        offered = catalog.products[p["it"]]["options"]
        for name, value in p["op"].items():
            _check(name in offered and value in offered[name], f"op (option {name!r}: {value!r} is not offered by the item)")
    _check(all(asin in catalog.asin_to_index for asin in p["vis"]), "vis (an ASIN not in the catalogue)")


def decode(
    blob: bytes, catalog_hash: str, n_products: int, goals: Sequence[dict[str, Any]], *, catalog: Any = None
) -> Session:
    """Parse and validate a state blob against the catalogue it is restored into.

    Every field is checked for its type and range: at most `MAX_RESULTS` distinct result
    indices of existing products, a results page number from 1 to the last results page plus
    the steps taken (every page past the last costs a click on "Next >"), an item on item, sub-
    and done pages only, a sub-page name on sub-pages only, options on item pages only, a float
    reward in [0, 1] on the done page only.

    Args:
        blob: the state from `encode` / `WebShopEnv.get_state`.
        catalog_hash: the content hash of the catalogue restored into.
        n_products: its number of products.
        goals: its goals (a state names a built-in goal by index).
        catalog: the catalogue itself (`products`, `asin_to_index`); when given, the options
            are checked against the item's and the visited ASINs against the catalogue.

    Raises:
        StateError: corrupted, truncated, too large, of an unknown version, from another
            catalogue, or with a field out of its type or range.
    """
    p = _payload(blob)
    if p.get("v") != STATE_VERSION or not _is_int(p.get("v")):
        raise StateError(
            f"state version {p.get('v')!r} is not supported (this webshop_env reads version {STATE_VERSION}); "
            "re-create the state with this version."
        )
    if p.get("cat") != catalog_hash:
        raise StateError(
            f"state belongs to catalogue {p.get('cat')!r}, this env runs catalogue {catalog_hash!r}; "
            "restore it into an env built on the same data_dir and price seed."
        )
    gi = p.get("gi")
    expected = _FIELDS | ({"goal"} if gi is None else set())
    if p.keys() != expected:
        raise StateError(
            f"state fields are wrong (missing {sorted(expected - set(p))}, unknown {sorted(set(p) - expected)}); "
            "the state is corrupted."
        )
    if gi is None:
        problem = goal_problem(p["goal"])
        _check(problem is None, f"goal ({problem})")
        goal = p["goal"]
    else:
        _check(_is_int(gi) and 0 <= gi < len(goals), "gi (goal index)")
        goal = goals[gi]
    page, res, item, steps, pn = p["pg"], p["res"], p["it"], p["st"], p["pn"]
    _check(isinstance(page, str) and page in PAGE_KINDS, "pg (page)")
    _check(_is_int(steps) and 0 <= steps <= MAX_STEPS, "st (steps, 0 to MAX_STEPS)")
    _check(p["kw"] is None or _is_str_list(p["kw"]), "kw (keywords)")
    _check(isinstance(res, list) and len(res) <= MAX_RESULTS, "res (at most MAX_RESULTS = 50 results)")
    _check(
        all(type(i) is int for i in res) and (not res or 0 <= min(res) <= max(res) < n_products)
        and len(set(res)) == len(res),
        "res (result indices)",
    )
    last_page = max(1, -(-len(res) // RESULTS_PER_PAGE))
    lowest = 1 if page in ("results", "item", "sub") else 0
    _check(_is_int(pn) and lowest <= pn <= last_page + steps, "pn (results page number)")
    with_item = page in ("item", "sub", "done")
    _check(item is None if not with_item else (_is_int(item) and 0 <= item < n_products), "it (item)")
    options = p["op"]
    _check(isinstance(options, dict) and all(isinstance(v, str) for v in options.values()), "op (options)")
    _check(with_item or not options, "op (options off an item page)")
    _check(p["sub"] in SUB_PAGES if page == "sub" else p["sub"] is None, "sub (sub-page)")
    _check(_is_str_list(p["vis"]) and len(set(p["vis"])) == len(p["vis"]), "vis (visited ASINs)")
    reward = p["rw"]
    if page == "done":
        _check(isinstance(reward, float) and 0.0 <= reward <= 1.0, "rw (reward, a float in [0, 1] on the done page)")
    else:
        _check(reward is None, "rw (reward off the done page)")
    if catalog is not None:
        _check_item_fields(p, catalog)
    return Session(
        goal_idx=gi, goal=goal, page=page, keywords=p["kw"], results=tuple(res), page_num=pn, item=item,
        options=dict(options), sub=p["sub"], visited=list(p["vis"]), steps=steps, reward=reward,
    )
