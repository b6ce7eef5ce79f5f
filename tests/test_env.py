"""WebShopEnv reproduces WebShop's pages, clickables, actions and rewards; states restore exactly."""

from __future__ import annotations

import json
import zlib

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webshop_env.env import ACTION_RE, MAX_ACTION_CHARS, Shop, WebShopEnv, parse_action
from webshop_env.state import StateError


def _goal_idx(shop: Shop, asin: str) -> int:
    return next(i for i, g in enumerate(shop.goals) if g["asin"] == asin)


@pytest.fixture
def env(tiny_shop: Shop) -> WebShopEnv:
    return WebShopEnv(shop=tiny_shop)


def _start(env: WebShopEnv, asin: str) -> tuple[str, dict]:
    return env.reset(options={"goal_idx": _goal_idx(env.shop, asin)})


def test_start_page(env: WebShopEnv) -> None:
    obs, info = _start(env, "B0ZEBRA001")
    instr = env.instruction_text
    assert obs == f"WebShop [SEP] Instruction: [SEP] {instr} [SEP] Search"
    assert info["available_actions"] == {"has_search_bar": True, "clickables": ["search"]}
    assert info["valid_actions"] == [] and info["search_allowed"]


def test_results_item_and_sub_pages(env: WebShopEnv) -> None:
    _start(env, "B0ZEBRA001")
    instr = env.instruction_text
    obs, reward, term, trunc, info = env.step("search[Zebra]")
    assert obs == (f"Instruction: [SEP] {instr} [SEP] Back to Search [SEP] Page 1 (Total results: 1) [SEP] "
                   "Next > [SEP] B0ZEBRA001 [SEP] Zebra Pattern Yoga Mat [SEP] $100.0")
    assert info["available_actions"] == {"has_search_bar": False, "clickables": ["back to search", "next >", "b0zebra001"]}
    assert (reward, term, trunc) == (0.0, False, False)
    obs, *_ , info = env.step("click[b0zebra001]")
    assert obs == (f"Instruction: [SEP] {instr} [SEP] Back to Search [SEP] < Prev [SEP] Zebra Pattern Yoga Mat "
                   "[SEP] Price: $100.0 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now")
    assert info["available_actions"]["clickables"] == [
        "back to search", "< prev", "description", "features", "reviews", "buy now"]
    for sub in ("description", "features", "reviews"):  # empty description, no bullets, no reviews
        obs, *_ , info = env.step(f"click[{sub}]")
        assert obs == f"Instruction: [SEP] {instr} [SEP] Back to Search [SEP] < Prev"
        assert info["available_actions"]["clickables"] == ["back to search", "< prev"]
        env.step("click[< prev]")


def test_blank_bullets_and_text_nodes(env: WebShopEnv) -> None:
    _start(env, "B0TEA00001")
    env.step("search[leafy organic green tea]")
    obs, *_ , info = env.step("click[b0tea00001]")
    assert " [SEP] < Prev [SEP] flavor name [SEP] mint [SEP] lemon [SEP] style [SEP] mint [SEP] loose [SEP] Leafy Organic" in obs
    assert "Price: $12.99 to $15.99" in obs
    assert info["available_actions"]["clickables"][-3:] == ["mint", "lemon", "loose"]
    obs, *_ = env.step("click[features]")
    assert obs.endswith("< Prev [SEP] Gluten free [SEP]  [SEP] ")
    env.step("click[< prev]")
    obs, *_ = env.step("click[description]")
    assert obs.endswith("< Prev [SEP] Organic green tea.  Caffeine  free? No.")


def test_newline_description_makes_no_segment(env: WebShopEnv) -> None:
    _start(env, "B0ZEBRA001")
    env.step("search[grand leather sofa]")
    env.step("click[b0luxe0001]")
    obs, *_ = env.step("click[description]")
    assert obs.endswith("[SEP] Back to Search [SEP] < Prev")


def test_paging(env: WebShopEnv) -> None:
    _start(env, "B0SHOE0005")
    obs, *_ = env.step("search[stride runner running shoes]")
    assert "Page 1 (Total results: 23) [SEP] Next > [SEP] " in obs and obs.count("B0SHOE") == 10
    obs, *_ , info = env.step("click[next >]")
    assert "Page 2 (Total results: 23) [SEP] < Prev [SEP] Next > [SEP]" in obs
    assert info["available_actions"]["clickables"][:3] == ["back to search", "< prev", "next >"]
    env.step("click[next >]")
    obs, *_ = env.step("click[next >]")
    assert obs.endswith("Page 4 (Total results: 23) [SEP] < Prev [SEP] Next >")  # past the end: empty, Next > kept
    obs, *_ = env.step("click[< prev]")
    assert "Page 3 (Total results: 23)" in obs and obs.count("B0SHOE") == 3


