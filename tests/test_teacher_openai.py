"""OpenAITeacher against a scripted local chat-completions server (127.0.0.1 only)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from teachable.policy.teacher import ERROR_TYPES, TeacherAdvice
from teachable.policy.teacher.openai_teacher import (
    TEACHER_SYSTEM_PROMPT,
    InvalidReplyError,
    OpenAITeacher,
    TeacherError,
    parse_advice,
)
from teachable.prompting import Context

MODEL = "test-model"
KEY = "sk-test-SUPERSECRET-0123456789"

ITEM_CTX = Context(
    instruction="i need gluten free green tea bags with mint flavor, price lower than 20.00 dollars",
    observation="[Back to Search] [< Prev] flavor name [mint] [lemon] Leafy Organic Green Tea Bags "
                "Price: $12.99 [Description] [Buy Now]",
    valid_actions=("click[back to search]", "click[< prev]", "click[mint]", "click[lemon]",
                   "click[description]", "click[buy now]"),
    has_search_bar=False,
    history=("search[green tea bags]", "click[b0tea00001]"),
    goal={"asin": "B000SECRET", "instruction_attributes": ["gluten free"], "goal_options": ["mint"],
          "price_upper": 20.0},
    state='{"session": "S3CR3T-STATE"}',
)
SEARCH_CTX = Context(
    instruction="find me a zebra yoga mat",
    observation="WebShop [SEP] Instruction: [SEP] find me a zebra yoga mat [SEP] Search",
    valid_actions=(),
    has_search_bar=True,
    goal={"asin": "B000SECRET"},
)


def advice_json(action: str = "click[mint]", error_type: str = "planning_error", **extra: Any) -> str:
    reply = {"action": action, "hint": "Pick the flavor the task asks for before buying.",
             "contrast": "Buying now skips the mint option; choose mint first.", "error_type": error_type}
    reply.update(extra)
    return json.dumps(reply)


# ---------------------------------------------------------------------- the scripted server
@dataclass
class Reply:
    """One scripted answer: a chat completion with `content`, or `status` with `body` (a str is
    sent as an HTML page, anything else as JSON)."""

    content: str | None = None
    status: int = 200
    body: Any = None
    delay: float = 0.0


@dataclass
class FakeEndpoint:
    queue: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    url: str = ""

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)


def completion_body(content: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def make_handler(endpoint: FakeEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            endpoint.raw.append(raw)
            endpoint.requests.append(json.loads(raw))
            endpoint.auth.append(self.headers.get("Authorization"))
            reply = endpoint.queue.popleft() if endpoint.queue else Reply(status=500, body={"error": {"message": "script exhausted"}})
            time.sleep(reply.delay)
            if reply.body is not None:
                body = reply.body
            else:
                body = completion_body(reply.content) if reply.status == 200 else {"error": {"message": "scripted"}}
            self._send(reply.status, body)

        def _send(self, status: int, body: Any) -> None:
            html = isinstance(body, str)
            data = body.encode() if html else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and went away: that is the test

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEndpoint]:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ADMIN_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    ep = FakeEndpoint()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(ep))
    server.daemon_threads = True
    ep.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield ep
    server.shutdown()
    server.server_close()


def make_teacher(ep: FakeEndpoint, **overrides: Any) -> OpenAITeacher:
    kwargs: dict[str, Any] = {"model": MODEL, "base_url": ep.url, "api_key": KEY, "backoff_s": 0.01,
                              "timeout_s": 2.0}
    kwargs.update(overrides)
    return OpenAITeacher(**kwargs)


def advise(teacher: OpenAITeacher, ctx: Context = ITEM_CTX, student: str = "click[buy now]") -> TeacherAdvice:
    return teacher.advise([ctx], [student])[0]


# ---------------------------------------------------------------------- replies
def test_good_reply_gives_advice(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(advice_json(action="  Click[Mint] ")))
    teacher = make_teacher(endpoint)
    advice = advise(teacher)
    assert advice == TeacherAdvice(action="click[mint]", hint="Pick the flavor the task asks for before buying.",
                                   contrast="Buying now skips the mint option; choose mint first.",
                                   error_type="planning_error", source="openai:test-model")
    assert teacher.name == "openai:test-model"
    sent = endpoint.requests[0]
    assert sent["model"] == MODEL and sent["temperature"] == 0.0
    assert sent["response_format"] == {"type": "json_object"}
    assert endpoint.auth[0] == f"Bearer {KEY}"
    assert teacher.stats.requests == 1 and teacher.stats.cache_misses == 1


def test_fenced_search_reply_on_search_page(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply("```json\n" + advice_json(action="search[Zebra Yoga Mat]",
                                                    error_type="attribute_confusion") + "\n```"))
    advice = advise(make_teacher(endpoint), SEARCH_CTX, "search[yoga]")
    assert advice.action == "search[zebra yoga mat]"
    assert "search[<query>]" in endpoint.requests[0]["messages"][-1]["content"]


def test_malformed_json_is_reasked(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply("Sure! {action: click[mint]"), Reply(advice_json()))
    teacher = make_teacher(endpoint)
    assert advise(teacher).action == "click[mint]"
    retry = endpoint.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! {action: click[mint]"}
    assert "not valid JSON" in retry[-1]["content"] and "click[buy now]" in retry[-1]["content"]
    assert teacher.stats.invalid_replies == 1 and teacher.stats.requests == 2


def test_invalid_action_is_reasked(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(advice_json(action="click[add to cart]")), Reply(advice_json(action="click[lemon]")))
    teacher = make_teacher(endpoint)
    assert advise(teacher).action == "click[lemon]"
    correction = endpoint.requests[1]["messages"][-1]["content"]
    assert "click[add to cart]" in correction and "not one of the available actions" in correction
    assert all(a in correction for a in ITEM_CTX.valid_actions)


def test_always_invalid_raises(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    endpoint.script(*[Reply(advice_json(error_type="bad_luck"))] * 3)
    teacher = make_teacher(endpoint, max_invalid_retries=2, cache_dir=tmp_path)
    with pytest.raises(TeacherError, match="bad_luck"):
        advise(teacher)
    assert len(endpoint.requests) == 3 and teacher.stats.invalid_replies == 3
    assert list(tmp_path.iterdir()) == []  # nothing invalid is cached


@pytest.mark.parametrize(
    ("content", "ctx", "problem"),
    [
        ("", ITEM_CTX, "empty"),
        ("[1, 2]", ITEM_CTX, "not an object"),
        (json.dumps({"action": "click[mint]", "hint": "h"}), ITEM_CTX, "missing the field"),
        (advice_json(hint=3), ITEM_CTX, "'hint' must be a non-empty string"),
        (advice_json(error_type="typo"), ITEM_CTX, "error_type 'typo'"),
        (advice_json(action="search[tea]"), ITEM_CTX, "no search bar"),
        (advice_json(action="search[  ]"), SEARCH_CTX, "query is empty"),
        (advice_json(action="click[mint"), ITEM_CTX, "not one of the available actions"),
    ],
)
def test_parse_advice_names_the_problem(content: str, ctx: Context, problem: str) -> None:
    with pytest.raises(InvalidReplyError, match=problem.replace("[", r"\[")):
        parse_advice(content, ctx, "openai:x")


def test_parse_advice_accepts_a_bare_button_label() -> None:
    advice = parse_advice(advice_json(action="Buy Now", error_type=" Planning_Error "), ITEM_CTX, "s")
    assert (advice.action, advice.error_type) == ("click[buy now]", "planning_error")


def test_system_prompt_explains_every_error_type() -> None:
    assert all(e in TEACHER_SYSTEM_PROMPT for e in ERROR_TYPES)


# ---------------------------------------------------------------------- transport
def test_rate_limit_is_retried(endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.script(Reply(status=429, body={"error": {"message": "slow down"}}), Reply(advice_json()))
    teacher = make_teacher(endpoint)
    with caplog.at_level(logging.WARNING):
        assert advise(teacher).action == "click[mint]"
    assert teacher.stats.retries == 1 and teacher.stats.requests == 2
    assert "rate limited" in caplog.text


def test_server_errors_are_retried(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(status=500), Reply(status=503), Reply(advice_json()))
    teacher = make_teacher(endpoint)
    assert advise(teacher).action == "click[mint]"
    assert teacher.stats.retries == 2 and len(endpoint.requests) == 3


def test_timeout_is_retried(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(advice_json(action="click[lemon]"), delay=0.6), Reply(advice_json()))
    teacher = make_teacher(endpoint, timeout_s=0.2)
    assert advise(teacher).action == "click[mint]"
    assert teacher.stats.retries == 1


def test_bad_request_fails_at_once(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(status=400, body={"error": {"message": "unknown parameter"}}), Reply(advice_json()))
    teacher = make_teacher(endpoint)
    with pytest.raises(TeacherError, match=r"rejected the request \(HTTP 400.*unknown parameter"):
        advise(teacher)
    assert len(endpoint.requests) == 1 and teacher.stats.retries == 0


def test_exhausted_retries_say_what_to_do(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(status=502), Reply(status=502))
    with pytest.raises(TeacherError, match=r"giving up after 2 attempt\(s\).*server error.*check that it is up"):
        advise(make_teacher(endpoint, max_retries=1))


def test_html_page_points_at_base_url(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(body="<html>Welcome to the router</html>"))
    with pytest.raises(TeacherError, match="did not answer with a chat completion.*base_url"):
        advise(make_teacher(endpoint))


def test_unreachable_server_points_at_base_url(endpoint: FakeEndpoint) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    teacher = make_teacher(endpoint, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(TeacherError, match=r"cannot connect to http://127\.0\.0\.1.*base_url"):
        advise(teacher)


# ---------------------------------------------------------------------- cache and key
def test_cache_answers_without_request_or_key(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    endpoint.script(Reply("not json"), Reply(advice_json()))
    first = make_teacher(endpoint, cache_dir=tmp_path)
    advice = advise(first)
    cached = make_teacher(endpoint, cache_dir=tmp_path, api_key=None)  # no key anywhere
    assert advise(cached) == advice
    assert len(endpoint.requests) == 2  # the re-ask; nothing for the cached call
    assert cached.stats.cache_hits == 1 and cached.stats.requests == 0
    assert len(list(tmp_path.glob("*.json"))) == 1
    with pytest.raises(TeacherError, match="set the environment variable OPENAI_API_KEY"):
        advise(cached, student="click[lemon]")  # a new request needs the key


def test_missing_key_names_the_env_var(endpoint: FakeEndpoint) -> None:
    teacher = make_teacher(endpoint, api_key=None, api_key_env="MY_TEACHER_KEY")
    with pytest.raises(TeacherError, match="MY_TEACHER_KEY"):
        advise(teacher)
    assert endpoint.requests == []


def test_key_from_env_var(endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEACHER_KEY", KEY)
    endpoint.script(Reply(advice_json()))
    advise(make_teacher(endpoint, api_key=None, api_key_env="MY_TEACHER_KEY"))
    assert endpoint.auth[0] == f"Bearer {KEY}"


def test_key_never_leaks(endpoint: FakeEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.script(Reply(status=429), Reply(advice_json()),
                    Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {KEY}"}}),
                    *[Reply(status=500, body={"error": {"message": f"echo {KEY}"}})] * 2)
    teacher = make_teacher(endpoint, cache_dir=tmp_path, max_retries=1)
    errors = []
    with caplog.at_level(logging.DEBUG):
        advise(teacher)
        for student in ("click[lemon]", "click[< prev]"):
            with pytest.raises(TeacherError) as info:
                advise(teacher, student=student)
            errors.append(str(info.value))
    assert "HTTP 401" in errors[0] and "<redacted>" in errors[0]
    assert all(KEY not in e for e in errors)
    assert KEY not in caplog.text and KEY not in repr(teacher)
    assert all(KEY not in p.read_text() for p in tmp_path.iterdir())


def test_request_shows_context_but_not_hidden_goal(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(advice_json()))
    advise(make_teacher(endpoint), student="click[buy now]")
    user = endpoint.requests[0]["messages"][-1]["content"]
    assert ITEM_CTX.instruction in user and ITEM_CTX.observation in user
    assert all(a in user for a in ITEM_CTX.valid_actions)
    assert "Student action: click[buy now]" in user and "click[b0tea00001]" in user
    raw = endpoint.raw[0].decode()
    assert "B000SECRET" not in raw and "S3CR3T" not in raw and "price_upper" not in raw


# ---------------------------------------------------------------------- batch contract
def test_batch_is_sequential_and_checked(endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.script(Reply(advice_json()), Reply(advice_json(action="search[zebra mat]")))
    teacher = make_teacher(endpoint)
    with pytest.raises(ValueError, match="one student action per context"):
        teacher.advise([ITEM_CTX, SEARCH_CTX], ["click[buy now]"])
    with caplog.at_level(logging.INFO):
        out = teacher.advise([ITEM_CTX, SEARCH_CTX], ["click[buy now]", "search[mat]"])
    assert [a.action for a in out] == ["click[mint]", "search[zebra mat]"]
    assert "0 cache hits, 2 cache misses" in caplog.text


def test_package_import_does_not_import_openai() -> None:
    code = "import sys, teachable.policy.teacher as t; t.OpenAITeacher; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_corrupt_cache_file_is_a_miss(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    endpoint.script(Reply(advice_json()), Reply(advice_json(action="click[lemon]")))
    advise(make_teacher(endpoint, cache_dir=tmp_path))
    (cache_file,) = tmp_path.glob("*.json")
    cache_file.write_text("{truncated")
    teacher = make_teacher(endpoint, cache_dir=tmp_path)
    assert advise(teacher).action == "click[lemon]"
    assert teacher.stats.cache_misses == 1 and json.loads(cache_file.read_text())["schema_version"] == 1
