"""Students and adapters as MLflow Models: pyfuncs from code whose `predict` takes contexts, the
aliases (`@candidate`, `@champion`, `@best-<quadrant>`), and the student loaded from `models:/` URIs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points.cli import PhaseError
from entry_points.lm_registry import ADAPTER_MODEL, STUDENT_MODEL, log_student, set_alias
from entry_points.runs import PHASE_TAG, setup_tracking
from entry_points.upstream import register_folder, resolve_model
from teachable.label.quadrant import QUADRANTS
from teachable.policy.lm import LMPolicy
from teachable.prompting import context_from_env
from webshop_env.env import WebShopEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def contexts_frame(shop) -> pd.DataFrame:
    """Two real contexts as rows: a goal's search page and the results page of its query."""
    env = WebShopEnv(shop)
    obs, info = env.reset(options={"goal_idx": 0})
    search = context_from_env(env, obs, info)
    action = f"search[{env.instruction_text}]"
    obs, *_, info = env.step(action)
    results = context_from_env(env, obs, info, (action,))
    return pd.DataFrame([{"instruction": c.instruction, "observation": c.observation,
                          "valid_actions": list(c.valid_actions), "has_search_bar": c.has_search_bar,
                          "history": list(c.history)} for c in (search, results)])


def check_answer(out: pd.DataFrame, frame: pd.DataFrame, greedy: bool = True) -> None:
    """A written query on the search page (the distribution there is the greedy query's, see
    `LMPolicy.action_distribution`), a valid click with its distribution on the results page."""
    assert list(out.columns) == ["action", "distribution"] and len(out) == len(frame)
    (query, p), = out["distribution"][0].items()
    assert out["action"][0].startswith("search[") and query.startswith("search[") and p == 1.0
    assert not greedy or out["action"][0] == query
    assert out["action"][1] in frame["valid_actions"][1]
    dist = out["distribution"][1]
    assert set(dist) == set(frame["valid_actions"][1]) and sum(dist.values()) == pytest.approx(1.0)


def test_the_student_phase_registers_a_pyfunc_as_candidate(mlflow_store: str, small_data_dir: Path,
                                                           small_shop) -> None:
    from entry_points import promote, student

    student.main(["--data_dir", str(small_data_dir), "--n_train_goals", "10", "--search_goals", "20", "--epochs", "1",
                  "--train_batch_size", "8", "--vocab_size", "400", "--hidden_size", "32", "--num_layers", "2",
                  "--num_heads", "2", "--eval_goals", "3", "--max_steps", "6", "--max_observation_chars", "400"])
    client = MlflowClient()
    version = client.get_model_version_by_alias(STUDENT_MODEL, "candidate")
    run = client.get_run(version.run_id)
    assert run.data.tags[PHASE_TAG] == "student" and version.tags["kind"] == "trained"
    assert run.data.tags["registered_model"] == f"models:/{STUDENT_MODEL}/{version.version}"

    model = mlflow.pyfunc.load_model(f"models:/{STUDENT_MODEL}@candidate")
    assert model.metadata.get_input_schema().input_names()[:3] == ["instruction", "observation", "valid_actions"]
    frame = contexts_frame(small_shop)
    check_answer(model.predict(frame), frame)
    check_answer(model.predict(frame, params={"greedy": False, "seed": 3}), frame, greedy=False)

    # the phases' student reference: the alias, the version and the run all give the student folder
    folder = Path(resolve_model(f"models:/{STUDENT_MODEL}@candidate", "student"))
    assert folder == Path(resolve_model(f"models:/{STUDENT_MODEL}/{version.version}", "student"))
    assert (folder / "config.json").is_file() and not (folder / "MLmodel").exists()
    assert (Path(resolve_model("latest", "student")) / "config.json").is_file()
    (dist,) = LMPolicy.from_pretrained(str(folder), device="cpu").action_distribution(
        [context_from_env(*_results_page(small_shop))])
    assert sum(dist.values()) == pytest.approx(1.0)

    # promote: the candidate becomes champion only in its competence band; a version on request
    promote.main(["--model", "student"])
    champion = client.get_registered_model(STUDENT_MODEL).aliases.get("champion")
    assert champion == (int(version.version) if version.tags["competence"] == "in_band" else None)
    promote.main(["--model", "student", "--version", str(version.version)])
    assert str(client.get_model_version_by_alias(STUDENT_MODEL, "champion").version) == str(version.version)
    promotions = mlflow.search_runs(filter_string="tags.`teachable.phase` = 'promote'", output_format="list")
    assert len(promotions) == 2 and all("candidate_heldout_success" in r.data.metrics for r in promotions)


