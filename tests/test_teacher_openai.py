"""OpenAITeacher against a scripted local chat-completions server (127.0.0.1 only)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
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
    retry_after_s,
)
from teachable.prompting import Context
from tests.webtools import free_port

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
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is, labelled application/json (a malformed body)


@dataclass
class FakeEndpoint:
    queue: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    url: str = ""
    responder: Callable[[dict[str, Any]], Reply] | None = None  # answers by request, instead of the script
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

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
            with endpoint.lock:
                endpoint.in_flight += 1
                endpoint.most_in_flight = max(endpoint.most_in_flight, endpoint.in_flight)
            if endpoint.responder is not None:
                reply = endpoint.responder(json.loads(raw))
            else:
                reply = endpoint.queue.popleft() if endpoint.queue else Reply(status=500, body={"error": {"message": "script exhausted"}})
            time.sleep(reply.delay)
            with endpoint.lock:
                endpoint.in_flight -= 1
            if reply.body is not None:
                body = reply.body
            else:
                body = completion_body(reply.content) if reply.status == 200 else {"error": {"message": "scripted"}}
            self._send(reply.status, body, reply.headers, reply.raw)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
            html = isinstance(body, str) and raw is None
            data = raw if raw is not None else body.encode() if html else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
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
    assert "Available actions: search (write the words to look for)" in endpoint.requests[0]["messages"][-1]["content"]


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


def test_html_page_is_retried_then_points_at_base_url(endpoint: FakeEndpoint) -> None:
    endpoint.script(*[Reply(body="<html>Welcome to the router</html>")] * 2)
    teacher = make_teacher(endpoint, max_retries=1)
    with pytest.raises(TeacherError, match="giving up after 2 attempt.*no chat completion.*Welcome.*base_url"):
        advise(teacher)
    assert teacher.stats.retries == 1


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [float(m) for m in re.findall(r"retry \d+ of \d+ in ([0-9.]+) s", caplog.text)]


def test_every_transient_failure_then_a_good_reply(endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.script(
        Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "0.3"}),
        Reply(status=500),
        Reply(advice_json(action="click[lemon]"), delay=0.6),  # times out
        Reply(raw=b'{"id": "chatcmpl-1", "choices": [{"message": '),  # malformed JSON, as application/json
        Reply(body={"id": "x", "object": "chat.completion", "result": "ok"}),  # JSON with the wrong fields
        Reply(advice_json()),
    )
    teacher = make_teacher(endpoint, timeout_s=0.3, max_retries=5, backoff_s=0.01)
    with caplog.at_level(logging.WARNING):
        assert advise(teacher).action == "click[mint]"
    assert teacher.stats.retries == 5 and len(endpoint.requests) == 6 and teacher.stats.invalid_replies == 0
    for problem in ("rate limited", "server error", "timed out", "no chat completion"):
        assert problem in caplog.text
    delays = retry_delays(caplog)
    assert 0.3 <= delays[0] <= 0.3 + 0.03 + 1e-9  # Retry-After, plus at most 10 % jitter
    assert all(0.005 <= d <= 0.16 for d in delays[1:])  # the doubled backoff, drawn from its upper half


def test_malformed_bodies_end_in_a_teacher_error(endpoint: FakeEndpoint) -> None:
    endpoint.script(*[Reply(raw=b"<html>oops</html>")] * 3)
    teacher = make_teacher(endpoint, max_retries=2)
    with pytest.raises(TeacherError, match=r"giving up after 3 attempt\(s\).*no chat completion"):
        advise(teacher)
    assert teacher.stats.retries == 2


def test_a_retry_after_beyond_the_limit_says_so(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply(status=429, headers={"Retry-After": "3600"}), Reply(advice_json()))
    with pytest.raises(TeacherError, match=r"asks to wait 3600 s.*max_retry_after_s=120"):
        advise(make_teacher(endpoint))
    assert len(endpoint.requests) == 1


def test_retry_after_forms() -> None:
    from email.utils import formatdate

    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": formatdate(1_000_010, usegmt=True)}, now=1_000_000) == 10.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    assert retry_after_s({"retry-after": "-5"}) == 0.0


def test_unreachable_server_points_at_base_url(endpoint: FakeEndpoint) -> None:
    teacher = make_teacher(endpoint, base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
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
def test_batch_is_in_order_and_checked(endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.script(Reply(advice_json()), Reply(advice_json(action="search[zebra mat]")))
    teacher = make_teacher(endpoint, max_concurrency=1)  # the script answers in arrival order
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


def test_requests_in_flight_are_bounded_and_results_match_serial(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    """Each reply depends on its request only (as a model's does); delays shuffle the arrival order."""
    buttons = ["click[mint]", "click[lemon]", "click[description]", "click[< prev]"]
    contexts = [
        Context(instruction=f"task {i}", observation=ITEM_CTX.observation, valid_actions=ITEM_CTX.valid_actions,
                has_search_bar=False) for i in range(12)]
    contexts.append(contexts[3])  # asked twice in one call: sent once

    def respond(request: dict[str, Any]) -> Reply:
        task = int(re.search(r"task (\d+)", request["messages"][1]["content"]).group(1))
        return Reply(advice_json(action=buttons[task % 4]), delay=0.05 * ((task * 7) % 5))

    endpoint.responder = respond
    students = ["click[buy now]"] * len(contexts)
    serial = make_teacher(endpoint, max_concurrency=1).advise(contexts, students)
    assert endpoint.most_in_flight == 1 and len(endpoint.requests) == 12
    endpoint.most_in_flight = 0
    parallel = make_teacher(endpoint, max_concurrency=4).advise(contexts, students)
    assert parallel == serial and [a.action for a in serial] == [buttons[i % 4] for i in range(12)] + [buttons[3]]
    assert 2 <= endpoint.most_in_flight <= 4 and len(endpoint.requests) == 24


def test_settled_keeps_each_decisions_error_in_place(endpoint: FakeEndpoint) -> None:
    endpoint.responder = lambda request: (Reply(status=400, body={"error": {"message": "no"}})
                                          if "zebra" in request["messages"][1]["content"] else Reply(advice_json()))
    teacher = make_teacher(endpoint, max_concurrency=3)
    out = teacher.advise_settled([ITEM_CTX, SEARCH_CTX, ITEM_CTX], ["click[buy now]", "search[mat]", "click[lemon]"])
    assert isinstance(out[1], TeacherError) and [a.action for a in (out[0], out[2])] == ["click[mint]"] * 2
    with pytest.raises(TeacherError, match="HTTP 400"):
        teacher.advise([ITEM_CTX, SEARCH_CTX], ["click[buy now]", "search[mat]"])


def test_label_records_a_malformed_body_as_a_teacher_error(endpoint: FakeEndpoint) -> None:
    from teachable.label.labeling import LabelProgress, teacher_advice

    endpoint.responder = lambda request: (Reply(raw=b'{"choices": [') if "zebra" in request["messages"][1]["content"]
                                          else Reply(advice_json()))
    progress = LabelProgress()
    out = teacher_advice(make_teacher(endpoint, max_retries=1), None, [ITEM_CTX, SEARCH_CTX],
                         ["click[buy now]", "search[mat]"], progress)
    assert out[0][0].action == "click[mint]" and out[0][1] is None
    assert out[1][0] is None and out[1][1].startswith("TeacherError:") and "no chat completion" in out[1][1]
    assert progress.teacher_errors == 1