def test_options_and_buy(env: WebShopEnv) -> None:
    _start(env, "B0SHOE0007")
    env.step("search[stride runner 7 running shoes]")
    obs, *_ = env.step("click[b0shoe0007]")
    env.step("click[navy blue]")
    env.step("click[9]")
    obs, *_ = env.step("click[description]")
    env.step("click[< prev]")  # sub-page -> item page keeps options
    obs, reward, term, trunc, info = env.step("click[buy now]")
    assert term and not trunc and reward == 1.0
    assert obs == ('Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk '
                   'interface.) [SEP] Purchased [SEP] asin [SEP] B0SHOE0007 [SEP] options [SEP] '
                   '{"color": "navy blue", "size": "9"} [SEP] attrs [SEP] None [SEP] category [SEP] None [SEP] '
                   'query [SEP] None [SEP] product category [SEP] None [SEP] Target [SEP] asin [SEP] options '
                   '[SEP] attrs [SEP] price upper [SEP] instuction text [SEP] category [SEP] product category '
                   '[SEP] query [SEP] Goal [SEP] None [SEP] Reward [SEP] Your score (min 0.0, max 1.0) [SEP] '
                   '1.0 [SEP] Reward Details [SEP] None')
    assert info["available_actions"] == {"has_search_bar": False, "clickables": []}
    assert info["reward_info"]["r_type"] == 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step("click[buy now]")


def test_item_prev_resets_options_and_wrong_option_lowers_reward(env: WebShopEnv) -> None:
    _start(env, "B0SHOE0007")
    env.step("search[stride runner 7 running shoes]")
    env.step("click[b0shoe0007]")
    env.step("click[navy blue]")
    env.step("click[< prev]")
    env.step("click[b0shoe0007]")
    env.step("click[9]")
    *_, info = env.step("click[buy now]")
    assert info["reward_info"]["r_option"] == 0.5
    assert '{"size": "9"}' in env._render(env.page())


def test_duplicate_option_value_sets_later_group(env: WebShopEnv) -> None:
    _start(env, "B0TEA00001")
    env.step("search[leafy organic green tea]")
    env.step("click[b0tea00001]")
    env.step("click[mint]")
    assert env.page().options == {"style": "mint"}


@pytest.mark.parametrize(
    "action",
    ["search[]", "click[]", "click [next >]", "Click[next >]", "search[a[b]c]", "click[unknown]",
     "click[b0zebra001]", "buy", "", "click[buy now]"],
)
def test_invalid_actions_change_nothing(env: WebShopEnv, action: str) -> None:
    _start(env, "B0SHOE0005")
    before, *_ = env.step("search[stride runner running shoes]")
    state = env.get_state()
    obs, reward, term, trunc, info = env.step(action)
    assert (obs, reward, term, info["invalid_action"]) == (before, 0.0, False, True)
    assert json.loads(env.get_state().split(b',"crc"')[0] + b"}")["st"] == json.loads(state.split(b',"crc"')[0] + b"}")["st"] + 1


def test_click_search_on_start_page_is_a_no_op(env: WebShopEnv) -> None:
    before, _ = _start(env, "B0ZEBRA001")
    obs, reward, *_ , info = env.step("click[search]")
    assert obs == before and info["invalid_action"]


def test_action_parsing_quirks(env: WebShopEnv) -> None:
    _start(env, "B0ZEBRA001")
    env.step("search[zebra]")
    env.step("click[B0ZEBRA001]")  # the argument is lower-cased
    obs, reward, term, *_ = env.step("click[buy now] and then some")  # prefix match
    assert term
    _start(env, "B0ZEBRA001")
    obs, *_ = env.step("search[ ]")
    assert "Page 1 (Total results: 0) [SEP] Next >" in obs
    env.step("search[zebra]")
    env.step("click[b0zebra001]")
    obs, *_ = env.step("search[leafy tea]")  # search works from an item page
    assert "B0TEA00001" in obs


