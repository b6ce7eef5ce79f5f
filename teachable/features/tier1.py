"""Tier-1 structural features of a labeled snapshot, computed without any rollout.

Everything here is read from what the student saw at the snapshot (the instruction text, the
observation, the valid clicks, the history of its actions) and from its own action
distribution there (U). Nothing reads the goal's hidden target: not the asin, not the goal's
`attributes` / `goal_options` / `price_upper` fields, not the branch outcomes of labeling. The
instruction's price cap is parsed from the instruction text, which the student sees too.

Features (stable names, all floats):

- `step_index`: actions taken before the snapshot; `steps_left`: `max_steps - step_index`, the
  budget left; `steps_to_end`: actions the failed episode still took after this one.
- `page_start`, `page_results`, `page_item`, `page_subpage`: one-hot page type;
  `has_search_bar`.
- `n_valid_actions`; `u_entropy`, `u_entropy_norm`, `u_margin`, `u_topk_spread`, `u_top_p`:
  the student's distribution at the snapshot.
- `instr_chars`, `instr_words`; `instr_clauses` (comma / "and" / "with" separated parts, a
  proxy for how many attributes and options the instruction asks for); `instr_has_price_cap`,
  `instr_price_cap` (0 when none).
- `results_total`, `results_page` (0 off a results page).
- `obs_chars`, `obs_segments`; `obs_price_mentions`, `obs_prices_under_cap` (share of the
  prices shown that are under the instruction's cap; 0 when no price is shown).
- `hist_len`, `hist_searches`, `hist_clicks`, `hist_repeated` (actions equal to an earlier
  one), `hist_back` (back-to-search / prev clicks), `hist_malformed` (not `search[...]` or
  `click[...]`, which the env ignores).
- `student_action_invalid` (not a valid click on this page and not a search where a search is
  allowed), `student_action_repeats` (taken before in the episode), `student_action_is_buy`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from teachable.records import LabeledSnapshot, Snapshot

TIER1_NAMES: tuple[str, ...] = (
    "step_index", "steps_left", "steps_to_end",
    "page_start", "page_results", "page_item", "page_subpage", "has_search_bar",
    "n_valid_actions", "u_entropy", "u_entropy_norm", "u_margin", "u_topk_spread", "u_top_p",
    "instr_chars", "instr_words", "instr_clauses", "instr_has_price_cap", "instr_price_cap",
    "results_total", "results_page",
    "obs_chars", "obs_segments", "obs_price_mentions", "obs_prices_under_cap",
    "hist_len", "hist_searches", "hist_clicks", "hist_repeated", "hist_back", "hist_malformed",
    "student_action_invalid", "student_action_repeats", "student_action_is_buy",
)
SEP = " [SEP] "
_PRICE_CAP = re.compile(r"price lower than ([0-9]+(?:\.[0-9]+)?) dollars", re.IGNORECASE)
_RESULTS = re.compile(r"Page (\d+) \(Total results: (\d+)\)")
_PRICE = re.compile(r"\$([0-9]+(?:\.[0-9]+)?)")
_ACTION = re.compile(r"^(search|click)\[.+\]")
_CLAUSE = re.compile(r",|\band\b|\bwith\b", re.IGNORECASE)
_BACK = ("click[back to search]", "click[< prev]")


def page_type(observation: str) -> str:
    """start, results, item or subpage, from WebShop's text observation."""
    if observation.startswith("WebShop [SEP]"):
        return "start"
    if _RESULTS.search(observation):
        return "results"
    if observation.rstrip().endswith("Buy Now"):
        return "item"
    return "subpage"


def price_cap(instruction: str) -> float | None:
    """The price cap the instruction text states, or None."""
    m = _PRICE_CAP.search(instruction)
    return float(m.group(1)) if m else None


def _instruction(snapshot: Snapshot) -> str:
    return str(snapshot.goal.get("instruction_text", ""))


def tier1_features(snapshot: LabeledSnapshot, max_steps: int) -> dict[str, float]:
    """The tier-1 features of one snapshot (names and order: `TIER1_NAMES`)."""
    instruction, obs = _instruction(snapshot), snapshot.observation
    page = page_type(obs)
    cap = price_cap(instruction)
    results = _RESULTS.search(obs)
    prices = [float(p) for p in _PRICE.findall(obs)]
    u = snapshot.uncertainty or {}
    history = list(snapshot.history)
    action = snapshot.student_action
    is_search = action.startswith("search[")
    valid = action in snapshot.valid_actions or (is_search and snapshot.has_search_bar)
    values = {
        "step_index": snapshot.step_index,
        "steps_left": max_steps - snapshot.step_index,
        "steps_to_end": snapshot.steps_to_end,
        "page_start": page == "start", "page_results": page == "results",
        "page_item": page == "item", "page_subpage": page == "subpage",
        "has_search_bar": snapshot.has_search_bar,
        "n_valid_actions": len(snapshot.valid_actions),
        "u_entropy": u.get("entropy", 0.0), "u_entropy_norm": u.get("entropy_norm", 0.0),
        "u_margin": u.get("margin", 1.0), "u_topk_spread": u.get("topk_spread", 0.0),
        "u_top_p": u.get("top_p", 1.0),
        "instr_chars": len(instruction), "instr_words": len(instruction.split()),
        "instr_clauses": sum(bool(part.strip()) for part in _CLAUSE.split(instruction)),
        "instr_has_price_cap": cap is not None, "instr_price_cap": cap or 0.0,
        "results_total": int(results.group(2)) if results else 0,
        "results_page": int(results.group(1)) if results else 0,
        "obs_chars": len(obs), "obs_segments": obs.count(SEP) + 1 if obs else 0,
        "obs_price_mentions": len(prices),
        "obs_prices_under_cap": (sum(p <= cap for p in prices) / len(prices)) if prices and cap else 0.0,
        "hist_len": len(history),
        "hist_searches": sum(a.startswith("search[") for a in history),
        "hist_clicks": sum(a.startswith("click[") for a in history),
        "hist_repeated": len(history) - len(set(history)),
        "hist_back": sum(a in _BACK for a in history),
        "hist_malformed": sum(not _ACTION.match(a) for a in history),
        "student_action_invalid": not valid,
        "student_action_repeats": action in history,
        "student_action_is_buy": action == "click[buy now]",
    }
    return {name: float(values[name]) for name in TIER1_NAMES}


def tier1_matrix(snapshots: Sequence[LabeledSnapshot], max_steps: int) -> list[list[float]]:
    """Rows of tier-1 features, one per snapshot, columns in `TIER1_NAMES` order."""
    return [[row[n] for n in TIER1_NAMES] for row in (tier1_features(s, max_steps) for s in snapshots)]
