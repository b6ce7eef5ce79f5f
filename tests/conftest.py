"""Shared fixtures: a tiny hand-written catalogue in WebShop's file format, and an isolated cache."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"

SHOE = "Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running"
TEA = "Grocery & Gourmet Food › Beverages › Tea › Green"


def _shoe(i: int) -> dict:
    return {
        "asin": f"B0SHOE{i:04d}",
        "name": f"Stride Runner {i} Running Shoes for Men",
        "full_description": f"Lightweight running shoes number {i}.",
        "small_description": ["Breathable mesh upper", "Rubber sole"],
        "pricing": f"${30 + i}.00",
        "customization_options": {
            "Color": [{"value": "Black/White", "image": None}, {"value": "Navy Blue", "image": None}],
            "Size": [{"value": "8", "image": None}, {"value": "9", "image": None}, {"value": "10", "image": None}],
        },
        "images": [f"https://img.example/shoe{i}.jpg"],
        "category": "fashion",
        "query": "Running Shoes ",
        "product_category": SHOE,
        "brand": "Stride",
    }


def tiny_products() -> list[dict]:
    shoes = [_shoe(i) for i in range(1, 24)]
    specials = [
        {
            "asin": "B0TEA00001",
            "name": "Leafy Organic Green Tea Bags, 100 Count",
            "full_description": "Organic green tea.  Caffeine  free? No.",
            "small_description": ["Gluten free", " ", ""],
            "pricing": "$12.99 - $15.99",
            "customization_options": {
                "Flavor Name": [{"value": "Mint", "image": None}, {"value": "Lemon", "image": None}],
                "Style": [{"value": "Mint", "image": None}, {"value": "Loose", "image": None}],
            },
            "images": [],
            "category": "food",
            "query": "green tea",
            "product_category": TEA,
        },
        {
            "asin": "B0ZEBRA001",
            "name": "Zebra Pattern Yoga Mat",
            "full_description": "",
            "small_description": [],
            "pricing": "",
            "customization_options": None,
            "images": ["https://img.example/mat.jpg"],
            "category": "sports",
            "query": "yoga mat",
            "product_category": "Sports & Outdoors › Exercise & Fitness › Yoga › Mats",
        },
        {
            "asin": "B0LUXE0001",
            "name": "Grand Leather Sofa",
            "full_description": "\n",
            "small_description": "Full grain leather",
            "pricing": "$1,299.99",
            "customization_options": {},
            "images": ["https://img.example/sofa.jpg"],
            "category": "furniture",
            "query": "sofa",
            "product_category": "Home & Kitchen › Furniture › Living Room › Sofas",
        },
        dict(_shoe(1), asin="B0SHOE0001", name="Duplicate row that must be skipped"),
        dict(_shoe(2), asin="nan"),
        dict(_shoe(3), asin="B0TOOLONGASIN"),
    ]
    return shoes + specials


def tiny_attributes() -> dict:
    attrs = {f"B0SHOE{i:04d}": {"attributes": ["rubber sole", "breathable mesh"]} for i in range(1, 24)}
    attrs["B0TEA00001"] = {
        "attributes": ["gluten free", "organic"],
        "instruction": "Find me gluten free green tea bags",
        "instruction_attributes": ["gluten free"],
    }
    attrs["B0ZEBRA001"] = {"attributes": []}
    return attrs  # the sofa is absent on purpose: it gets DUMMY_ATTR


def tiny_human() -> dict:
    human = {
        f"B0SHOE{i:04d}": [
            {
                "asin": f"B0SHOE{i:04d}",
                "instruction": f"i need running shoes with a rubber sole in navy blue, size 9, model {i}.",
                "instruction_attributes": ["rubber sole"],
                "instruction_options": ["navy blue", "9"],
            }
        ]
        for i in range(1, 24)
    }
    human["B0TEA00001"] = [
        {"asin": "B0TEA00001", "instruction": "i want gluten free green tea bags with mint flavor",
         "instruction_attributes": ["gluten free"], "instruction_options": ["mint"]},
        {"asin": "B0TEA00001", "instruction": "skipped: no attributes",
         "instruction_attributes": [], "instruction_options": []},
    ]
    human["B0ZEBRA001"] = [
        {"asin": "B0ZEBRA001", "instruction": "find me a zebra yoga mat.",
         "instruction_attributes": ["zebra pattern"], "instruction_options": []},
    ]
    return human


def write_tiny_catalog(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "items_shuffle.json").write_text(json.dumps(tiny_products()))
    (out / "items_ins_v2.json").write_text(json.dumps(tiny_attributes()))
    (out / "items_human_ins.json").write_text(json.dumps(tiny_human()))
    return out


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep generated catalogues and indexes out of the user's cache."""
    root = tmp_path_factory.mktemp("webshop_cache")
    os.environ["WEBSHOP_ENV_CACHE"] = str(root)
    os.environ["TEACHABLE_CACHE"] = str(tmp_path_factory.mktemp("teachable_cache"))
    os.environ["TEACHABLE_WORK_DIR"] = str(tmp_path_factory.mktemp("teachable_work"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    return root


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_catalog(tmp_path_factory.mktemp("tiny_catalog"))


@pytest.fixture(scope="session")
def tiny_shop(tiny_data_dir: Path):
    from webshop_env.env import Shop

    return Shop.load(tiny_data_dir, tagger_backend="heuristic")


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 300-product catalogue: enough goals for every split, fast to index."""
    from webshop_env.generate import generate_catalog

    out = tmp_path_factory.mktemp("small_catalog")
    generate_catalog(out, n_products=300, seed=7)
    return out


@pytest.fixture(scope="session")
def small_shop(small_data_dir: Path):
    from webshop_env.env import Shop

    return Shop.load(small_data_dir, tagger_backend="heuristic", index_cache=False)


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite tracking store for one test (artifacts beside it); returns its URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # `mlflow run --env-manager local` runs `python` from PATH: this interpreter's
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def tiny_student(small_shop, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained tiny Llama student saved as a model folder (prompt settings included)."""
    from teachable.models import build_tiny_llama, train_bpe_tokenizer
    from teachable.policy.lm import LMPolicy

    texts = [p["Title"] for p in small_shop.catalog.products] + [g["instruction_text"] for g in small_shop.goals]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=400)
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    out = tmp_path_factory.mktemp("tiny_student")
    LMPolicy(model, tokenizer, max_observation_chars=400, max_history=2).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and OpenMP threads spin badly on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def label_store(tmp_path_factory: pytest.TempPathFactory, small_data_dir: Path, tiny_student: str) -> dict:
    """A tracking store holding real rollouts -> mine -> label runs (about 30 labeled snapshots of
    the tiny student on the small catalogue), made once; `pred_store` gives each test a copy."""
    from entry_points import label, mine, rollouts
    from entry_points.runs import setup_tracking

    folder = tmp_path_factory.mktemp("label_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        for var in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
            mp.delenv(var, raising=False)
        import mlflow

        mlflow.set_tracking_uri(uri)
        setup_tracking()
        rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "24", "--max_steps", "8"])
        mine.main(["--offsets", "1,2,3", "--include_search_steps", "false"])
        label.main(["--data_dir", str(small_data_dir), "--student", tiny_student, "--max_snapshots", "32",
                    "--n_min", "2", "--n_max", "2", "--rollout_batch", "4", "--max_steps", "8"])
        run = mlflow.search_runs(filter_string="tags.`teachable.phase` = 'label'", output_format="list")[0]
    return {"folder": folder, "label_run": run.info.run_id}