def _regex_parse(action: str) -> tuple[str, str | None]:
    m = ACTION_RE.match(action)
    return (action, None) if m is None else (m.group(1), m.group(2).lower())


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="[]x\nK \r", max_size=14))
def test_parse_action_equals_webshops_regex(action: str) -> None:
    assert parse_action(action) == _regex_parse(action)


@pytest.mark.parametrize(
    "action",
    ["click[buy now] and then some", "search[a[b]c]", "a[[b]]", "x[y]z]", "[a]", "a[]", "a[b]\nc[d]",
     "a\nb[c]", "a[b\n]", "Search[Red Shoes]", "a[b]]", "[[b]", "ab[c][d]"],
)
def test_parse_action_quirks_equal_the_regex(action: str) -> None:
    assert parse_action(action) == _regex_parse(action)


def test_parse_action_is_linear_on_backtracking_input() -> None:
    # The regex takes seconds on 80 kB of "x["; 1 MB here finishes at once (bench/parse_action.py).
    action = "x[" * 500_000
    assert parse_action(action) == (action, None)
    # The argument cannot be empty, so the name ends at the second-to-last "[".
    assert parse_action(action + "]") == ("x[" * 499_998 + "x", "x[")
    long_ok = "x[" * 500_000 + "y]"
    assert parse_action(long_ok) == ("x[" * 499_999 + "x", "y")


def test_actions_over_the_limit_are_invalid_no_ops(env: WebShopEnv) -> None:
    _start(env, "B0SHOE0005")
    before, *_ = env.step("search[stride runner running shoes]")
    assert env.action_space.max_length == MAX_ACTION_CHARS
    at_limit = "search[" + "a" * (MAX_ACTION_CHARS - 8) + "]"
    assert len(at_limit) == MAX_ACTION_CHARS and env.action_space.contains(at_limit)
    over = "click[next >]" + " " * (MAX_ACTION_CHARS + 1 - len("click[next >]"))
    assert not env.action_space.contains(over)
    state = json.loads(env.get_state().split(b',"crc"')[0] + b"}")
    obs, reward, term, trunc, info = env.step(over)
    assert (obs, reward, term, info["invalid_action"]) == (before, 0.0, False, True)
    after = json.loads(env.get_state().split(b',"crc"')[0] + b"}")
    assert after == {**state, "st": state["st"] + 1}
    obs, *_, info = env.step(at_limit)
    assert not info["invalid_action"] and "Total results: 0" in obs


def test_back_to_search_resets(env: WebShopEnv) -> None:
    start, _ = _start(env, "B0ZEBRA001")
    env.step("search[zebra]")
    env.step("click[b0zebra001]")
    obs, *_ = env.step("click[back to search]")
    assert obs == start


def test_truncation(tiny_shop: Shop) -> None:
    env = WebShopEnv(shop=tiny_shop, max_steps=3)
    env.reset(seed=1)
    assert env.step("search[zebra]")[3] is False
    assert env.step("click[next >]")[3] is False
    obs, reward, term, trunc, info = env.step("click[next >]")
    assert trunc and not term and reward == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step("click[next >]")


def test_reset_options(tiny_shop: Shop) -> None:
    env = WebShopEnv(shop=tiny_shop)
    assert env.reset(seed=4)[0] == env.reset(seed=4)[0]
    goal = dict(tiny_shop.goals[0], instruction_text="buy anything")
    obs, info = env.reset(options={"goal": goal})
    assert "buy anything" in obs and info["goal_idx"] is None
    test_ids = set(env.split_goal_indices("test"))
    assert env.reset(seed=0, options={"split": "test"})[1]["goal_idx"] in test_ids
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"goal_idx": 10_000})
    with pytest.raises(ValueError, match="lacks"):
        env.reset(options={"goal": {"asin": "x"}})
    with pytest.raises(ValueError, match="unknown split"):
        env.reset(options={"split": "nope"})
    with pytest.raises(ValueError, match="observation_mode"):
        WebShopEnv(shop=tiny_shop, observation_mode="url")


def test_text_rich_and_html_modes(tiny_shop: Shop) -> None:
    env = WebShopEnv(shop=tiny_shop, observation_mode="text_rich")
    env.reset(options={"goal_idx": _goal_idx(tiny_shop, "B0TEA00001")})
    env.step("search[leafy organic green tea]")
    env.step("click[b0tea00001]")
    obs, *_ = env.step("click[lemon]")
    assert obs.startswith("You have clicked lemon.\n") and "[button] Buy Now [button_]" in obs
    html_env = WebShopEnv(shop=tiny_shop, observation_mode="html")
    html_env.reset(options={"goal_idx": 0})
    obs, *_ = html_env.step("search[zebra]")
    assert 'value="click[b0zebra001]"' in obs and "<form" in obs


