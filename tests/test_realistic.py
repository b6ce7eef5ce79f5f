"""Tests of the real-schema catalogue built from WebShop's attribute file (webshop_env.realistic)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from webshop_env.catalog import CatalogError, load_catalog
from webshop_env.realistic import (
    RealSchemaError,
    build_real_schema_catalog,
    categorize,
    option_plan,
    parse_instruction,
    read_requests,
    type_pieces,
)

REAL_FILE = Path(__file__).resolve().parents[1] / ".." / "shared" / "webshop_real" / "items_ins_v2_1000.json"
needs_real = pytest.mark.skipif(
    not REAL_FILE.is_file(),
    reason=f"WebShop's real attribute file is not at {REAL_FILE} (the project does not ship it)",
)
PRICE = re.compile(r"^\$\d+\.\d\d( - \$\d+\.\d\d)?$")
RAW_FIELDS = {"asin", "name", "full_description", "small_description", "pricing", "customization_options",
              "images", "category", "query", "product_category", "brand"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not REAL_FILE.is_file():
        pytest.skip(f"WebShop's real attribute file is not at {REAL_FILE} (the project does not ship it)")
    out = tmp_path_factory.mktemp("real_schema")
    build_real_schema_catalog(REAL_FILE, out, seed=0)
    return out


def read(folder: Path) -> tuple[list[dict], dict, dict]:
    return tuple(json.loads((folder / name).read_text())  # type: ignore[return-value]
                 for name in ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json"))


def test_parse_instruction_splits_type_and_attribute_kinds() -> None:
    assert parse_instruction("Find me scrubs & body treatments with tea tree, natural ingredients",
                             ["tea tree", "natural ingredients"]) == \
        ((), "scrubs & body treatments", ("tea tree", "natural ingredients"), ())
    # an attribute that is also the start of the type stays in the type
    assert parse_instruction("Find me easy use hair extensions, wigs & accessories for hair extensions, natural hair",
                             ["easy use", "hair extensions", "natural hair"]) == \
        (("easy use",), "hair extensions, wigs & accessories", (), ("hair extensions", "natural hair"))
    assert parse_instruction("Find me leak proof, bpa free refillable containers with travel bottles for travel",
                             ["leak proof", "bpa free", "travel bottles", "travel"]) == \
        (("leak proof", "bpa free"), "refillable containers", ("travel bottles",), ("travel",))
    assert parse_instruction("Get me red shoes", ["red"]) is None
    assert parse_instruction("Find me red", ["red"]) is None  # no type left


def test_categories_from_keywords_else_the_neighbour_in_file_order() -> None:
    records = {
        "B000000001": {"attributes": [], "instruction": "Find me long lasting lips makeup",
                       "instruction_attributes": ["long lasting"]},
        "B000000002": {"attributes": [], "instruction": "Find me easy use sets", "instruction_attributes": ["easy use"]},
        "B000000003": {"attributes": [], "instruction": "Find me slim fit men's pants", "instruction_attributes": ["slim fit"]},
    }
    requests = read_requests(records)
    assert [r.product_type for r in requests] == ["lips makeup", "sets", "men's pants"]
    assert categorize(requests) == ["beauty", "beauty", "fashion"]
    assert option_plan("fashion", "men's boots")[0] == ("Size", "shoe_size")
    assert option_plan("food", "puffed snacks")[0] == ("Flavor Name", "flavor")
    assert type_pieces("men's t-shirts & tanks") == ["men's t-shirts & tanks", "men's t-shirts", "men's tanks"]
    assert type_pieces("foot, hand & nail care") == ["foot, hand & nail care", "nail care"]


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "ins.json"
    empty.write_text(json.dumps({"B000000001": {"attributes": ["red"]}}))
    with pytest.raises(RealSchemaError, match="no record has an 'instruction'"):
        build_real_schema_catalog(empty, tmp_path / "out")
    with pytest.raises(RealSchemaError, match="not found"):
        build_real_schema_catalog(tmp_path / "missing.json", tmp_path / "out")
    with pytest.raises(RealSchemaError, match="distractors"):
        build_real_schema_catalog(empty, tmp_path / "out", distractors=-1)
    assert issubclass(RealSchemaError, CatalogError)
    assert not (tmp_path / "out" / "catalog_meta.json").exists()


@needs_real
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, real_dir: Path) -> None:
    build_real_schema_catalog(REAL_FILE, tmp_path / "a", seed=0)
    build_real_schema_catalog(REAL_FILE, tmp_path / "b", seed=1)
    for name in ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json", "catalog_meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (real_dir / name).read_bytes()
    assert (tmp_path / "b" / "items_shuffle.json").read_bytes() != (real_dir / "items_shuffle.json").read_bytes()


@needs_real
def test_products_follow_webshop_real_schema(real_dir: Path) -> None:
    products, attributes, human = read(real_dir)
    real = json.loads(REAL_FILE.read_text())
    targets = {asin for asin, r in real.items() if r.get("instruction")}
    assert len(products) == 3 * len(targets) == len({p["asin"] for p in products})
    assert targets <= {p["asin"] for p in products} and set(human) == targets
    for p in products:
        assert RAW_FIELDS <= set(p), p["asin"]
        assert PRICE.match(p["pricing"]), p["pricing"]
        assert " › " in p["product_category"] and p["small_description"] and p["images"]
        assert p["category"] in {"beauty", "food", "electronics", "fashion", "furniture"}
        for values in p["customization_options"].values():
            assert all(set(v) == {"value", "image"} for v in values)
        if p["asin"] in targets:
            assert attributes[p["asin"]] == real[p["asin"]]  # the real record, as it is
    assert any(" - $" in p["pricing"] for p in products)
    assert len({p["brand"] for p in products}) >= 30


@needs_real
def test_titles_and_text_carry_the_real_attribute_strings(real_dir: Path) -> None:
    products, attributes, _ = read(real_dir)
    by_asin = {p["asin"]: p for p in products}
    scrub = by_asin["B07DJJXGB5"]  # "Find me scrubs & body treatments with tea tree, natural ingredients"
    assert "scrubs" in words(scrub["name"])
    assert {"tea", "tree", "natural", "ingredients"} <= words(scrub["name"] + " " + scrub["full_description"])
    assert any("TEA TREE" in b for b in scrub["small_description"])
    for p in products:
        indexed = " ".join((p["name"], p["full_description"])).lower()
        for attribute in attributes[p["asin"]].get("instruction_attributes", []):
            assert attribute in indexed, (p["asin"], attribute)


@needs_real
def test_distractors_share_some_attributes_but_not_all(real_dir: Path) -> None:
    products, attributes, _ = read(real_dir)
    real = json.loads(REAL_FILE.read_text())
    by_query: dict[str, list[dict]] = {}
    for p in products:
        by_query.setdefault(p["query"], []).append(p)
    shared = 0
    for asin, record in real.items():
        if not record.get("instruction"):
            continue
        wanted = set(record["instruction_attributes"])
        target = next(p for p in products if p["asin"] == asin)
        others = [p for p in by_query[target["query"]] if p["asin"] not in real]
        assert others, asin
        for other in others:
            assert not wanted <= set(attributes[other["asin"]]["attributes"]), (asin, other["asin"])
            shared += bool(wanted & set(attributes[other["asin"]]["attributes"]))
    assert shared > 300  # most distractors look like their target


@needs_real
def test_human_instructions_read_like_webshop_and_name_offered_options(real_dir: Path) -> None:
    catalog = load_catalog(real_dir)
    leads = set()
    n_options = 0
    for asin, instructions in catalog.human_instructions.items():
        product = catalog.product(asin)
        offered = {v for values in product["options"].values() for v in values}
        for ins in instructions:
            assert ins["instruction"] == ins["instruction"].lower() and "price" not in ins["instruction"]
            assert ins["instruction_attributes"] and set(ins["instruction_attributes"]) <= set(product["Attributes"])
            assert set(ins["instruction_options"]) <= offered
            for value in [*ins["instruction_attributes"], *ins["instruction_options"]]:
                assert value in ins["instruction"], (value, ins["instruction"])
            leads.add(" ".join(ins["instruction"].split()[:2]))
            n_options += len(ins["instruction_options"])
    assert len(leads) >= 10 and n_options > 300


@needs_real
def test_shop_loads_it_and_the_expert_solves_dev_goals(real_dir: Path) -> None:
    from teachable.policy.expert import ExpertPolicy
    from teachable.rollouts import goal_specs, run_episodes, summarize
    from webshop_env.env import Shop

    shop = Shop.load(real_dir, tagger_backend="heuristic", index_cache=False)
    dev = list(shop.split_goal_indices("dev"))
    assert len(shop.goals) > 400 and len(dev) >= 30
    assert all(g["instruction_text"].startswith(("i", "can", "find", "looking", "get", "show", "help", "search",
                                                  "please", "buy")) for g in shop.goals)
    assert sum(", and price lower than" in g["instruction_text"] for g in shop.goals) > 0.8 * len(shop.goals)
    result = summarize(run_episodes(shop, ExpertPolicy(shop), goal_specs(dev, seed=0, split="dev"), max_steps=15,
                                    batch_size=32, greedy=True))
    assert result["success_rate"] >= 0.9


@needs_real
def test_cli_realistic(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from webshop_env import cli

    result = CliRunner().invoke(cli.main, ["realistic", "--attributes", str(REAL_FILE), "--out", str(tmp_path),
                                           "--distractors", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote 830 products (415 with" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = CliRunner().invoke(cli.main, ["realistic", "--attributes", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "expected a JSON dict" in result.output


@needs_real
def test_cache_folder_is_keyed_by_file_seed_and_distractors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           real_dir: Path) -> None:
    from webshop_env.realistic import ensure_real_schema_catalog

    monkeypatch.setenv("WEBSHOP_ENV_CACHE", str(tmp_path))
    first = ensure_real_schema_catalog(REAL_FILE, seed=0)
    assert first.parent == tmp_path / "catalogs" and first.name.startswith("realistic-")
    assert (first / "items_shuffle.json").read_bytes() == (real_dir / "items_shuffle.json").read_bytes()
    stamp = (first / "catalog_meta.json").stat().st_mtime_ns
    assert ensure_real_schema_catalog(REAL_FILE, seed=0) == first  # reused, not rebuilt
    assert (first / "catalog_meta.json").stat().st_mtime_ns == stamp
    assert len({first, ensure_real_schema_catalog(REAL_FILE, seed=1),
                ensure_real_schema_catalog(REAL_FILE, seed=0, distractors=1)}) == 3
