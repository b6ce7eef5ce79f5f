"""The shop and the explorer in a real browser: headless Chromium driven by Selenium.

Needs Debian's `chromium` and `chromium-driver` (or `CHROMIUM_BIN` / `CHROMEDRIVER_BIN`); the
tests skip without them, and fail instead when `TEACHABLE_REQUIRE_BROWSER=1` (as in CI). A
failing test leaves a screenshot and the page source under `test-artifacts/<test>/` (or
`$TEACHABLE_TEST_ARTIFACTS`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from teachable.explorer import SnapshotTable, create_explorer_app
from teachable.records import LabeledSnapshot, read_jsonl
from tests.webtools import (
    artifacts_on_failure,
    chromium_driver,
    click_and_wait,
    expert_actions,
    label_run_records,
    require_browser,
    serving,
)
from webshop_env.env import WebShopEnv
from webshop_env.web import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def driver():
    chromium, chromedriver = require_browser()
    d = chromium_driver(chromium, chromedriver)
    yield d
    d.quit()


def click_action(driver, action: str) -> None:
    """Press the button that posts `action` (compared as text, so any label works)."""
    from selenium.webdriver.common.by import By

    buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, "button[name=action]") if b.get_attribute("value") == action]
    assert buttons, f"no button for {action} on {driver.current_url}"
    click_and_wait(driver, buttons[0])


def shop_goal(small_shop) -> tuple[int, list[str]]:
    """A train goal with options whose expert path pages, opens an item and picks options."""
    for g in small_shop.split_goal_indices("train"):
        if small_shop.goals[g]["goal_options"]:
            actions = expert_actions(small_shop, g)
            if actions[-1] == "click[buy now]" and sum(a.startswith("click[") for a in actions) >= 3:
                return g, actions
    raise AssertionError("no goal with options in the small catalogue")


def test_shop_a_goal_to_the_end(driver, small_shop, request) -> None:
    from selenium.webdriver.common.by import By

    goal, actions = shop_goal(small_shop)
    env = WebShopEnv(shop=small_shop)
    env.reset(options={"goal_idx": goal})
    for a in actions:
        _, reward, done, _, info = env.step(a)
    assert done
    with serving(create_app(small_shop, seed=0)) as base, artifacts_on_failure(driver, request.node.name):
        driver.get(base + "/")
        driver.find_element(By.ID, "goal_idx").send_keys(str(goal))
        click_and_wait(driver, driver.find_element(By.ID, "start-goal"))
        assert small_shop.goals[goal]["instruction_text"] in driver.find_element(By.ID, "instruction-text").text
        for i, a in enumerate(actions):
            if a.startswith("search["):
                box = driver.find_element(By.ID, "search_input")
                box.clear()
                box.send_keys(a[len("search["):-1])
                click_action(driver, "search")
            else:
                click_action(driver, a)
            assert driver.find_element(By.ID, "steps").text == str(i + 1)
        panel = driver.find_element(By.ID, "reward")
        assert float(panel.get_attribute("data-reward")) == reward
        assert driver.find_element(By.ID, "reward-value").text == f"{reward:.4f}"
        shown = {row.get_attribute("data-key") for row in driver.find_elements(By.CSS_SELECTOR, "#reward-components tr[data-key]")}
        assert shown == set(info["reward_info"])
        assert "Thank you for shopping with us!" in driver.page_source


def test_explore_filter_open_and_replay(driver, small_shop, tmp_path: Path, request) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path = label_run_records(small_shop, tmp_path)
    records = {r.snapshot_id: r for r in read_jsonl(path, LabeledSnapshot)}
    quadrant = min({r.quadrant for r in records.values()})
    want = {i for i, r in records.items() if r.quadrant == quadrant}
    assert 0 < len(want) < len(records)
    app = create_explorer_app(SnapshotTable.from_jsonl(path), small_shop, run_id="a" * 32,
                              run_url="http://127.0.0.1:5000/#/experiments/1/runs/" + "a" * 32)
    with serving(app) as base, artifacts_on_failure(driver, request.node.name):
        driver.get(base + "/")
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.snapshot-row")) == len(records)
        Select(driver.find_element(By.ID, "filter-quadrant")).select_by_value(quadrant)
        Select(driver.find_element(By.ID, "sort")).select_by_value("U")
        click_and_wait(driver, driver.find_element(By.ID, "apply"))
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.snapshot-row")
        assert {row.get_attribute("data-id") for row in rows} == want
        assert {row.get_attribute("data-quadrant") for row in rows} == {quadrant}
        click_and_wait(driver, rows[0].find_element(By.CSS_SELECTOR, "a.snapshot-link"))
        r = records[driver.find_element(By.ID, "snapshot-id").text]
        assert r.quadrant == quadrant
        assert driver.find_element(By.ID, "instruction").text == r.goal["instruction_text"]
        assert driver.find_element(By.ID, "observation").get_attribute("textContent") == r.observation
        if r.teacher:
            assert driver.find_element(By.ID, "teacher-action").text == r.teacher["action"]
        for row in driver.find_elements(By.CSS_SELECTOR, "#conditions tr.condition"):
            c = r.conditions[row.get_attribute("data-condition")]
            assert row.find_element(By.CSS_SELECTOR, "td.rate").text == f"{c['p']:.3f}"
        assert len(driver.find_elements(By.CSS_SELECTOR, "#conditions tr.condition")) == len(r.conditions)
        assert driver.find_element(By.ID, "mlflow-link").get_attribute("href").endswith("/runs/" + "a" * 32)
        replay = driver.find_element(By.ID, "replay")  # a button posting a form: a GET never makes a session
        form = replay.find_element(By.XPATH, "./ancestor::form")
        assert replay.tag_name == "button" and form.get_attribute("method") == "post"
        click_and_wait(driver, replay)
        assert driver.current_url.endswith("/shop/play")
        assert driver.find_element(By.ID, "text-observation").get_attribute("textContent") == r.observation
        if r.valid_actions:
            click_action(driver, r.valid_actions[0])
            assert driver.find_element(By.ID, "steps").text == str(r.step_index + 1)
        click_and_wait(driver, driver.find_element(By.ID, "back-link"))
        assert driver.find_element(By.ID, "snapshot-id").text == r.snapshot_id
