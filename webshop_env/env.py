"""`WebShopEnv`: WebShop's text environment as a Gymnasium env, with state save/restore.

A `Shop` holds what never changes during episodes (catalogue, goals, search index, noun
tagger); many envs share one. Each env holds one session. Observations, clickables, rewards
and done flags follow the original WebShop (see `webshop_env.render` for the text layout).

Actions are strings parsed with WebShop's regex `(.+)\\[(.+)\\]` (greedy, prefix match):
`search[keywords]` works on every page but the done page; `click[label]` works when the
lower-cased label is one of the page's clickables (`click[search]` does nothing). An action
longer than the action space's limit (`MAX_ACTION_CHARS`) is not parsed. Anything else is a
no-op: the page does not change, the reward is 0 and `info["invalid_action"]` is True.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from webshop_env.catalog import Catalog, load_catalog, load_default_catalog
from webshop_env.goals import build_goals, split_goal_indices
from webshop_env.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    RESULTS_PER_PAGE,
    SUB_PAGES,
    Page,
    buttons_for,
    clickables,
    option_group_of,
)
from webshop_env.paths import index_cache_dir
from webshop_env.render import render_html, render_text, render_text_rich
from webshop_env.reward import NounTagger, get_reward
from webshop_env.search import SearchEngine, open_search_engine
from webshop_env.state import MAX_RESULTS, Session, StateError, decode, encode, goal_problem

logger = logging.getLogger(__name__)

# WebShop's action regex; `parse_action` computes the same match without backtracking.
ACTION_RE = re.compile(r"(.+)\[(.+)\]")
OBSERVATION_MODES = ("text", "text_rich", "html")
RENDERERS = {"text": render_text, "text_rich": render_text_rich, "html": render_html}
SEARCH_RETURN_N = MAX_RESULTS
MAX_TEXT = 1_000_000
# Longer actions are no-ops (the action space's limit); WebShop's agents write far shorter ones.
MAX_ACTION_CHARS = 1000


def parse_action(action: str) -> tuple[str, str | None]:
    """Split an action into (name, lower-cased argument) exactly as `ACTION_RE.match` does.

    The regex backtracks quadratically on inputs such as `"x[" * 40000`, so the match is
    computed directly (linear time): `.` stops at the first newline, the greedy name ends at
    the last `[` that leaves a non-empty argument before the line's last `]`, and the greedy
    argument runs up to that `]`. A test checks it against the regex.

    Returns:
        (name, argument), or (action, None) when the action does not match.
    """
    newline = action.find("\n")
    line = action if newline < 0 else action[:newline]
    close = line.rfind("]")
    # The name and the argument are both non-empty: "[" at 1 .. close - 2.
    open_ = line.rfind("[", 1, close - 1) if close >= 3 else -1
    if open_ < 0:
        return action, None
    return line[:open_], line[open_ + 1:close].lower()


@dataclass
class Shop:
    """The shared, read-only world: catalogue, goals, search engine and noun tagger."""

    catalog: Catalog
    goals: list[dict[str, Any]]
    search_engine: SearchEngine
    tagger: NounTagger

    @classmethod
    def load(
        cls,
        data_dir: str | Path | None = None,
        *,
        human_goals: bool = True,
        num_products: int | None = None,
        price_seed: int = 0,
        goal_seed: int = 0,
        search_backend: str = "bm25s",
        index_cache: bool = True,
        tagger_backend: str = "auto",
    ) -> Shop:
        """Load a catalogue (the generated default when `data_dir` is empty) and index it.

        Args:
            data_dir: folder with WebShop's files; None or "" for the embedded default.
            human_goals: human instructions (default) or synthetic goals.
            num_products: use only the first N product rows.
            price_seed: seed for prices of products with a price range.
            goal_seed: seed for the goals' price caps.
            search_backend: "bm25s" (default) or "pyserini".
            index_cache: keep the search index on disk, keyed by the catalogue's content hash.
            tagger_backend: noun tagger for the reward: "auto", "spacy" or "heuristic".
        """
        if data_dir:
            catalog = load_catalog(data_dir, price_seed=price_seed, num_products=num_products)
        else:
            catalog = load_default_catalog(price_seed=price_seed)
        goals = build_goals(catalog, human=human_goals, goal_seed=goal_seed)
        engine = open_search_engine(
            catalog.products, catalog.content_hash, backend=search_backend,
            cache_dir=index_cache_dir() if index_cache else None,
        )
        return cls(catalog=catalog, goals=goals, search_engine=engine, tagger=NounTagger(tagger_backend))

    def search(self, query: str) -> tuple[int, ...]:
        """Product indices of the top hits for `query` (at most 50)."""
        return tuple(self.search_engine.search(query, k=SEARCH_RETURN_N))

    def split_goal_indices(self, split: str) -> range:
        """Goal indices of split `test`, `dev` or `train`."""
        return split_goal_indices(len(self.goals), split)


class UnicodeText(spaces.Text):
    """A text space over all of Unicode (product text is not ASCII-only)."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


