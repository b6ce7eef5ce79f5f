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
    for bad in ({"pn": -1}, {"pn": 0}, {"st": -2}):  # a results page numbered 0 or below would wrap around
        with pytest.raises(StateError, match="pn"):
            env.set_state(_with_payload(state, **bad))
    env.set_state(_with_payload(state, pn=7))  # past the last results page is an empty page, as in WebShop
    with pytest.raises(StateError, match="bytes"):
        env.set_state("not bytes")  # type: ignore[arg-type]


def test_state_from_another_catalogue_is_refused(tiny_shop: Shop, tmp_path) -> None:
    from tests.conftest import write_tiny_catalog

    other_dir = write_tiny_catalog(tmp_path / "other")
    (other_dir / "items_ins_v2.json").write_text("{}")
    other = WebShopEnv(shop=Shop.load(other_dir, tagger_backend="heuristic"))
    other.reset(seed=0)
    env = WebShopEnv(shop=tiny_shop)
    with pytest.raises(StateError, match="catalogue"):
        env.set_state(other.get_state())