def _results_page(shop):
    env = WebShopEnv(shop)
    env.reset(options={"goal_idx": 1})
    obs, *_, info = env.step(f"search[{env.instruction_text}]")
    return env, obs, info


def student_run(folder: str) -> str:
    """A finished student run holding `folder` as its artifact and its registered pyfunc."""
    with mlflow.start_run(run_name="student") as run:
        mlflow.set_tag(PHASE_TAG, "student")
        mlflow.log_artifacts(folder, "model")
        log_student(Path(folder), tags={"kind": "trained", "competence": "in_band"})
    return run.info.run_id


def test_adapters_are_pyfuncs_on_a_referenced_base_and_evaluate_names_the_best(
        pred_store: dict, small_data_dir: Path, tiny_student: str, labeled_records: list, small_shop) -> None:
    from entry_points import evaluate, train_matrix

    setup_tracking()
    base_run = student_run(tiny_student)
    quadrant, _ = Counter(r.quadrant for r in labeled_records).most_common(1)[0]
    cells = [f"{quadrant}__demo", f"{quadrant}__hint"]
    train_matrix.main(["--student", base_run, "--label_run", pred_store["label_run"], "--cells", ",".join(cells),
                       "--examples_per_cell", "4", "--train_steps", "2", "--train_batch_size", "4"])
    client = MlflowClient()
    versions = {v.tags["cell"]: v for v in client.search_model_versions(f"name='{ADAPTER_MODEL}'")}
    assert set(versions) == set(cells)
    assert all(v.tags["base"] == f"runs:/{base_run}/model" for v in versions.values())  # referenced, not copied
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{ADAPTER_MODEL}/{versions[cells[0]].version}"))
    assert (local / "MLmodel").is_file() and (local / "artifacts" / "adapter" / "adapter_config.json").is_file()
    assert not list(local.rglob("model.safetensors"))

    evaluate.main(["--data_dir", str(small_data_dir), "--heldout_goals", "2", "--failure_snapshots", "4",
                   "--retention_goals", "0", "--episodes_per_item", "1", "--max_steps", "6", "--n_boot", "20"])
    alias = f"best-{quadrant}"
    best = client.get_model_version_by_alias(ADAPTER_MODEL, alias)
    ev = mlflow.search_runs(filter_string="tags.`teachable.phase` = 'evaluate'", output_format="list")[0]
    assert ev.data.tags[f"best.{quadrant}"].startswith(best.tags["cell"])
    gains = {c: ev.data.metrics[f"failures_success_gain/{c}"] for c in cells}
    assert gains[best.tags["cell"]] == max(gains.values())

    model = mlflow.pyfunc.load_model(f"models:/{ADAPTER_MODEL}@{alias}")
    frame = contexts_frame(small_shop)
    check_answer(model.predict(frame), frame)
    adapter = Path(resolve_model(f"models:/{ADAPTER_MODEL}@{alias}", "adapter", phase="train_matrix_cell"))
    assert (adapter / "adapter_config.json").is_file()


def test_alias_names_follow_mlflow_rules(mlflow_store: str, tmp_path: Path) -> None:
    setup_tracking()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "model"), "model")
    version = register_folder(ADAPTER_MODEL, run.info.run_id, "model")
    for quadrant in QUADRANTS:
        set_alias(ADAPTER_MODEL, f"best-{quadrant}", version)
    assert set(MlflowClient().get_registered_model(ADAPTER_MODEL).aliases) == {f"best-{q}" for q in QUADRANTS}
    for bad in ("v3", "latest", "best Q1"):
        with pytest.raises(PhaseError, match=f"cannot set {ADAPTER_MODEL}@{bad}"):
            set_alias(ADAPTER_MODEL, bad, version)


def test_best_per_quadrant_takes_the_largest_failure_gain() -> None:
    from teachable.teach import best_per_quadrant

    cells = {"Q1_highU_highL__demo": {"quadrant": "Q1_highU_highL"}, "Q1_highU_highL__hint": {"quadrant": "Q1_highU_highL"},
             "Q2_highU_lowL__demo": {"quadrant": "Q2_highU_lowL"}, "B2_all": {"quadrant": None}}
    gains = [{"set": "failures", "model": "Q1_highU_highL__demo", "success_gain": 0.1},
             {"set": "failures", "model": "Q1_highU_highL__hint", "success_gain": 0.3},
             {"set": "heldout", "model": "Q1_highU_highL__demo", "success_gain": 0.9},
             {"set": "failures", "model": "Q2_highU_lowL__demo", "success_gain": float("nan")},
             {"set": "failures", "model": "B2_all", "success_gain": 0.5}]
    assert best_per_quadrant(gains, cells) == {"Q1_highU_highL": ("Q1_highU_highL__hint", 0.3)}