class WebShopEnv(gym.Env):
    """WebShop's text shopping environment.

    Args:
        shop: a loaded `Shop` to share between envs; built from the other arguments if None.
        data_dir: folder with WebShop's files; empty for the generated default catalogue.
        observation_mode: "text" (WebShop's), "text_rich" or "html".
        max_steps: the episode is truncated after this many actions.
        **shop_kwargs: passed to `Shop.load` when `shop` is None.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        shop: Shop | None = None,
        data_dir: str | Path | None = None,
        observation_mode: str = "text",
        max_steps: int = 15,
        **shop_kwargs: Any,
    ) -> None:
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode {observation_mode!r} is unknown; use one of {', '.join(OBSERVATION_MODES)}.")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}.")
        self.shop = shop if shop is not None else Shop.load(data_dir, **shop_kwargs)
        self.observation_mode = observation_mode
        self.max_steps = max_steps
        self.observation_space = UnicodeText(max_length=MAX_TEXT)
        self.action_space = UnicodeText(max_length=MAX_ACTION_CHARS)
        self._render = RENDERERS[observation_mode]
        self._session: Session | None = None
        self._clickables: list[str] = []
        self._over = False

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: seeds `self.np_random`, which picks the goal when none is given.
            options: {"goal_idx": i}, {"goal": <WebShop goal dict>}, or {"split": name} to
                draw a goal from a split; with none, a goal is drawn over all goals by weight.

        Raises:
            ValueError: goal index out of range, an incomplete goal dict, an unknown split.
        """
        super().reset(seed=seed)
        goal_idx, goal = self._choose_goal(options or {})
        self._session = Session(goal_idx=goal_idx, goal=goal)
        self._over = False
        return self._observe(invalid=False)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Take one action; see the module docstring for the syntax."""
        s = self._require_session()
        if self._over:
            raise RuntimeError("the episode is over (bought or truncated); call reset() before step().")
        if not isinstance(action, str):
            raise TypeError(f"action must be a string such as 'search[red shoes]' or 'click[buy now]', got {type(action).__name__}.")
        s.steps += 1
        too_long = len(action) > self.action_space.max_length
        name, arg = (action, None) if too_long else parse_action(action)
        reward, terminated, invalid = 0.0, False, False
        if name == "search" and arg:
            self._search(s, arg)
        elif name == "click" and arg in self._clickables and arg != "search":
            terminated = self._click(s, arg)
            reward = s.reward if terminated else 0.0
        else:
            invalid = True
        truncated = not terminated and s.steps >= self.max_steps
        self._over = terminated or truncated
        obs, info = self._observe(invalid=invalid)
        if terminated:
            info["reward_info"] = s.reward_info
        return obs, float(reward), terminated, truncated, info

    def get_state(self) -> bytes:
        """The episode state as a small JSON blob (no pickle); see `webshop_env.state`."""
        return encode(self._require_session(), self.shop.catalog.content_hash)

    def set_state(self, state: bytes) -> tuple[str, dict[str, Any]]:
        """Restore a state from `get_state` (of this or another env on the same catalogue).

        The state is checked in full and its page rendered before anything changes: a refused
        state leaves the env exactly as it was.

        Raises:
            StateError: the state is corrupted, truncated, too large, of another version or
                catalogue, or has a field out of its type or range (see `webshop_env.state.decode`).
        """
        catalog = self.shop.catalog
        session = decode(state, catalog.content_hash, len(catalog), self.shop.goals, catalog=catalog)
        try:
            obs, info, clickables_ = self._observation(session, invalid=False)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise StateError(f"state does not render on this catalogue ({type(e).__name__}: {e}); the state is corrupted.") from e
        self._session, self._clickables = session, clickables_
        self._over = session.page == "done" or session.steps >= self.max_steps
        return obs, info

    # ----------------------------------------------------------------- helpers
    @property
    def goal(self) -> dict[str, Any]:
        """The current episode's goal."""
        return self._require_session().goal

    @property
    def instruction_text(self) -> str:
        return self.goal["instruction_text"]

    def split_goal_indices(self, split: str) -> range:
        """Goal indices of split `test`, `dev` or `train` of this env's goals."""
        return self.shop.split_goal_indices(split)

    def page(self) -> Page:
        """The current page as data."""
        return self._page(self._require_session())

    def _require_session(self) -> Session:
        if self._session is None:
            raise RuntimeError("no episode: call reset() (or set_state()) first.")
        return self._session

    def _choose_goal(self, options: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
        goals = self.shop.goals
        if "goal" in options:
            goal = options["goal"]
            problem = goal_problem(goal)
            if problem is not None:
                raise ValueError(f"options['goal'] is not a usable WebShop goal: {problem}.")
            return None, goal
        if "goal_idx" in options:
            idx = options["goal_idx"]
            if not isinstance(idx, int | np.integer) or not 0 <= idx < len(goals):
                raise ValueError(f"goal_idx {idx!r} is out of range; this env has {len(goals)} goals (0..{len(goals) - 1}).")
            return int(idx), goals[int(idx)]
        pool = list(self.shop.split_goal_indices(options["split"])) if "split" in options else range(len(goals))
        weights = np.array([goals[i]["weight"] for i in pool], dtype=float)
        idx = int(pool[self.np_random.choice(len(pool), p=weights / weights.sum())])
        return idx, goals[idx]

    def _search(self, s: Session, query: str) -> None:
        s.keywords = query.split(" ")
        s.results = self.shop.search(" ".join(s.keywords))
        s.page, s.page_num, s.item, s.sub, s.options = "results", 1, None, None, {}

    def _click(self, s: Session, label: str) -> bool:
        """Apply a click on a clickable `label`; return True when it ends the episode."""
        if label == BUY_NOW.lower():
            product = self.shop.catalog.products[s.item]
            s.reward, s.reward_info = get_reward(
                product, s.goal, price=self.shop.catalog.prices[s.item], options=s.options,
                verbose=True, tagger=self.shop.tagger,
            )
            s.page = "done"
            return True
        if label == BACK_TO_SEARCH.lower():
            s.page, s.keywords, s.results, s.page_num = "start", None, (), 0
            s.item, s.sub, s.options, s.visited = None, None, {}, []
        elif label == NEXT_PAGE.lower():
            s.page_num += 1
        elif label == PREV_PAGE.lower():
            self._prev(s)
        elif label in (p.lower() for p in SUB_PAGES):
            s.page, s.sub = "sub", label.capitalize()
        elif s.page == "results":
            s.item = self.shop.catalog.asin_to_index[label.upper()]
            s.page = "item"
            if label.upper() not in s.visited:
                s.visited.append(label.upper())
        else:
            s.options[option_group_of(self.shop.catalog.products[s.item], label)] = label
        return False

    @staticmethod
    def _prev(s: Session) -> None:
        if s.page == "results":
            s.page_num -= 1
        elif s.page == "sub":
            s.page, s.sub = "item", None
        else:  # item page: back to the same results page, searched again
            s.page, s.item, s.options = "results", None, {}

    def _page(self, s: Session) -> Page:
        instruction = s.goal["instruction_text"]
        products = self.shop.catalog.products
        if s.page == "results":
            start = (s.page_num - 1) * RESULTS_PER_PAGE
            shown = tuple(products[i] for i in s.results[start:start + RESULTS_PER_PAGE])
            return Page("results", instruction, buttons_for("results", s.page_num), shown,
                        s.page_num, len(s.results), visited=frozenset(s.visited))
        if s.page in ("item", "sub"):
            return Page(s.page, instruction, buttons_for(s.page), product=products[s.item],
                        sub=s.sub, options=dict(s.options))
        if s.page == "done":
            return Page("done", instruction, options=dict(s.options), reward=s.reward,
                        asin=products[s.item]["asin"].upper(), product=products[s.item])
        return Page("start", instruction, buttons_for("start"))

    def _observe(self, invalid: bool) -> tuple[str, dict[str, Any]]:
        obs, info, self._clickables = self._observation(self._require_session(), invalid)
        return obs, info

    def _observation(self, s: Session, invalid: bool) -> tuple[str, dict[str, Any], list[str]]:
        """The observation, info and clickables of session `s`; changes nothing."""
        page = self._page(s)
        clickables_ = clickables(page)
        info = {
            "available_actions": {"has_search_bar": page.kind == "start", "clickables": list(clickables_)},
            "valid_actions": [f"click[{c}]" for c in clickables_ if c != "search"],
            "search_allowed": page.kind != "done",
            "invalid_action": invalid,
            "goal_idx": s.goal_idx,
            "page": page.kind,
            "steps": s.steps,
        }
        return self._render(page), info, clickables_
