"""Server-side browser sessions: one value (an env) per random session id, with expiry.

A session id is a random URL-safe token (`secrets.token_urlsafe`), kept in a cookie; nothing
else about the session travels to the browser. A session expires `ttl_s` seconds after its last
use; when `max_sessions` are live, creating one evicts the least recently used.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class SessionStore(Generic[T]):
    """A thread-safe LRU map from session ids to values, with a time to live and a cap.

    Args:
        max_sessions: most live sessions; the least recently used is evicted beyond it.
        ttl_s: seconds after its last use at which a session expires.
        clock: a monotonic clock in seconds (a parameter so that expiry can be tested).

    Raises:
        ValueError: a cap below 1 or a non-positive time to live.
    """

    def __init__(self, max_sessions: int = 64, ttl_s: float = 1800.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}.")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s (session time to live, seconds) must be > 0, got {ttl_s}.")
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, value: T) -> str:
        """Store `value` under a new random session id and return the id."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            while len(self._items) >= self.max_sessions:
                self._items.popitem(last=False)
            self._items[sid] = (self._clock(), value)
        return sid

    def get(self, sid: str | None) -> T | None:
        """The value of a live session (its use time refreshed), or None for an unknown,
        malformed or expired id."""
        if not sid or not SESSION_ID_RE.match(sid):
            return None
        with self._lock:
            self._expire()
            item = self._items.get(sid)
            if item is None:
                return None
            self._items[sid] = (self._clock(), item[1])
            self._items.move_to_end(sid)
            return item[1]

    def drop(self, sid: str) -> None:
        with self._lock:
            self._items.pop(sid, None)

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._items)

    def _expire(self) -> None:
        deadline = self._clock() - self.ttl_s
        while self._items:
            sid, (used, _) = next(iter(self._items.items()))
            if used > deadline:
                return
            del self._items[sid]
