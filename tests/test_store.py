"""The catalogue store serves exactly what cleaning the JSON files gives, and is rebuilt when stale."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from webshop_env.catalog import (
    Catalog,
    clean_product,
    draw_prices,
    load_catalog,
    read_attribute_file,
    read_human_file,
)
from webshop_env.generate import generate_catalog
from webshop_env.goals import build_goals
from webshop_env.store import STORE_META


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "cat"
    generate_catalog(out, n_products=400, seed=3)
    return out


def reference_catalog(data_dir: Path, price_seed: int = 0, num_products: int | None = None) -> Catalog:
    """The catalogue as cleaning the parsed JSON in memory gives it (WebShop's loader)."""
    raw = json.loads((data_dir / "items_shuffle.json").read_text())
    if num_products is not None:
        raw = raw[:num_products]
    attributes = read_attribute_file(data_dir / "items_ins_v2.json")
    products, seen = [], set()
    for i, row in enumerate(raw):
        asin = row["asin"]
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        products.append(clean_product(row, attributes, f"items_shuffle.json[{i}]"))
    return Catalog(
        products=products, prices=draw_prices(products, price_seed),
        asin_to_index={p["asin"].upper(): i for i, p in enumerate(products)},
        content_hash="ref", data_dir=data_dir, attributes=attributes,
        human_instructions=read_human_file(data_dir / "items_human_ins.json"),
    )


@pytest.mark.parametrize(("price_seed", "num_products"), [(0, None), (5, 150)])
def test_store_matches_in_memory_cleaning(gen_dir: Path, tmp_path: Path, price_seed: int, num_products) -> None:
    ref = reference_catalog(gen_dir, price_seed, num_products)
    cat = load_catalog(gen_dir, price_seed=price_seed, num_products=num_products, store_dir=tmp_path)
    assert len(cat) == len(ref.products)
    assert list(cat.products) == ref.products
    assert [cat.products[i] for i in range(len(cat))] == ref.products
    assert cat.prices == ref.prices
    assert dict(cat.asin_to_index) == ref.asin_to_index
    assert all(cat.asin_to_index[a.lower().upper()] == i for a, i in ref.asin_to_index.items())
    assert dict(cat.attributes) == ref.attributes and dict(cat.human_instructions) == ref.human_instructions
    for human in (True, False):
        assert list(build_goals(cat, human=human, goal_seed=2)) == build_goals(ref, human=human, goal_seed=2)
    assert list((tmp_path / "derived").glob("human-goals-*.npz"))
    assert list(build_goals(cat, goal_seed=2)) == build_goals(ref, goal_seed=2)  # caps read back from disk


def test_products_behave_as_a_sequence(gen_dir: Path, tmp_path: Path) -> None:
    cat = load_catalog(gen_dir, store_dir=tmp_path)
    n = len(cat.products)
    assert cat.products[-1] == cat.products[n - 1] and cat.products[2:5] == [cat.products[i] for i in (2, 3, 4)]
    assert cat.products[7] is cat.products[7]  # decoded once, then served from the cache
    with pytest.raises(IndexError):
        cat.products[n]
    assert cat.asin_to_index.get("NOSUCHASIN") is None and "NOSUCHASIN" not in cat.asin_to_index
    with pytest.raises(KeyError):
        cat.product("nosuchasin")
    assert cat.product(cat.products[3]["asin"].lower()) == cat.products[3]


def _store_path(tmp_path: Path) -> Path:
    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith("catalog-")]
    return path


def _truncate(path: Path) -> None:
    target = path / "products.arrow"
    target.write_bytes(target.read_bytes()[:-100])


def _other_hash(path: Path) -> None:
    meta = json.loads((path / STORE_META).read_text())
    (path / STORE_META).write_text(json.dumps({**meta, "source_hash": "0123456789abcdef"}))


def _old_format(path: Path) -> None:
    meta = json.loads((path / STORE_META).read_text())
    (path / STORE_META).write_text(json.dumps({**meta, "format": 0}))


def _no_meta(path: Path) -> None:
    (path / STORE_META).unlink()


@pytest.mark.parametrize("damage", [_truncate, _other_hash, _old_format, _no_meta])
def test_stale_store_is_rebuilt(gen_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage) -> None:
    first = load_catalog(gen_dir, store_dir=tmp_path)
    expected = list(first.products)
    path = _store_path(tmp_path)
    damage(path)
    caplog.set_level(logging.INFO, logger="webshop_env.store")
    again = load_catalog(gen_dir, store_dir=tmp_path)
    assert list(again.products) == expected
    assert any("rebuilding the catalogue store" in r.getMessage() for r in caplog.records) or damage is _no_meta
    assert any("building the catalogue store" in r.getMessage() for r in caplog.records)


def test_built_store_is_reused(gen_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    load_catalog(gen_dir, store_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="webshop_env.store")
    load_catalog(gen_dir, store_dir=tmp_path, price_seed=4)  # prices are drawn at load, not stored
    assert not any("building" in r.getMessage() for r in caplog.records)


def test_changed_files_get_a_new_store(gen_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "cat"
    d.mkdir()
    for f in gen_dir.glob("items_*.json"):
        (d / f.name).write_bytes(f.read_bytes())
    before = load_catalog(d, store_dir=tmp_path / "stores")
    rows = json.loads((d / "items_shuffle.json").read_text())
    rows[0]["name"] = "A renamed product"
    (d / "items_shuffle.json").write_text(json.dumps(rows))
    after = load_catalog(d, store_dir=tmp_path / "stores")
    assert after.content_hash != before.content_hash and after.products[0]["name"] == "A renamed product"
    assert len([p for p in (tmp_path / "stores").iterdir() if p.name.startswith("catalog-")]) == 2


def test_content_hash_is_remembered_until_a_file_changes(gen_dir: Path, tmp_path: Path) -> None:
    from webshop_env.catalog import content_hashes, hash_files

    d = tmp_path / "cat"
    d.mkdir()
    for f in gen_dir.glob("items_*.json"):
        (d / f.name).write_bytes(f.read_bytes())
    paths = sorted(d.glob("items_*.json"))
    memo = tmp_path / "memo"
    before = hash_files(paths, 3)
    assert content_hashes(paths, 3, memo)[1] == before
    assert content_hashes(paths, 3, memo)[1] == before  # from the memo
    assert content_hashes(paths, 4, memo)[1] == hash_files(paths, 4) != before
    text = paths[0].read_text()
    paths[0].write_text(text.replace("a", "b", 1))  # same size, other bytes
    after = content_hashes(paths, 3, memo)[1]
    assert after == hash_files(paths, 3) != before


def test_search_over_store_products_equals_search_over_a_list(gen_dir: Path, tmp_path: Path) -> None:
    from webshop_env.search import open_search_engine

    cat = load_catalog(gen_dir, store_dir=tmp_path)
    lazy = open_search_engine(cat.products, cat.content_hash, cache_dir=tmp_path / "idx")
    plain = open_search_engine(list(cat.products), cat.content_hash, cache_dir=None)
    reloaded = open_search_engine(cat.products, cat.content_hash, cache_dir=tmp_path / "idx")
    assert reloaded.from_cache
    for goal in build_goals(cat)[:60]:
        q = " ".join(goal["instruction_text"].split()[:3])
        assert lazy.search(q) == plain.search(q) == reloaded.search(q)
