"""Helpers for the web, explorer and browser tests: labels made by the real labeling code, a
server in a thread, and a headless Chromium driven by Selenium (with screenshots on failure)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"


def label_run_records(shop, out: Path, n_snapshots: int = 10) -> Path:
    """Label failure snapshots of random play with the real pipeline; return the JSONL file.

    A random student, the expert, the offline teacher and few branch rollouts keep it to a second
    or two on the small catalogue; quadrants come from `finalize`, as in a label run.
    """
    from teachable.label.labeling import LabelConfig, finalize, label_snapshots
    from teachable.mining import mine_failures
    from teachable.policy import RandomPolicy
    from teachable.policy.expert import ExpertPolicy
    from teachable.policy.teacher.offline import OfflineTeacher
    from teachable.records import write_jsonl
    from teachable.rollouts import goal_specs, run_episodes

    trajs = run_episodes(shop, RandomPolicy(), goal_specs(range(0, 60, 4), seed=5), max_steps=8, batch_size=16)
    snaps, _ = mine_failures(trajs, offsets=(1, 2), include_search_steps=False)
    config = LabelConfig(n_min=4, n_max=4, rollout_batch=4, max_steps=8)
    records, _ = label_snapshots(snaps[:n_snapshots], shop=shop, student=RandomPolicy(), expert=ExpertPolicy(shop),
                                 teacher=OfflineTeacher(shop), config=config, work_file=out / "work.jsonl",
                                 show_progress=False)
    final, _ = finalize(records, config)
    path = out / "labeled_snapshots.jsonl"
    write_jsonl(path, final)
    return path


def expert_actions(shop, goal_idx: int) -> list[str]:
    """The expert's actions on a goal, to the purchase (played by the one rollout loop)."""
    from teachable.policy.expert import ExpertPolicy
    from teachable.rollouts import goal_specs, run_episodes

    (trajectory,) = run_episodes(shop, ExpertPolicy(shop), goal_specs([goal_idx], seed=0))
    return [step.action for step in trajectory.steps]


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread; yield its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def free_port() -> int:
    """A loopback port free right now (the OS's choice)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) from `$CHROMIUM_BIN` / `$CHROMEDRIVER_BIN` or PATH, or None."""
    chromium = os.environ.get("CHROMIUM_BIN") or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which(CHROMEDRIVER)
    found = all(p and Path(p).is_file() for p in (chromium, driver))
    return (chromium, driver) if found else None


def require_browser() -> tuple[str, str]:
    """The browser's paths; skips without one, or fails when `TEACHABLE_REQUIRE_BROWSER=1` (CI)."""
    paths = browser_paths()
    if paths is None:
        reason = ("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; "
                  "or set CHROMIUM_BIN and CHROMEDRIVER_BIN)")
        if os.environ.get("TEACHABLE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TEACHABLE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return paths


def chromium_driver(chromium: str, chromedriver: str):
    """A headless Chromium under Selenium, with the given binaries (no Selenium Manager download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    return driver


def artifacts_dir(test_name: str) -> Path:
    """Where a failing browser test leaves its screenshot and page source."""
    root = Path(os.environ.get("TEACHABLE_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in test_name)
    return root / safe


@contextlib.contextmanager
def artifacts_on_failure(driver, test_name: str) -> Iterator[None]:
    """On any failure inside the block, save a screenshot and the page source, then re-raise."""
    try:
        yield
    except BaseException:
        out = artifacts_dir(test_name)
        out.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(out / "screenshot.png"))
            (out / "page.html").write_text(driver.page_source, encoding="utf-8")
            (out / "url.txt").write_text(driver.current_url)
        print(f"browser artifacts of {test_name}: {out}")
        raise


def click_and_wait(driver, element, timeout: float = 20.0) -> None:
    """Click an element that loads a new page and wait until the old page is gone and the new one loaded.

    The old page is marked with a window property before the click; the new page is there when
    the property is gone and the document is complete. While the browser swaps documents, a
    query can fail with a transient error (a stale node, "does not belong to the document", a
    script run during navigation): such a poll counts as "not yet", and only the timeout fails.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__teachable_old_page = true;")
    element.click()

    def loaded(d) -> bool:
        try:
            return bool(d.execute_script(
                "return window.__teachable_old_page === undefined && document.readyState === 'complete';"))
        except WebDriverException:
            return False

    WebDriverWait(driver, timeout).until(loaded, message="the clicked page did not load")