def test_gymnasium_contract(tiny_shop: Shop) -> None:
    check_env(WebShopEnv(shop=tiny_shop), skip_render_check=True)
    env = gym.make("WebShop-v0", shop=tiny_shop)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and "clickables" in info["available_actions"]


# ----------------------------------------------------------------------------- save / restore
def test_state_is_small_and_restores_into_fresh_env(tiny_shop: Shop) -> None:
    env = WebShopEnv(shop=tiny_shop)
    env.reset(options={"goal_idx": _goal_idx(tiny_shop, "B0SHOE0007")})
    env.step("search[stride runner running shoes]")
    env.step("click[next >]")
    first_on_page_2 = next(c for c in env._clickables if c.startswith("b0shoe"))
    obs, *_ = env.step(f"click[{first_on_page_2}]")
    obs, *_ = env.step("click[navy blue]")
    state = env.get_state()
    assert len(state) < 2048
    fresh = WebShopEnv(shop=Shop.load(tiny_shop.catalog.data_dir, tagger_backend="heuristic"))
    assert fresh.set_state(state)[0] == obs


def _play(env: WebShopEnv, actions: list[str]) -> list[tuple]:
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc, info["available_actions"]["clickables"]))
        if term or trunc:
            break
    return out


ACTIONS = st.lists(
    st.one_of(
        st.sampled_from(["search[running shoes]", "search[zebra]", "search[green tea]", "search[sofa leather]",
                         "search[]", "click[bogus]"]),
        st.integers(min_value=0, max_value=30).map(lambda i: f"@{i}"),
    ),
    min_size=1, max_size=14,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=ACTIONS, suffix=ACTIONS, goal=st.integers(min_value=0, max_value=24))
def test_restore_then_replay_equals_straight_play(tiny_shop: Shop, prefix: list[str], suffix: list[str], goal: int) -> None:
    """Play prefix+suffix straight; separately play prefix, save, restore into a fresh env, play suffix."""
    def resolve(env: WebShopEnv, a: str) -> str:
        if a.startswith("@"):  # pick the i-th valid click on the current page
            valid = [c for c in env._clickables if c != "search"]
            return f"click[{valid[int(a[1:]) % len(valid)]}]" if valid else "search[tea]"
        return a

    straight = WebShopEnv(shop=tiny_shop, max_steps=40)
    straight.reset(options={"goal_idx": goal})
    resolved_prefix = []
    for a in prefix:
        ra = resolve(straight, a)
        resolved_prefix.append(ra)
        if _play(straight, [ra])[-1][2]:
            return  # bought during the prefix: nothing to restore into
    state = straight.get_state()
    restored = WebShopEnv(shop=tiny_shop, max_steps=40)
    restored.set_state(state)
    resolved_suffix = []
    for a in suffix:
        ra = resolve(straight, a)
        resolved_suffix.append(ra)
        a_out, b_out = _play(straight, [ra]), _play(restored, [ra])
        assert a_out == b_out
        if a_out[-1][2] or a_out[-1][3]:
            break
    assert straight.get_state() == restored.get_state()


def _with_payload(state: bytes, **changes) -> bytes:
    body = json.loads(state[: state.rfind(b',"crc":')] + b"}")
    body.update(changes)
    raw = json.dumps(body, separators=(",", ":")).encode()
    return raw[:-1] + b',"crc":' + str(zlib.crc32(raw)).encode() + b"}"


def _with_body(body: bytes) -> bytes:
    """A state blob with `body` (ending in "}") as its payload and a correct checksum."""
    assert body.endswith(b"}")
    return body[:-1] + b',"crc":' + str(zlib.crc32(body)).encode() + b"}"


