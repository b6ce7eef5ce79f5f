"""A teacher backed by any OpenAI-compatible chat-completions endpoint.

`OpenAITeacher` shows a model what the student saw (task, recent actions, observation, the
valid actions) and what the student did, and asks for a JSON object with a suggested action, a
hint, a contrast explanation and an error type. Replies are parsed and checked, never executed:
an unusable reply is sent back with the problem named, a few times, before giving up.

Requests go through the official `openai` client with its own retries turned off, so that the
retry policy is ours and testable: 429, 5xx, timeouts, connection errors and 200 replies whose
body is no chat completion (malformed JSON, an HTML page, missing fields) are retried with
exponential backoff and jitter, or after the server's `Retry-After` (plus jitter) when it sends
one. `advise` keeps up to `max_concurrency` requests in flight and returns the advice in the
order asked, so its results are those of asking one at a time.
With a `cache_dir`, each valid reply is stored as one JSON file named by a SHA-256 of the
request, so a re-run sends nothing and needs no API key. With `on_call`, every decision asked is
reported as a `TeacherCall` (what was sent and received, tokens, time, retries, cache hit; never
the key), which the label phase records as an MLflow trace span.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from teachable.policy.teacher.base import ERROR_TYPES, TeacherAdvice
from teachable.prompting import DEFAULT_HISTORY, Context, available_actions, prompt_body

if TYPE_CHECKING:
    from openai import OpenAI

logger = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1
RESPONSE_FORMAT: dict[str, str] = {"type": "json_object"}
ADVICE_FIELDS: tuple[str, ...] = ("action", "hint", "contrast", "error_type")
_FENCED_RE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL | re.IGNORECASE)
_ACTION_RE = re.compile(r"(click|search)\s*\[(.*)\]", re.DOTALL | re.IGNORECASE)

ERROR_TYPE_HELP: dict[str, str] = {
    "affordance_miss": "the student ignored or misread what the page offers (clicked something "
                       "unavailable or useless here, missed the button that moves the task on)",
    "attribute_confusion": "the student picked the wrong product, option, size, colour or other "
                           "attribute, or searched for the wrong attributes",
    "planning_error": "the step is possible but in the wrong order (buying before choosing the "
                      "options, going back too early, stopping before the task is done)",
    "exploration_failure": "the student gave up searching or browsing too soon (did not look at "
                           "the next page, another result or a better query)",
}

TEACHER_SYSTEM_PROMPT = (
    "You are a teacher for a shopping agent that acts in a text web shop. You see the task, the "
    "agent's previous actions, the current page, the actions available on it and the action the "
    "student chose. Decide the best action on this page and explain the student's mistake.\n"
    "Actions are click[...] with one of the available buttons or, only when a search is listed, "
    "search[...] with the words to search for.\n"
    "Reply with one JSON object and nothing else, with these string fields:\n"
    '  "action": the best action, copied exactly from the available actions (or search[...]);\n'
    '  "hint": one short sentence that points the student the right way without naming the action;\n'
    '  "contrast": why the student\'s action is wrong and what is right instead;\n'
    '  "error_type": one of the following.\n'
    + "\n".join(f"    {name}: {ERROR_TYPE_HELP.get(name, name.replace('_', ' '))}." for name in ERROR_TYPES)
)


class TeacherError(RuntimeError):
    """The teacher could not produce advice (endpoint unreachable, rejected, or unusable replies)."""


class _BadBody(Exception):
    """A 200 reply whose body is no chat completion; worth a retry (a proxy or a server restarting)."""


def retry_after_s(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The delay a server asks for: `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.

    Written here because the `openai` client's parser is private; None when there is no usable header.
    """
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value) * scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError, IndexError):
                return None
            delay = when - (time.time() if now is None else now)
        return max(0.0, delay) if delay == delay and delay != float("inf") else None
    return None


