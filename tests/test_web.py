"""The shop in a browser, through Flask's test client: sessions, shopping to the reward,
validation of every input, error pages without tracebacks, and the `serve` command."""

from __future__ import annotations

import html
import re

import pytest
from click.testing import CliRunner

from webshop_env.env import WebShopEnv
from webshop_env.web import ActionError, SessionStore, create_app, web_action
from webshop_env.web.app import COOKIE


@pytest.fixture
def app(tiny_shop):
    return create_app(tiny_shop, max_steps=15, seed=3)


@pytest.fixture
def client(app):
    return app.test_client()


def start(client, goal_idx: int):
    r = client.post("/start", data={"goal_idx": str(goal_idx)})
    assert r.status_code == 303 and r.headers["Location"].endswith("/play")
    return r


def act(client, action: str, query: str = "") -> None:
    r = client.post("/play", data={"action": action, "query": query})
    assert r.status_code == 303, r.get_data(as_text=True)[-400:]


def page(client) -> str:
    r = client.get("/play")
    assert r.status_code == 200
    return r.get_data(as_text=True)


def text_observation(body: str) -> str:
    return html.unescape(re.search(r'<pre id="text-observation">(.*?)</pre>', body, re.S).group(1))


def assert_error_page(r, code: int) -> str:
    body = r.get_data(as_text=True)
    assert r.status_code == code
    assert f'data-code="{code}"' in body and "Traceback" not in body and 'File "' not in body
    return html.unescape(re.search(r'<p id="error-message">(.*?)</p>', body, re.S).group(1))


# ------------------------------------------------------------------ sessions
def test_session_store_expiry_cap_and_ids() -> None:
    now = [0.0]
    store: SessionStore[str] = SessionStore(max_sessions=2, ttl_s=10, clock=lambda: now[0])
    a = store.create("a")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", a) and store.get(a) == "a"
    now[0] = 9.0
    b = store.create("b")
    now[0] = 15.0  # a was used at 0: expired; b at 9: alive
    assert store.get(a) is None and store.get(b) == "b" and len(store) == 1
    c, d = store.create("c"), store.create("d")  # the cap is 2: b (least recently used) goes
    assert store.get(b) is None and store.get(c) == "c" and store.get(d) == "d"
    assert store.get(None) is None and store.get("../../etc/passwd") is None and store.get("x" * 500) is None
    with pytest.raises(ValueError, match="max_sessions"):
        SessionStore(max_sessions=0)
    with pytest.raises(ValueError, match="ttl_s"):
        SessionStore(ttl_s=0)


def test_each_browser_has_its_own_env(app, tiny_shop) -> None:
    one, two = app.test_client(), app.test_client()
    start(one, 0)
    start(two, 1)
    act(one, "search", "running shoes")
    assert text_observation(page(two)).startswith("WebShop [SEP] Instruction:")
    assert "Page 1 (Total results:" in text_observation(page(one))
    assert tiny_shop.goals[1]["instruction_text"] in page(two)
    cookie = one.get_cookie(COOKIE)
    assert cookie.http_only and cookie.same_site == "Lax"


# ------------------------------------------------------------------ shopping
def test_shop_to_the_reward_equals_the_env(client, tiny_shop) -> None:
    goal = 4
    actions = ["search[running shoes]", "click[next >]", "click[< prev]", "click[b0shoe0003]", "click[features]",
               "click[< prev]", "click[navy blue]", "click[10]", "click[buy now]"]
    env = WebShopEnv(shop=tiny_shop)
    env.reset(options={"goal_idx": goal})
    for a in actions:
        _, reward, done, _, info = env.step(a)
    assert done and 0.0 < reward < 1.0  # a wrong model and size: a partial reward
    start(client, goal)
    for a in actions:
        if a.startswith("search["):
            act(client, "search", a[len("search["):-1])
        else:
            act(client, a)
    body = page(client)
    shown = re.search(r'data-reward="([^"]+)"', body).group(1)
    assert float(shown) == reward
    assert f"{reward:.4f}" in body
    for key in info["reward_info"]:
        assert f'data-key="{key}"' in body
    assert "Thank you for shopping with us!" in body and 'id="action-form"' not in body
    assert_error_page(client.post("/play", data={"action": "click[back to search]"}), 409)


def test_pages_options_and_typed_actions(client, tiny_shop) -> None:
    start(client, 0)
    act(client, "search[ Running   SHOES ]")  # typed: keywords normalised as the search box does
    assert "Page 1 (Total results: 23)" in text_observation(page(client))
    act(client, "click[next >]")
    assert "Page 2 (Total results: 23)" in text_observation(page(client))
    act(client, "click[B0SHOE0012]")  # labels are lower-cased as in WebShop
    act(client, "click[navy blue]")
    body = page(client)
    assert 'class="btn selected" name="action" value="click[navy blue]"' in body
    act(client, "click[description]")
    assert "Lightweight running shoes number 12." in text_observation(page(client))