def test_bad_states_are_refused(tiny_shop: Shop) -> None:
    env = WebShopEnv(shop=tiny_shop)
    env.reset(seed=0)
    env.step("search[zebra]")
    state = env.get_state()
    with pytest.raises(StateError, match="another|belongs to catalogue"):
        env.set_state(_with_payload(state, cat="0000000000000000"))
    with pytest.raises(StateError, match="version"):
        env.set_state(_with_payload(state, v=99))
    with pytest.raises(StateError, match="truncated"):
        env.set_state(state[: len(state) // 2])
    corrupted = bytearray(state)
    corrupted[20] = ord("7") if corrupted[20] != ord("7") else ord("8")
    with pytest.raises(StateError, match="corrupted"):
        env.set_state(bytes(corrupted))
    with pytest.raises(StateError, match="res"):
        env.set_state(_with_payload(state, res=[10**9]))
    for bad in ({"pn": -1}, {"pn": 0}, {"pn": 10**9}):  # a results page numbered 0 or below would wrap around
        with pytest.raises(StateError, match="pn"):
            env.set_state(_with_payload(state, **bad))
    with pytest.raises(StateError, match="st"):
        env.set_state(_with_payload(state, st=-2))
    # Pages past the last are reachable ("Next >" is always there), one click each.
    env.set_state(_with_payload(state, pn=7, st=6))
    with pytest.raises(StateError, match="pn"):
        env.set_state(_with_payload(state, pn=8, st=6))
    with pytest.raises(StateError, match="bytes"):
        env.set_state("not bytes")  # type: ignore[arg-type]


def _item_state(shop: Shop, mode: str = "text") -> tuple[WebShopEnv, bytes]:
    """An env on an item page with an option chosen, and its state."""
    env = WebShopEnv(shop=shop, observation_mode=mode)
    env.reset(options={"goal_idx": _goal_idx(shop, "B0SHOE0005")})
    env.step("search[stride runner running shoes]")
    env.step("click[b0shoe0005]")
    env.step("click[navy blue]")
    return env, env.get_state()


def _payload_of(state: bytes) -> dict:
    return json.loads(state[: state.rfind(b',"crc":')] + b"}")


def _inline_goal(shop: Shop, state: bytes, **goal_changes) -> bytes:
    goal = {**shop.goals[_goal_idx(shop, "B0SHOE0005")], **goal_changes}
    goal = {k: v for k, v in goal.items() if v is not _DROP}
    return _with_payload(state, gi=None, goal=goal)


_DROP = object()
_BAD_FIELDS = [
    # field types
    ({"op": ["navy blue"]}, "op"), ({"op": 5}, "op"), ({"op": {"color": 3}}, "op"),
    ({"vis": 123}, "vis"), ({"vis": [1]}, "vis"), ({"vis": ["B0SHOE0005", "B0SHOE0005"]}, "vis"),
    ({"kw": "stride"}, "kw"), ({"kw": [1]}, "kw"), ({"pg": 3}, "pg"), ({"pg": "checkout"}, "pg"),
    ({"gi": True}, "gi"), ({"gi": "0"}, "gi"), ({"gi": -1}, "gi"), ({"gi": 10**6}, "gi"),
    ({"st": 2.5}, "st"), ({"st": "3"}, "st"), ({"st": 10**7}, "st"), ({"st": True}, "st"),
    ({"pn": 1.0}, "pn"), ({"pn": True}, "pn"), ({"pn": 0}, "pn"), ({"pn": 10**9}, "pn"),
    ({"it": "3"}, "it"), ({"it": None}, "it"), ({"it": 10**9}, "it"), ({"it": -1}, "it"),
    ({"res": {"0": 1}}, "res"), ({"res": [True]}, "res"), ({"res": [-1]}, "res"), ({"res": [0, 0]}, "res"),
    ({"res": list(range(20)) * 3}, "res"), ({"res": [1.0]}, "res"),
    # what must exist on the item and in the catalogue
    ({"op": {"color": "purple"}}, "op"), ({"op": {"flavor": "navy blue"}}, "op"), ({"vis": ["B0NOPE0000"]}, "vis"),
    # page consistency
    ({"sub": "Description"}, "sub"), ({"pg": "sub", "sub": None}, "sub"), ({"pg": "sub", "sub": "Specs"}, "sub"),
    ({"pg": "results", "op": {}}, "it"), ({"pg": "results", "it": None}, "op"),
    ({"rw": 0.5}, "rw"), ({"pg": "done"}, "rw"), ({"pg": "done", "rw": "1.0"}, "rw"), ({"pg": "done", "rw": 1}, "rw"),
    ({"pg": "done", "rw": 2.0}, "rw"), ({"pg": "done", "rw": -0.5}, "rw"),
    # the set of fields
    ({"x": 1}, "unknown"), ({"vis": _DROP}, "missing"), ({"goal": {}}, "unknown"), ({"gi": None}, "missing"),
]


@pytest.mark.parametrize("mode", ["text", "text_rich"])
@pytest.mark.parametrize(("changes", "match"), _BAD_FIELDS, ids=[repr(c)[:60] for c, _ in _BAD_FIELDS])
def test_refused_state_leaves_the_env_exactly_as_it_was(tiny_shop: Shop, mode: str, changes: dict, match: str) -> None:
    env, item_state = _item_state(tiny_shop, mode)
    env.reset(options={"goal_idx": 3})
    env.step("search[zebra]")
    env.step("click[next >]")
    before = env.get_state()
    body = {k: v for k, v in {**_payload_of(item_state), **changes}.items() if v is not _DROP}
    with pytest.raises(StateError, match=match):
        env.set_state(_with_body(json.dumps(body, separators=(",", ":")).encode()))
    assert env.get_state() == before
    twin = WebShopEnv(shop=tiny_shop, observation_mode=mode)
    twin.set_state(before)
    assert env.step("click[< prev]") == twin.step("click[< prev]")


@pytest.mark.parametrize(
    ("goal_changes", "match"),
    [({"instruction_text": 5}, "strings"), ({"asin": 7}, "strings"), ({"attributes": []}, "attributes"),
     ({"attributes": "red"}, "attributes"), ({"goal_options": 5}, "goal_options"),
     ({"goal_options": {"size": 9}}, "goal_options"), ({"price_upper": "10"}, "price_upper"),
     ({"price_upper": True}, "price_upper"), ({"name": _DROP}, "lacks"), ({"query": None}, "strings")],
)
def test_inline_goals_are_validated(tiny_shop: Shop, goal_changes: dict, match: str) -> None:
    env, state = _item_state(tiny_shop, "text_rich")
    good = _inline_goal(tiny_shop, state)
    assert env.set_state(good)[0] == WebShopEnv(shop=tiny_shop, observation_mode="text_rich").set_state(state)[0]
    before = env.get_state()
    with pytest.raises(StateError, match=match):
        env.set_state(_inline_goal(tiny_shop, state, **goal_changes))
    assert env.get_state() == before
    with pytest.raises(ValueError, match=match):  # reset takes the same goals
        env.reset(options={"goal": {**tiny_shop.goals[0], **goal_changes}} if goal_changes != {"name": _DROP}
                  else {"goal": {k: v for k, v in tiny_shop.goals[0].items() if k != "name"}})


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"v":1,"cat":"\xff\xfe"}', "UTF-8"),
        (b'{"v":1,"cat":}', "JSON"),
        (b'{"v":1,"cat":"x",}', "JSON"),
        (b'{"v":1,"x":NaN}', "NaN"),
        (b'{"v":1,"x":Infinity}', "Infinity"),
    ],
)
def test_decode_errors_are_state_errors(tiny_shop: Shop, body: bytes, match: str) -> None:
    env, state = _item_state(tiny_shop)
    with pytest.raises(StateError, match=match):
        env.set_state(_with_body(body))
    assert env.get_state() == state


