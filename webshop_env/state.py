"""The session state of one WebShop episode and its versioned, JSON-based serialisation.

A state is UTF-8 JSON with a CRC-32 of the payload appended as the last member, e.g.
`{"v":1,"cat":"3f2a...","gi":17,...,"crc":123456789}`. It never contains code (no pickle),
it names the catalogue it belongs to (restoring it on another catalogue is refused), and it is
small: search results are stored as product indices, so a restored env continues without
searching again.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from webshop_env.pages import PAGE_KINDS, SUB_PAGES

STATE_VERSION = 1
_CRC_MARK = b',"crc":'
GOAL_FIELDS = ("asin", "instruction_text", "attributes", "goal_options", "price_upper")


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
        results: product indices of the current search (at most 50).
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


def _payload(blob: bytes) -> dict[str, Any]:
    if not isinstance(blob, bytes | bytearray):
        raise StateError(f"a state must be bytes from get_state(), got {type(blob).__name__}.")
    cut = blob.rfind(_CRC_MARK)
    if cut < 0 or not blob.endswith(b"}"):
        raise StateError("state is truncated or not a WebShop state (no checksum); save it again with get_state().")
    body = bytes(blob[:cut]) + b"}"
    try:
        crc = int(blob[cut + len(_CRC_MARK):-1])
    except ValueError as e:
        raise StateError("state checksum is unreadable; the state is corrupted.") from e
    if zlib.crc32(body) != crc:
        raise StateError("state checksum does not match: the state is corrupted or truncated.")
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise StateError("state payload is not a JSON object.")
    return payload


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise StateError(f"state field {what} is invalid; the state is corrupted.")


def decode(blob: bytes, catalog_hash: str, n_products: int, goals: list[dict[str, Any]]) -> Session:
    """Parse and validate a state blob against the catalogue it is restored into.

    Raises:
        StateError: corrupted, truncated, of an unknown version, or from another catalogue.
    """
    p = _payload(blob)
    if p.get("v") != STATE_VERSION:
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
    if gi is None:
        goal = p.get("goal")
        _check(isinstance(goal, dict) and all(k in goal for k in GOAL_FIELDS), "goal")
    else:
        _check(isinstance(gi, int) and 0 <= gi < len(goals), "gi (goal index)")
        goal = goals[gi]
    res, item = p.get("res"), p.get("it")
    _check(p.get("pg") in PAGE_KINDS, "pg (page)")
    _check(isinstance(res, list) and all(isinstance(i, int) and 0 <= i < n_products for i in res), "res")
    _check(item is None or (isinstance(item, int) and 0 <= item < n_products), "it (item)")
    _check(p.get("pg") not in ("item", "sub", "done") or item is not None, "it (item)")
    _check(isinstance(p.get("op"), dict), "op (options)")
    _check(p.get("sub") is None or p.get("sub") in SUB_PAGES, "sub")
    _check(isinstance(p.get("pn"), int) and isinstance(p.get("st"), int) and p["st"] >= 0, "pn/st")
    _check(p["pn"] >= (1 if p["pg"] == "results" else 0), "pn (results page number)")
    return Session(
        goal_idx=gi, goal=goal, page=p["pg"], keywords=p.get("kw"), results=tuple(res),
        page_num=p["pn"], item=item, options=dict(p["op"]), sub=p.get("sub"),
        visited=list(p.get("vis") or []), steps=p["st"], reward=p.get("rw"),
    )
