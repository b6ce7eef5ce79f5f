"""The runs in MLflow's own UI: `mlflow ui` on a store made by a tiny pipeline (real rollouts ->
mine -> label runs, a registered student, two matrix cells, evaluate), opened in headless Chromium
through the links the project prints (`entry_points.runs.ui_url`).

Needs Debian's `chromium` and `chromium-driver` like tests/test_browser.py (skips without them,
fails with `TEACHABLE_REQUIRE_BROWSER=1`); the test starts and stops the server itself. A failing
step leaves a screenshot and the page under `test-artifacts/<test>/`.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from entry_points.lm_registry import ADAPTER_MODEL, STUDENT_MODEL, set_alias
from entry_points.runs import setup_tracking, ui_url
from tests.test_lm_models import student_run
from tests.webtools import artifacts_on_failure, chromium_driver, free_port, require_browser

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
PAGE_TIMEOUT = 90.0  # the first page of a fresh server compiles nothing, but a loaded 2-core CI box is slow


@contextlib.contextmanager
def mlflow_ui(store_uri: str, log: Path) -> Iterator[str]:
    """`mlflow ui` on `store_uri` on a free loopback port, until the block ends; yields its base URL."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", store_uri,
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"mlflow ui did not answer in 120 s:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_text(driver, *texts: str) -> str:
    """Wait until the page's visible text holds every one of `texts`; return that text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        body = d.find_element(By.TAG_NAME, "body").text
        return body if all(t in body for t in texts) else False

    try:
        return WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.5).until(shown)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        missing = [t for t in texts if t not in body]
        raise AssertionError(f"{driver.current_url} never showed {missing}") from None


def run_link(driver, run_id: str):
    """The link to a run in the runs table, once it is displayed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def displayed(d):
        links = [a for a in d.find_elements(By.CSS_SELECTOR, f"a[href$='/runs/{run_id}']") if a.is_displayed()]
        return links[0] if links else False

    return WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.5).until(displayed)


@pytest.fixture
def pipeline_store(pred_store: dict, small_data_dir: Path, tiny_student: str, labeled_records: list) -> dict:
    """`pred_store`'s real rollouts -> mine -> label runs, then a student registered as
    `@candidate`, train_matrix with two cells of the commonest quadrant and evaluate (which sets
    `teachable-adapter@best-<quadrant>`)."""
    from entry_points import evaluate, train_matrix

    experiment_id = setup_tracking()
    base_run = student_run(tiny_student)
    set_alias(STUDENT_MODEL, "candidate", "1")
    quadrant, _ = Counter(r.quadrant for r in labeled_records).most_common(1)[0]
    cells = [f"{quadrant}__demo", f"{quadrant}__hint"]
    train_matrix.main(["--student", base_run, "--label_run", pred_store["label_run"], "--cells", ",".join(cells),
                       "--examples_per_cell", "4", "--train_steps", "2", "--train_batch_size", "4"])
    evaluate.main(["--data_dir", str(small_data_dir), "--heldout_goals", "2", "--failure_snapshots", "4",
                   "--retention_goals", "0", "--episodes_per_item", "1", "--max_steps", "6", "--n_boot", "20"])
    runs = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list")
    by_phase = {r.data.tags.get("teachable.phase"): r for r in runs}
    matrix = by_phase["train_matrix"].info.run_id
    children = {r.info.run_name: r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == matrix}
    assert set(children) == set(cells)
    return {**pred_store, "experiment_id": experiment_id, "quadrant": quadrant, "matrix": matrix,
            "children": children, "label": by_phase["label"]}


def test_the_mlflow_ui_shows_matrix_cells_aliases_and_dataset_inputs(pipeline_store: dict, tmp_path: Path,
                                                                       request) -> None:
    from selenium.webdriver.common.by import By

    chromium, chromedriver = require_browser()
    store = pipeline_store
    label = store["label"]
    inputs = [(d.dataset.name, d.dataset.digest) for d in label.inputs.dataset_inputs]
    assert inputs, "the label run logged no dataset input"
    alias = f"best-{store['quadrant']}"
    best = MlflowClient().get_model_version_by_alias(ADAPTER_MODEL, alias)

    driver = chromium_driver(chromium, chromedriver)
    try:
        with mlflow_ui(store["uri"], tmp_path / "mlflow_ui.log") as base, artifacts_on_failure(driver, request.node.name):
            # the project's link opens the training runs (not the GenAI overview) ...
            driver.get(ui_url(store["experiment_id"], ui=base))
            text = wait_for_text(driver, "train_matrix", "label", "mine", "rollouts", "evaluate", "student")
            assert "Model registry" in text and "Observability" not in text  # the Model training view's sidebar
            for run_id in store["children"].values():  # nested: hidden until their parent is expanded
                assert not any(a.is_displayed() for a in
                               driver.find_elements(By.CSS_SELECTOR, f"a[href$='/runs/{run_id}']"))
            parent = run_link(driver, store["matrix"])
            parent.find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]//button").click()
            for cell, run_id in store["children"].items():
                assert run_link(driver, run_id).text == cell

            # ... the registered models with their aliases, through the sidebar ...
            driver.find_element(By.LINK_TEXT, "Model registry").click()
            text = wait_for_text(driver, STUDENT_MODEL, ADAPTER_MODEL, "@ candidate", f"@ {alias}")
            assert f"@ {alias}\n: Version {best.version}" in text
            driver.get(f"{base}/#/models/{ADAPTER_MODEL}")
            wait_for_text(driver, f"Version {best.version}", f"@ {alias}", f"cell\n: {best.tags['cell']}")

            # ... and a label run's dataset inputs, by name and digest
            driver.get(ui_url(store["experiment_id"], label.info.run_id, ui=base))
            name, digest = inputs[0]
            wait_for_text(driver, "Datasets", f"{name} ({digest[:10]}")
    finally:
        driver.quit()