def test_deeply_nested_json_is_a_state_error(tiny_shop: Shop) -> None:
    env, state = _item_state(tiny_shop)
    body = b'{"v":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(StateError, match="RecursionError"):
        env.set_state(_with_body(body))
    assert env.get_state() == state


def test_oversized_states_are_refused(tiny_shop: Shop) -> None:
    env, state = _item_state(tiny_shop)
    for blob in (_with_payload(state, res=list(range(5_000_000))), state + b" " * 50_000_000):
        with pytest.raises(StateError, match="bytes"):
            env.set_state(blob)
    with pytest.raises(StateError, match="checksum"):
        env.set_state(state[: state.rfind(b":") + 1] + b"9" * 5000 + b"}")
    assert env.get_state() == state


def test_state_from_another_catalogue_is_refused(tiny_shop: Shop, tmp_path) -> None:
    from tests.conftest import write_tiny_catalog

    other_dir = write_tiny_catalog(tmp_path / "other")
    (other_dir / "items_ins_v2.json").write_text("{}")
    other = WebShopEnv(shop=Shop.load(other_dir, tagger_backend="heuristic"))
    other.reset(seed=0)
    env = WebShopEnv(shop=tiny_shop)
    with pytest.raises(StateError, match="catalogue"):
        env.set_state(other.get_state())