def test_random_goal_from_a_split_is_seeded(tiny_shop) -> None:
    goals = []
    for _ in range(2):
        c = create_app(tiny_shop, seed=11).test_client()
        assert c.post("/start", data={"split": "train"}).status_code == 303
        goals.append(re.search(r"Shopping goal (\d+)", page(c)).group(1))
    assert goals[0] == goals[1] and int(goals[0]) in tiny_shop.split_goal_indices("train")


# ------------------------------------------------------------------ validation and errors
@pytest.mark.parametrize("value", ["25", "-1", "1e3", "abc", "99999999999999999999", "0x1", "../../etc/passwd"])
def test_bad_goal_index_is_a_400_page(client, value: str) -> None:
    message = assert_error_page(client.post("/start", data={"goal_idx": value}), 400)
    assert "is not a whole number from 0 to 24" in message


def test_bad_split_is_a_400_page(client) -> None:
    assert "split 'nope' is unknown" in assert_error_page(client.post("/start", data={"split": "nope"}), 400)


@pytest.mark.parametrize(("action", "query", "message"), [
    ("click [search]", "", "is not an action"),
    ("Click[back to search]", "", "is not an action"),
    ("rm -rf /", "", "is not an action"),
    ("click[]", "", "is not an action"),
    ("search", "   ", "type some keywords"),
    ("search", "a[b]c", "without [ or ]"),
    ("search", "x" * 201, "at most 200 characters"),
    ("click[b0shoe0001]", "", "is not clickable on this page"),
    ("click[buy now]", "", "is not clickable on this page"),
    ("click[" + "x" * 400 + "]", "", "longer than 300"),
])
def test_bad_actions_are_400_pages_and_change_nothing(client, action: str, query: str, message: str) -> None:
    start(client, 0)
    before = page(client)
    assert message in assert_error_page(client.post("/play", data={"action": action, "query": query}), 400)
    assert page(client) == before


def test_web_action_rules() -> None:
    valid = ["click[back to search]", "click[b0shoe0001]"]
    assert web_action("search", "  red   shoes ", valid, True) == "search[red shoes]"
    assert web_action("click[B0SHOE0001]", "", valid, True) == "click[b0shoe0001]"
    with pytest.raises(ActionError, match="no search"):
        web_action("search[shoes]", "", [], False)


def test_no_session_redirects_and_unknown_routes_are_404_pages(client) -> None:
    r = client.get("/play")
    assert r.status_code == 303 and "expired=1" in r.headers["Location"]
    assert 'id="expired"' in client.get("/?expired=1").get_data(as_text=True)
    client.set_cookie(COOKIE, "forged-session-id-that-does-not-exist-000000")
    assert client.post("/play", data={"action": "search", "query": "x"}).status_code == 303
    assert_error_page(client.get("/../../etc/passwd"), 404)
    assert_error_page(client.get("/static/../../env.py"), 404)
    r = client.delete("/play")
    assert_error_page(r, 405)
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    r = client.get("/start")
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_every_response_carries_the_security_headers(client) -> None:
    for r in (client.get("/"), start(client, 0), client.get("/play"), client.get("/nope"), client.put("/")):
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"


def test_a_server_error_renders_a_page_without_traceback(app, client, monkeypatch) -> None:
    start(client, 0)
    visit = app.extensions["webshop"].sessions.get(client.get_cookie(COOKIE).value)

    def broken(action):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(visit.env, "step", broken)
    r = client.post("/play", data={"action": "search", "query": "shoes"})
    assert "secret internal detail" not in assert_error_page(r, 500)


def test_debug_is_off_and_uploads_are_capped(app, client) -> None:
    assert app.debug is False and app.config["DEBUG"] is False
    assert_error_page(client.post("/start", data={"goal_idx": "1" * 70_000}), 413)


def test_serve_binds_loopback_without_debug(monkeypatch, tiny_data_dir) -> None:
    from webshop_env import cli

    calls = []
    monkeypatch.setattr("werkzeug.serving.run_simple", lambda *a, **k: calls.append((a, k)))
    result = CliRunner().invoke(cli.main, ["serve", "--data-dir", str(tiny_data_dir), "--port", "0"])
    assert result.exit_code == 0, result.output
    (host, port, app), kwargs = calls[0]
    assert (host, port) == ("127.0.0.1", 0) and kwargs["use_debugger"] is False and kwargs["use_reloader"] is False
    assert app.debug is False and app.test_client().get("/").status_code == 200
    result = CliRunner().invoke(cli.main, ["serve", "--data-dir", str(tiny_data_dir), "--host", "0.0.0.0"])
    assert "warning: binding 0.0.0.0" in result.output