@dataclass
class TeacherStats:
    """Counts over the life of an `OpenAITeacher`.

    Attributes:
        requests: HTTP requests sent (each retry and each re-ask counts).
        cache_hits: decisions answered from the on-disk cache.
        cache_misses: decisions that needed the endpoint.
        retries: transport retries (rate limit, server error, timeout, connection error).
        invalid_replies: replies that could not be used and were re-asked or gave up on.
    """

    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    retries: int = 0
    invalid_replies: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class TeacherCall:
    """One decision asked of the teacher, as `OpenAITeacher(on_call=...)` reports it.

    It never holds the API key: `messages` and `reply` are what was sent and received, `error`
    is the `TeacherError` message (with the key redacted).

    Attributes:
        model: the model name sent to the endpoint.
        messages: the chat messages of the decision (before any re-ask).
        start_ns, end_ns: wall-clock bounds of the decision (`time.time_ns()`).
        cache_hit: answered from the disk cache (then nothing was sent).
        requests: HTTP requests sent for it (retries and re-asks included).
        retries: transport retries among them.
        invalid_replies: unusable replies sent back for correction.
        prompt_tokens, completion_tokens: summed over the replies when the endpoint reports usage.
        reply: the last reply's text (None on a cache hit).
        advice: the advice it ended with (None on an error).
        error: the `TeacherError` it ended with.
    """

    model: str
    messages: list[dict[str, str]]
    start_ns: int
    end_ns: int = 0
    cache_hit: bool = False
    requests: int = 0
    retries: int = 0
    invalid_replies: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reply: str | None = None
    advice: TeacherAdvice | None = None
    error: str | None = None

    @property
    def latency_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def add_usage(self, usage: Any) -> None:
        """Add a completion's `usage` (prompt and completion tokens) when the endpoint sent one."""
        for name in ("prompt_tokens", "completion_tokens"):
            value = getattr(usage, name, None)
            if isinstance(value, int):
                setattr(self, name, (getattr(self, name) or 0) + value)


class InvalidReplyError(ValueError):
    """A reply that is not usable advice; the message says why (it is shown to the model)."""