@pytest.fixture
def pred_store(label_store: dict, mlflow_store: str, tmp_path: Path) -> dict:
    """`mlflow_store` starting as a private copy of `label_store`'s database (artifacts shared)."""
    import shutil

    shutil.copy(label_store["folder"] / "mlflow.db", tmp_path / "mlflow.db")  # before anything opens the store
    return {**label_store, "uri": mlflow_store}


@pytest.fixture(scope="session")
def labeled_records(label_store: dict) -> list:
    """The labeled snapshots of `label_store`'s label run."""
    from teachable.records import LabeledSnapshot, read_jsonl

    paths = sorted(label_store["folder"].rglob("labeled_snapshots.jsonl"))
    assert len(paths) == 1, paths
    return read_jsonl(paths[0], LabeledSnapshot)


def synthetic_teachability(record) -> tuple[float, str]:
    """A learnable (ELP_net, route) from what a snapshot shows: the untrained tiny student never
    succeeds, so its real labels are all 0; tests of ranking put a known signal on real snapshots."""
    u = float(record.uncertainty.get("entropy_norm", 0.0))
    on_item = record.observation.rstrip().endswith("Buy Now")
    elp = round(min(1.0, max(-1.0, 0.8 * u + 0.3 * on_item - 0.2 - 0.02 * record.step_index)), 4)
    return elp, "hint" if elp > 0.4 else "demo" if elp > 0.1 else "none"


@pytest.fixture
def synthetic_label_run(pred_store: dict, labeled_records: list) -> dict:
    """A label run in `pred_store` holding the real labeled snapshots with `synthetic_teachability`
    targets; it records the real label run's student and upstream runs."""
    import copy
    import tempfile

    import mlflow
    from mlflow.tracking import MlflowClient

    from entry_points.runs import PHASE_TAG, setup_tracking
    from teachable.records import write_jsonl

    records = []
    for r in labeled_records:
        s = copy.deepcopy(r)
        s.elp_net, s.route = synthetic_teachability(s)
        records.append(s)
    real = MlflowClient().get_run(pred_store["label_run"])
    setup_tracking()
    with mlflow.start_run(run_name="label_synthetic") as run:
        mlflow.set_tags({**{k: v for k, v in real.data.tags.items() if k.startswith("upstream.")}, PHASE_TAG: "label"})
        mlflow.log_params(real.data.params)
        with tempfile.TemporaryDirectory() as tmp:
            write_jsonl(Path(tmp) / "labeled_snapshots.jsonl", records)
            mlflow.log_artifacts(tmp)
    return {**pred_store, "label_run": run.info.run_id, "records": records}
