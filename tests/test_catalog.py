"""The loader cleans WebShop's files as WebShop does and names bad files and fields."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import SHARED, write_tiny_catalog
from webshop_env.catalog import CatalogError, load_catalog, parse_pricing, read_attribute_file
from webshop_env.goals import build_goals, price_cap, split_bounds, split_goal_indices


def test_rows_skipped_like_webshop(tiny_data_dir: Path) -> None:
    cat = load_catalog(tiny_data_dir)
    asins = [p["asin"] for p in cat.products]
    assert len(asins) == 26  # 23 shoes + tea + mat + sofa; 'nan', > 10 chars and the duplicate skipped
    assert "nan" not in asins and "B0TOOLONGASIN" not in asins
    assert cat.product("B0SHOE0001")["name"] == "Stride Runner 1 Running Shoes for Men"  # first duplicate kept


def test_cleaning(tiny_data_dir: Path) -> None:
    cat = load_catalog(tiny_data_dir)
    shoe, tea, mat, sofa = (cat.product(a) for a in ("B0SHOE0001", "B0TEA00001", "B0ZEBRA001", "B0LUXE0001"))
    assert shoe["options"] == {"color": ["black | white", "navy blue"], "size": ["8", "9", "10"]}
    assert shoe["query"] == "running shoes"
    assert shoe["Price"] == "$31.0" and shoe["pricing"] == [31.0]
    assert tea["Price"] == "$12.99 to $15.99" and tea["pricing"] == [12.99, 15.99]
    assert list(tea["options"]) == ["flavor name", "style"]
    assert mat["Price"] == "$100.0" and mat["Attributes"] == [] and mat["MainImage"] == "https://img.example/mat.jpg"
    assert sofa["Attributes"] == ["DUMMY_ATTR"] and sofa["Price"] == "$1299.99"
    assert sofa["BulletPoints"] == ["Full grain leather"]
    assert tea["MainImage"] is None


def test_ranged_prices_are_seeded(tiny_data_dir: Path) -> None:
    i = load_catalog(tiny_data_dir).asin_to_index["B0TEA00001"]
    a, b, c = (load_catalog(tiny_data_dir, price_seed=s).prices[i] for s in (0, 0, 1))
    assert a == b != c and 12.99 <= a <= 15.99 and 12.99 <= c <= 15.99
    assert load_catalog(tiny_data_dir, price_seed=0).content_hash != load_catalog(tiny_data_dir, price_seed=1).content_hash


@pytest.mark.parametrize(
    ("pricing", "numbers", "tag"),
    [("$13.00", [13.0], "$13.0"), ("$1,299.99", [1299.99], "$1299.99"), ("", [100.0], "$100.0"),
     (None, [100.0], "$100.0"), ("$10.00 - $20.50", [10.0, 20.5], "$10.0 to $20.5"), ("$1.5", [1.5], "$1.5")],
)
def test_parse_pricing(pricing, numbers, tag) -> None:
    assert parse_pricing(pricing, "x") == (numbers, tag)


def _corrupt(tmp_path: Path, name: str, content: str) -> Path:
    d = write_tiny_catalog(tmp_path / "cat")
    (d / name).write_text(content)
    return d


def test_missing_file_is_named(tmp_path: Path) -> None:
    d = write_tiny_catalog(tmp_path / "cat")
    (d / "items_ins_v2.json").unlink()
    with pytest.raises(CatalogError, match="items_ins_v2"):
        load_catalog(d)


def test_truncated_file_is_named(tmp_path: Path) -> None:
    d = _corrupt(tmp_path, "items_shuffle.json", '[{"asin": "B0')
    with pytest.raises(CatalogError, match="items_shuffle.json.*truncated"):
        load_catalog(d)


@pytest.mark.parametrize(
    ("row", "field"),
    [({"asin": "B01"}, "name"), ({"name": "x"}, "asin"),
     ({"asin": "B01", "name": "x", "full_description": "", "small_description": [], "category": "c",
       "query": "q", "product_category": "a", "pricing": "$abc"}, "pricing")],
)
def test_malformed_field_is_named(tmp_path: Path, row: dict, field: str) -> None:
    d = _corrupt(tmp_path, "items_shuffle.json", json.dumps([row]))
    with pytest.raises(CatalogError, match=rf"items_shuffle.json\[0\].*{field}"):
        load_catalog(d)


def test_real_attribute_file_loads() -> None:
    path = SHARED / "webshop_real" / "items_ins_v2_1000.json"
    if not path.is_file():
        pytest.skip(f"real WebShop attribute file not found at {path}")
    data = read_attribute_file(path)
    assert len(data) == 1000
    assert sum(1 for r in data.values() if not r["attributes"]) == 185
    assert sum(1 for r in data.values() if "instruction" in r) == 415


def test_human_goals(tiny_data_dir: Path) -> None:
    goals = build_goals(load_catalog(tiny_data_dir), human=True)
    assert len(goals) == 25  # the tea instruction without attributes is skipped
    mat = next(g for g in goals if g["asin"] == "B0ZEBRA001")
    assert mat["instruction_text"].startswith("find me a zebra yoga mat, and price lower than ")
    assert mat["price_upper"] in (120.0, 130.0, 140.0)
    assert set(mat) == {"asin", "category", "query", "name", "product_category", "instruction_text",
                        "attributes", "price_upper", "goal_options", "weight"}


def test_goal_order_is_webshops_shuffle(tiny_data_dir: Path) -> None:
    cat = load_catalog(tiny_data_dir)
    from webshop_env.goals import human_goals

    unshuffled = human_goals(cat, random.Random(0))
    order = list(range(len(unshuffled)))
    random.Random(233).shuffle(order)
    assert build_goals(cat, goal_seed=0) == [unshuffled[i] for i in order]
    assert build_goals(cat, goal_seed=0) != build_goals(cat, goal_seed=5)


def test_synthetic_goals(tiny_data_dir: Path) -> None:
    goals = build_goals(load_catalog(tiny_data_dir), human=False)
    assert len(goals) == 4  # tea: 2 flavours x 2 styles
    texts = sorted(g["instruction_text"].split(", and price")[0] for g in goals)
    assert texts[0] == "Find me gluten free green tea bags with flavor name: lemon, and style: loose"
    assert all(g["goal_options"].keys() == {"flavor name", "style"} for g in goals)


def test_price_cap() -> None:
    rng = random.Random(0)
    assert price_cap(985.0, rng) == (1000000, "")
    upper, text = price_cap(12.0, rng)
    assert upper in (30.0, 40.0, 50.0) and text == f", and price lower than {upper:.2f} dollars"


def test_splits() -> None:
    assert split_bounds(12087) == (500, 1500) and split_bounds(50000) == (500, 1500)
    assert split_bounds(1209) == (50, 150)
    n = 25
    parts = [split_goal_indices(n, s) for s in ("test", "dev", "train")]
    assert sorted(i for r in parts for i in r) == list(range(n)) and all(len(r) > 0 for r in parts)
    with pytest.raises(ValueError, match="unknown split"):
        split_goal_indices(n, "val")
