"""The shop in a browser: a Flask app factory over `WebShopEnv`.

A person picks a goal (by index, or drawn from a split), then searches, pages through results,
opens items, chooses options, reads sub-pages and buys; the done page shows the reward and its
components (`get_reward(..., verbose=True)`). Pages are rendered from the page model
(`webshop_env.render.render_html`), the same pages the text observation is made from.

Each browser session holds one env on the server, keyed by a random session id in a cookie
(`webshop_env.web.sessions.SessionStore`: expiry after `session_ttl_s` idle seconds, at most
`max_sessions`). Requests are validated (goal index range, split names, action syntax, the page's
clickables); nothing from a request reaches the file system; every error renders a page with its
status code (a 405 with its `Allow` header), never a traceback. Debug mode is off. Only a POST
creates, replaces or drops a session; a GET reads one. Every response carries a
Content-Security-Policy (this origin only: no scripts, no frames, forms posting back here; product
images from https), `X-Frame-Options: DENY` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, InternalServerError

from webshop_env.env import Shop, WebShopEnv
from webshop_env.render import render_html
from webshop_env.state import StateError
from webshop_env.web.sessions import SessionStore

log = logging.getLogger(__name__)

COOKIE = "webshop_session"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SPLITS = ("test", "dev", "train")
MAX_QUERY_CHARS = 200
MAX_ACTION_CHARS = 300
WEB_ACTION_RE = re.compile(r"(search|click)\[(.+)\]", re.DOTALL)
# no script runs on these pages; style attributes size the explorer's bars
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; "
                           "img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


class ActionError(ValueError):
    """An action a person sent is malformed or not possible on the current page."""


def web_action(action: str, query: str, valid_actions: list[str], search_allowed: bool) -> str:
    """The env action for a submitted form: the search button with its query, or an action string.

    Stricter than the env (where a malformed action is a no-op): a person gets told what was wrong.

    Args:
        action: `search` (the search button, with `query`), `search[...]` or `click[...]`.
        query: the search box's text.
        valid_actions: the page's `click[...]` actions (`info["valid_actions"]`).
        search_allowed: whether the page accepts a search.

    Raises:
        ActionError: malformed syntax, an empty or over-long query, or a click not on this page.
    """
    action = action.strip()
    if len(action) > MAX_ACTION_CHARS:
        raise ActionError(f"the action is longer than {MAX_ACTION_CHARS} characters.")
    if action == "search":
        name, arg = "search", query
    else:
        m = WEB_ACTION_RE.fullmatch(action)
        if m is None:
            raise ActionError(f"{action[:60]!r} is not an action: write search[keywords] or click[label].")
        name, arg = m.group(1), m.group(2)
    if name == "search":
        keywords = " ".join(arg.split())
        if not keywords:
            raise ActionError("type some keywords to search for.")
        if len(keywords) > MAX_QUERY_CHARS or "[" in keywords or "]" in keywords:
            raise ActionError(f"search keywords must be at most {MAX_QUERY_CHARS} characters, without [ or ].")
        if not search_allowed:
            raise ActionError("this page has no search (the episode is over).")
        return f"search[{keywords}]"
    click = f"click[{arg.strip().lower()}]"
    if click not in valid_actions:
        raise ActionError(f"{arg.strip()[:60]!r} is not clickable on this page.")
    return click


@dataclass
class Visit:
    """One browser session's shopping: its env, the last observation and the outcome."""

    env: WebShopEnv
    obs: str
    info: dict[str, Any]
    origin: str
    back_url: str | None = None
    history: list[str] = field(default_factory=list)
    reward: float | None = None
    reward_info: dict[str, Any] | None = None
    over: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ShopWeb:
    """The shop's routes and browser sessions, mountable in any Flask app (see `create_app`).

    Args:
        shop: the loaded catalogue, goals and search index (shared by all sessions' envs).
        max_steps: the episode step limit of every env.
        max_sessions, session_ttl_s: the session store's cap and idle expiry.
        seed: seeds the draws of random goals (None: fresh entropy).
    """

    def __init__(self, shop: Shop, *, max_steps: int = 15, max_sessions: int = 64,
                 session_ttl_s: float = 1800.0, seed: int | None = None) -> None:
        self.shop = shop
        self.max_steps = max_steps
        self.sessions: SessionStore[Visit] = SessionStore(max_sessions, session_ttl_s)
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()

    # ------------------------------------------------------------------ sessions
    def start_goal(self, goal_idx: int | None = None, split: str | None = None) -> str:
        """A new session on goal `goal_idx`, or on a goal drawn from `split`; returns its id.

        Raises:
            ValueError: the goal index is out of range or the split is unknown or empty.
        """
        env = WebShopEnv(shop=self.shop, max_steps=self.max_steps)
        if goal_idx is not None:
            obs, info = env.reset(options={"goal_idx": goal_idx})
        else:
            if split not in SPLITS:
                raise ValueError(f"split {split!r} is unknown; use one of {', '.join(SPLITS)}.")
            if len(self.shop.split_goal_indices(split)) == 0:
                raise ValueError(f"this catalogue has no {split} goals; pick another split or a goal index.")
            with self._rng_lock:
                seed = int(self._rng.integers(2**31))
            obs, info = env.reset(seed=seed, options={"split": split})
        origin = f"goal {info['goal_idx']}" + (f" (drawn from {split})" if goal_idx is None else "")
        return self.sessions.create(Visit(env=env, obs=obs, info=info, origin=origin))

    def start_from_state(self, state: bytes | str, origin: str, history: list[str] | None = None,
                         back_url: str | None = None) -> str:
        """A new session whose env is restored from `state` (not re-played); returns its id.

        Args:
            state: a `WebShopEnv.get_state()` blob (bytes or its UTF-8 text).
            origin: what the shop page says is being shopped (e.g. the snapshot's id).
            history: the actions that led to the state, shown as the session's history.
            back_url: a link shown on the shop page back to where the replay came from.

        Raises:
            StateError: the state does not restore on this shop's catalogue.
        """
        env = WebShopEnv(shop=self.shop, max_steps=self.max_steps)
        obs, info = env.set_state(state.encode() if isinstance(state, str) else state)
        visit = Visit(env=env, obs=obs, info=info, origin=origin, back_url=back_url, history=list(history or []),
                      over=info["page"] == "done" or info["steps"] >= self.max_steps)
        return self.sessions.create(visit)

    def current(self) -> tuple[str | None, Visit | None]:
        sid = request.cookies.get(COOKIE)
        return sid, self.sessions.get(sid)

    @staticmethod
    def with_session(response: Response, sid: str) -> Response:
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Lax", path="/")
        return response

    # ------------------------------------------------------------------ routes
    def blueprint(self) -> Blueprint:
        bp = Blueprint("shop", __name__, template_folder="templates", static_folder="static")
        bp.add_url_rule("/", "index", self.index, methods=["GET"])
        bp.add_url_rule("/start", "start", self.start, methods=["POST"])
        bp.add_url_rule("/play", "play", self.play, methods=["GET", "POST"])
        return bp

    def index(self) -> str:
        _, visit = self.current()
        splits = {name: self.shop.split_goal_indices(name) for name in SPLITS}
        return render_template("shop/index.html", n_goals=len(self.shop.goals), splits=splits, visit=visit,
                               expired=request.args.get("expired") == "1")

    def start(self) -> Response:
        form = request.form
        try:
            if form.get("goal_idx", "").strip():
                sid = self.start_goal(goal_idx=self._goal_index(form["goal_idx"]))
            else:
                sid = self.start_goal(split=form.get("split", ""))
        except ValueError as e:
            raise BadRequest(str(e)) from None
        return self.replace_session(sid)

    def replace_session(self, sid: str) -> Response:
        """Drop this browser's previous session (one browser holds one) and send it to `sid`'s shop page."""
        old = request.cookies.get(COOKIE)
        if old and old != sid:
            self.sessions.drop(old)
        return self.with_session(redirect(url_for("shop.play"), code=303), sid)

    def _goal_index(self, text: str) -> int:
        text = text.strip()
        n = len(self.shop.goals)
        if not re.fullmatch(r"\d{1,9}", text) or int(text) >= n:
            raise ValueError(f"goal index {text[:20]!r} is not a whole number from 0 to {n - 1}.")
        return int(text)

    def play(self) -> Response | str:
        _, visit = self.current()
        if visit is None:
            return redirect(url_for("shop.index", expired="1"), code=303)
        if request.method == "POST":
            self._step(visit, request.form.get("action", ""), request.form.get("query", ""))
            return redirect(url_for("shop.play"), code=303)
        with visit.lock:
            page_html = Markup(render_html(visit.env.page()))
            return render_template("shop/play.html", visit=visit, page_html=page_html, max_steps=self.max_steps,
                                   reward_repr=repr(visit.reward) if visit.reward is not None else "")

    @staticmethod
    def _step(visit: Visit, action: str, query: str) -> None:
        with visit.lock:
            if visit.over:
                raise Conflict("this episode is over; shop another goal.")
            try:
                env_action = web_action(action, query, visit.info["valid_actions"], visit.info["search_allowed"])
            except ActionError as e:
                raise BadRequest(str(e)) from None
            obs, reward, terminated, truncated, info = visit.env.step(env_action)
            visit.obs, visit.info = obs, info
            visit.history.append(env_action)
            if terminated:
                visit.reward, visit.reward_info = reward, info["reward_info"]
            visit.over = terminated or truncated