def _extract_json(content: str) -> dict[str, Any]:
    text = content.strip()
    fenced = _FENCED_RE.search(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidReplyError(f"the reply is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(data, dict):
        raise InvalidReplyError(f"the reply is JSON but a {type(data).__name__}, not an object")
    return data


def _split_action(action: str) -> tuple[str, str] | None:
    """(verb, argument) with the argument stripped and lower-cased as WebShop reads it."""
    m = _ACTION_RE.fullmatch(action.strip())
    return None if m is None else (m.group(1).lower(), m.group(2).strip().lower())


def normalise_action(action: str, ctx: Context) -> str:
    """The teacher's action as the env expects it.

    Clicks are matched against `ctx.valid_actions` case-insensitively and returned as listed;
    a bare button label (no `click[...]`) is accepted when it names a valid click. `search[q]`
    needs a search bar and a non-empty query.

    Raises:
        InvalidReplyError: the action is not one of the valid actions (or not an allowed search).
    """
    text = action.strip()
    parts = _split_action(text) or ("click", text.lower())
    if parts[0] == "search":
        if not ctx.has_search_bar:
            raise InvalidReplyError(f"{text!r} is a search, but this page has no search bar")
        if not parts[1]:
            raise InvalidReplyError("the search query is empty")
        return f"search[{parts[1]}]"
    valid = {_split_action(a): a for a in ctx.valid_actions}
    if parts in valid:
        return valid[parts]
    raise InvalidReplyError(f"the action {text!r} is not one of the available actions")


def parse_advice(content: str | None, ctx: Context, source: str) -> TeacherAdvice:
    """Turn a model reply into `TeacherAdvice`, checking every field.

    Args:
        content: the reply text (a JSON object, optionally in a ```json fenced block).
        ctx: the context the advice is for (its valid actions and search bar).
        source: the teacher's name, stored in the advice.

    Raises:
        InvalidReplyError: the reply is empty, not a JSON object, misses or mistypes a field, names
            an action that is not allowed, or an unknown error type.
    """
    if not content or not content.strip():
        raise InvalidReplyError("the reply is empty")
    data = _extract_json(content)
    missing = [f for f in ADVICE_FIELDS if f not in data]
    if missing:
        raise InvalidReplyError(f"the JSON object is missing the field(s) {', '.join(missing)}")
    for name in ADVICE_FIELDS:
        if not isinstance(data[name], str) or not data[name].strip():
            raise InvalidReplyError(f"the field {name!r} must be a non-empty string")
    error_type = data["error_type"].strip().lower()
    if error_type not in ERROR_TYPES:
        raise InvalidReplyError(f"error_type {data['error_type']!r} is not one of {', '.join(ERROR_TYPES)}")
    return TeacherAdvice(
        action=normalise_action(data["action"], ctx),
        hint=data["hint"].strip(),
        contrast=data["contrast"].strip(),
        error_type=error_type,
        source=source,
    )


def build_messages(ctx: Context, student_action: str, max_history: int = DEFAULT_HISTORY,
                   max_observation_chars: int | None = None) -> list[dict[str, str]]:
    """The chat messages for one decision.

    The context is rendered by `teachable.prompting.prompt_body` (which never shows the hidden
    goal or state). A teaching patch the student may have been shown is left out: the teacher
    judges the decision itself.
    """
    body = prompt_body(ctx.with_patch(None), max_history=max_history, list_actions=True,
                       max_observation_chars=max_observation_chars)
    user = (
        f"{body}\nStudent action: {student_action}\n\n"
        "Reply with a JSON object with the fields action, hint, contrast and error_type."
    )
    return [{"role": "system", "content": TEACHER_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def correction_message(problem: str, ctx: Context) -> str:
    """What to tell the model after an unusable reply."""
    options = available_actions(ctx)
    return (
        f"Your reply could not be used: {problem}. Reply again with only a JSON object with the "
        f"string fields action, hint, contrast and error_type. The action must be one of: "
        f"{', '.join(options)}. error_type must be one of: {', '.join(ERROR_TYPES)}."
    )


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request (model, messages, temperature, format)."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class OpenAITeacher:
    """Advice from a chat model behind an OpenAI-compatible endpoint.

    Args:
        model: the model name sent to the endpoint.
        base_url: the endpoint (e.g. `http://localhost:8000/v1`); None uses the client's
            default, which honours `OPENAI_BASE_URL`.
        api_key: the API key; None reads the environment variable `api_key_env` when a
            request has to be sent (a fully cached run needs no key).
        api_key_env: the environment variable that holds the key.
        cache_dir: where to keep one JSON file per request; None disables the cache.
        temperature: sampling temperature (part of the cache key).
        max_retries: transport retries per request (429, 5xx, timeout, connection error).
        backoff_s: the first retry's delay; it doubles on each retry up to `max_backoff_s`, and
            each delay is drawn uniformly from its upper half (jitter, so that clients that failed
            together do not retry together).
        max_backoff_s: the longest delay between retries without a `Retry-After`.
        max_retry_after_s: the longest `Retry-After` honoured; a server asking for more ends the
            request with a `TeacherError` that says so.
        timeout_s: the per-request timeout in seconds.
        max_concurrency: requests in flight at once in `advise` (1: one at a time).
        jitter_seed: seed of the retry jitter (it changes only when requests are sent, never a result).
        max_invalid_retries: how many times an unusable reply is sent back for correction.
        max_history: how many recent actions the teacher sees.
        max_observation_chars: cut longer observations (None keeps them whole).
        on_call: called with a `TeacherCall` after each decision (from the request threads of
            `advise`), e.g. to trace it; None reports nothing.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-4.1-mini",
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        cache_dir: str | Path | None = None,
        temperature: float = 0.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        timeout_s: float = 60.0,
        max_concurrency: int = 8,
        jitter_seed: int = 0,
        max_invalid_retries: int = 2,
        max_history: int = DEFAULT_HISTORY,
        max_observation_chars: int | None = None,
        on_call: Callable[[TeacherCall], None] | None = None,
    ) -> None:
        for field_name, value in (("max_retries", max_retries), ("max_invalid_retries", max_invalid_retries)):
            if value < 0:
                raise ValueError(f"{field_name} must be >= 0, got {value}.")
        if backoff_s < 0 or max_backoff_s < 0 or max_retry_after_s < 0 or timeout_s <= 0:
            raise ValueError("backoff_s, max_backoff_s and max_retry_after_s must be >= 0 and timeout_s > 0.")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}.")
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.max_invalid_retries = max_invalid_retries
        self.max_history = max_history
        self.max_observation_chars = max_observation_chars
        self.on_call = on_call
        self.stats = TeacherStats()
        self._client: OpenAI | None = None
        self._lock = threading.Lock()  # guards stats, the jitter RNG and the client across request threads
        self._jitter = random.Random(jitter_seed)

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def __repr__(self) -> str:  # the key is never shown
        return f"OpenAITeacher(model={self.model!r}, base_url={self.base_url!r}, cache_dir={self.cache_dir!r})"

    # ------------------------------------------------------------------ public API
    def advise(self, contexts: Sequence[Context], student_actions: Sequence[str]) -> list[TeacherAdvice]:
        """Advice for each decision, in order (up to `max_concurrency` requests in flight; cached ones send nothing).

        Raises:
            ValueError: `contexts` and `student_actions` differ in length.
            TeacherError: the first decision the endpoint failed on after retries, rejected, or
                kept answering with unusable advice.
        """
        out = self.advise_settled(contexts, student_actions)
        for result in out:
            if isinstance(result, TeacherError):
                raise result
        return out  # type: ignore[return-value]

    def advise_settled(self, contexts: Sequence[Context],
                       student_actions: Sequence[str]) -> list[TeacherAdvice | TeacherError]:
        """Advice for each decision, or the `TeacherError` it ended with, in the order asked.

        Identical requests in one call are sent once, so the results equal those of asking one
        at a time (where the second would be a cache hit).

        Raises:
            ValueError: `contexts` and `student_actions` differ in length.
        """
        if len(contexts) != len(student_actions):
            raise ValueError(f"got {len(contexts)} contexts but {len(student_actions)} student actions; "
                             "pass one student action per context.")
        hits, misses = self.stats.cache_hits, self.stats.cache_misses
        requests = [self._request(ctx, act) for ctx, act in zip(contexts, student_actions, strict=True)]
        first: dict[str, int] = {}
        for i, (key, _, _) in enumerate(requests):
            first.setdefault(key, i)
        unique = sorted(first.values())

        def settle(i: int) -> TeacherAdvice | TeacherError:
            try:
                return self._advise_request(*requests[i], contexts[i])
            except TeacherError as exc:
                return exc

        workers = min(self.max_concurrency, len(unique))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="teacher") as pool:
                settled = dict(zip(unique, pool.map(settle, unique), strict=True))
        else:
            settled = {i: settle(i) for i in unique}
        out = [settled[first[key]] for key, _, _ in requests]
        logger.info("%s: %d decisions, %d cache hits, %d cache misses (totals: %s)", self.name,
                    len(out), self.stats.cache_hits - hits, self.stats.cache_misses - misses,
                    self.stats.to_dict())
        return out

    def advise_one(self, ctx: Context, student_action: str) -> TeacherAdvice:
        """Advice for one decision, from the cache when it holds this exact request."""
        return self._advise_request(*self._request(ctx, student_action), ctx)

    def _request(self, ctx: Context, student_action: str) -> tuple[str, dict[str, Any], list[dict[str, str]]]:
        messages = build_messages(ctx, student_action, self.max_history, self.max_observation_chars)
        request = {"model": self.model, "messages": messages, "temperature": self.temperature,
                   "response_format": RESPONSE_FORMAT}
        return request_key(request), request, messages

    def _advise_request(self, key: str, request: dict[str, Any], messages: list[dict[str, str]],
                        ctx: Context) -> TeacherAdvice:
        call = TeacherCall(self.model, messages, time.time_ns())
        try:
            call.advice = self._cache_get(key, ctx)
            if call.advice is not None:
                call.cache_hit = True
                self._count("cache_hits")
                return call.advice
            self._count("cache_misses")
            call.advice, content = self._ask_until_valid(messages, ctx, call)
            self._cache_put(key, request, content, call.advice)
            return call.advice
        except TeacherError as exc:
            call.error = str(exc)
            raise
        finally:
            call.end_ns = time.time_ns()
            if self.on_call is not None:
                self.on_call(call)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def close(self) -> None:
        """Close the HTTP client (it is reopened on the next request)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ re-asking
    def _ask_until_valid(self, messages: list[dict[str, str]], ctx: Context,
                         call: TeacherCall) -> tuple[TeacherAdvice, str]:
        convo = list(messages)
        problem = ""
        for attempt in range(self.max_invalid_retries + 1):
            content = call.reply = self._complete(convo, call)
            try:
                return parse_advice(content, ctx, self.name), content or ""
            except InvalidReplyError as exc:
                problem = str(exc)
            self._count("invalid_replies")
            call.invalid_replies += 1
            logger.warning("%s: unusable reply (attempt %d of %d): %s", self.name, attempt + 1,
                           self.max_invalid_retries + 1, problem)
            convo += [{"role": "assistant", "content": content or ""},
                      {"role": "user", "content": correction_message(problem, ctx)}]
        raise TeacherError(
            f"{self.name} gave no usable advice after {self.max_invalid_retries + 1} replies; the last "
            f"problem: {problem}. Try a stronger model, or raise max_invalid_retries."
        )

    # ------------------------------------------------------------------ transport
    def _complete(self, messages: list[dict[str, str]], call: TeacherCall) -> str | None:
        """One chat completion, retrying transient failures after `Retry-After` or a jittered backoff;
        the requests, retries and tokens are added to `call`."""
        import openai

        client = self._get_client()
        problem, fix = "", ""
        for attempt in range(self.max_retries + 1):
            self._count("requests")
            call.requests += 1
            asked: float | None = None
            try:
                completion = client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature,  # type: ignore[arg-type]
                    response_format=RESPONSE_FORMAT,  # type: ignore[arg-type]
                )
                call.add_usage(getattr(completion, "usage", None))
                return self._reply_content(completion)
            except openai.APIError as exc:
                problem, fix = self._classify(exc)
                response = getattr(exc, "response", None)
                asked = retry_after_s(response.headers if response is not None else None)
            except (json.JSONDecodeError, _BadBody) as exc:  # the client parses a JSON body it cannot read raw
                got = self._redact(str(exc.args[0] if isinstance(exc, _BadBody) else exc))[:200]
                problem = f"{self._where()} answered 200 with a body that is no chat completion ({got})"
                fix = "Check that base_url points at an OpenAI-compatible endpoint (it usually ends in /v1)."
            if attempt < self.max_retries:
                delay = self._delay(attempt, asked, problem)
                self._count("retries")
                call.retries += 1
                logger.warning("%s: %s; retry %d of %d in %.2f s", self.name, problem, attempt + 1,
                               self.max_retries, delay)
                time.sleep(delay)
        raise TeacherError(f"{self.name}: giving up after {self.max_retries + 1} attempt(s); the last "
                           f"error: {problem}. {fix}")

    def _delay(self, attempt: int, retry_after: float | None, problem: str) -> float:
        """The wait before retry `attempt + 1`: the server's `Retry-After` plus up to 10 % (and
        `backoff_s`) of jitter, else the doubled backoff drawn from its upper half.

        Raises:
            TeacherError: the server asks for a wait longer than `max_retry_after_s`.
        """
        with self._lock:
            u = self._jitter.random()
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                raise TeacherError(f"{self.name}: {problem}, and the server asks to wait {retry_after:.0f} s "
                                   f"(Retry-After), more than max_retry_after_s={self.max_retry_after_s:g}; "
                                   "try later, or raise max_retry_after_s.")
            return retry_after + u * max(0.1 * retry_after, self.backoff_s)
        return min(self.backoff_s * 2**attempt, self.max_backoff_s) * (0.5 + 0.5 * u)

    def _reply_content(self, completion: Any) -> str | None:
        """The first choice's text.

        Raises:
            _BadBody: the endpoint answered 200 with something else (an HTML page, say).
        """
        try:
            content = completion.choices[0].message.content
        except (AttributeError, IndexError, KeyError, TypeError):
            raise _BadBody(f"got {repr(completion)[:200]}") from None
        return content if isinstance(content, str) else None

    def _classify(self, exc: Exception) -> tuple[str, str]:
        """(what happened, how to fix it) for an error worth retrying.

        Raises:
            TeacherError: at once for errors a retry cannot fix (4xx other than 429, bad replies).
        """
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return (f"the request timed out after {self.timeout_s} s",
                    "Raise timeout_s, or check that the server is up and not overloaded.")
        if isinstance(exc, openai.APIConnectionError):
            return (f"cannot connect to {self._where()}",
                    "Check that the server is running and that base_url is right.")
        status = getattr(exc, "status_code", None)
        detail = self._redact(str(getattr(exc, "message", exc)))[:300]
        if status == 429:
            return (f"rate limited (HTTP 429: {detail})",
                    "Wait, lower the request rate, or raise max_retries / backoff_s.")
        if status is not None and status >= 500:
            return (f"server error (HTTP {status}: {detail})",
                    f"The server at {self._where()} is failing: check that it is up, or try later.")
        fixes = {
            401: f"check the API key in {self.api_key_env}",
            403: "check that the key may use this model",
            404: f"check base_url ({self._where()}; it usually ends in /v1) and the model name {self.model!r}",
        }
        fix = fixes.get(status or 0, "check the model name and the request parameters the endpoint accepts")
        what = f"HTTP {status}" if status is not None else "an unexpected reply"
        raise TeacherError(f"{self.name}: the endpoint rejected the request ({what}: {detail}); {fix}.") from None

    def _get_client(self) -> OpenAI:
        with self._lock:
            return self._client or self._open_client()

    def _open_client(self) -> OpenAI:
        if self._client is None:
            import openai

            key = self._api_key if self._api_key is not None else os.environ.get(self.api_key_env)
            if not key:
                raise TeacherError(
                    f"{self.name} needs an API key to send a request: set the environment "
                    f"variable {self.api_key_env} (or pass api_key=...)."
                )
            kwargs: dict[str, Any] = {"api_key": key, "timeout": self.timeout_s, "max_retries": 0}
            if self.base_url is not None:
                kwargs["base_url"] = self.base_url
            self._client = openai.OpenAI(**kwargs)
        return self._client

    def _where(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or "the default OpenAI endpoint"

    def _redact(self, text: str) -> str:
        key = self._api_key if self._api_key is not None else os.environ.get(self.api_key_env)
        return text.replace(key, "<redacted>") if key else text

    # ------------------------------------------------------------------ cache
    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{key}.json"

    def _cache_get(self, key: str, ctx: Context) -> TeacherAdvice | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return parse_advice(record["content"], ctx, self.name)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: ignoring unreadable cache file %s (%s)", self.name, path, exc)
            return None

    def _cache_put(self, key: str, request: dict[str, Any], content: str, advice: TeacherAdvice) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        record = {"schema_version": CACHE_SCHEMA_VERSION, "key": key, "request": request,
                  "content": content, "advice": advice.to_dict()}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