def install_error_pages(app: Flask) -> None:
    """Render every error as a page with its status code; never show a traceback."""

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response | tuple[str, int, list[tuple[str, str]]]:
        if e.code is None or e.code < 400:
            return e
        headers = [(k, v) for k, v in e.get_headers() if k.lower() != "content-type"]  # e.g. a 405's Allow
        return render_template("shop/error.html", code=e.code, name=e.name, message=e.description), e.code, headers

    @app.errorhandler(StateError)
    def state_error(e: StateError) -> tuple[str, int]:
        return render_template("shop/error.html", code=409, name="State does not restore", message=str(e)), 409

    @app.errorhandler(Exception)
    def server_error(e: Exception) -> tuple[str, int]:
        log.exception("error while serving %s", request.path)
        err = InternalServerError()
        return render_template("shop/error.html", code=500, name=err.name,
                               message="Something went wrong on the server; the details are in its log."), 500


def install_security_headers(app: Flask) -> None:
    """Add `SECURITY_HEADERS` to every response (error pages included)."""

    @app.after_request
    def secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def create_app(shop: Shop | None = None, data_dir: str | Path | None = None, *, max_steps: int = 15,
               max_sessions: int = 64, session_ttl_s: float = 1800.0, seed: int | None = None,
               **shop_kwargs: Any) -> Flask:
    """The shop as a Flask app (debug off). Serve it on 127.0.0.1 (`python -m webshop_env serve`).

    Args:
        shop: a loaded `Shop`; built by `Shop.load(data_dir, **shop_kwargs)` when None.
        data_dir: folder with WebShop's files; empty for the generated default catalogue.
        max_steps: the episode step limit.
        max_sessions: most browser sessions held at once (least recently used evicted).
        session_ttl_s: a session expires after this many idle seconds.
        seed: seeds the draws of random goals.
    """
    shop = shop if shop is not None else Shop.load(data_dir or None, **shop_kwargs)
    web = ShopWeb(shop, max_steps=max_steps, max_sessions=max_sessions, session_ttl_s=session_ttl_s, seed=seed)
    app = Flask(__name__)
    app.config.update(DEBUG=False, MAX_CONTENT_LENGTH=64 * 1024)
    app.extensions["webshop"] = web
    app.register_blueprint(web.blueprint())
    install_error_pages(app)
    install_security_headers(app)
    return app
