"""Tests of the synthetic catalogue generator (webshop_env.generate, webshop_env.vocab)."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from webshop_env import generate, vocab
from webshop_env.generate import generate_catalog, generate_products

FILES = ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json", "catalog_meta.json")
ASIN = re.compile(r"B0[A-Z0-9]{8}")
PRODUCT_KEYS = {
    "asin": str, "name": str, "full_description": str, "small_description": list, "pricing": str,
    "images": list, "category": str, "query": str, "product_category": str,
}
NOUNS_BY_QUERY = {
    sub.query: {noun for leaf in sub.leaves for noun in leaf.nouns}
    for cat in vocab.CATEGORIES for sub in cat.subcategories
}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def stems(text: str) -> set[str]:
    """Words without a plural 's', roughly what a Porter stemmer makes of 'planters' vs 'planter'."""
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words(text)}


def product_text(product: dict) -> str:
    return " ".join([product["name"], product["full_description"], *product["small_description"]])


def kept_products(products: list[dict]) -> list[dict]:
    """The rows WebShop's loader keeps: first of each asin, not 'nan', at most 10 characters."""
    seen: set[str] = set()
    kept = []
    for p in products:
        if p["asin"] != "nan" and len(p["asin"]) <= 10 and p["asin"] not in seen:
            seen.add(p["asin"])
            kept.append(p)
    return kept


@pytest.fixture(scope="module")
def big() -> tuple[list[dict], dict, dict]:
    return generate_products(1000, seed=0)


@pytest.fixture(scope="module")
def small() -> tuple[list[dict], dict, dict]:
    return generate_products(300, seed=1)


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    first = generate_catalog(tmp_path / "a", n_products=120, seed=3)
    second = generate_catalog(tmp_path / "b", n_products=120, seed=3)
    other = generate_catalog(tmp_path / "c", n_products=120, seed=4)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for kind in ("products", "attributes", "human_instructions"):
        assert first[kind].read_bytes() == second[kind].read_bytes()
        assert first[kind].read_bytes() != other[kind].read_bytes()


def test_files_are_the_payloads_of_generate_products(tmp_path: Path) -> None:
    paths = generate_catalog(tmp_path, n_products=80, seed=5)
    assert set(paths) == {"products", "attributes", "human_instructions"}
    payloads = generate_products(80, seed=5)
    for kind, payload in zip(("products", "attributes", "human_instructions"), payloads, strict=True):
        assert paths[kind].read_text() == json.dumps(payload)
    meta = json.loads((tmp_path / "catalog_meta.json").read_text())
    assert meta == {"generator": "webshop_env.generate", "version": 1, "n_products": 80, "seed": 5}


def test_atomic_write_leaves_no_temp_files_and_an_interrupted_run_no_meta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_catalog(tmp_path, n_products=60, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    before = (tmp_path / "items_shuffle.json").read_bytes()

    rows = generate._Generator.rows

    def interrupted(self):
        for i, row in enumerate(rows(self)):
            if i == 30:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(generate._Generator, "rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_catalog(tmp_path, n_products=100, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES[:3])  # meta gone: incomplete
    assert (tmp_path / "items_shuffle.json").read_bytes() == before


def test_invalid_arguments_raise_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_products"):
        generate_products(0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        generate_catalog(tmp_path, n_products=10, seed="0")  # type: ignore[arg-type]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        generate_catalog(tmp_path / "a_file", n_products=10, seed=0)


def test_text_helpers() -> None:
    assert generate.clean_option_value(" Black/White ") == "black | white"
    assert generate.title_case("usb c charger with led lights") == "USB C Charger with LED Lights"
    assert generate.title_case("men's t-shirt for daily wear") == "Men's T-Shirt for Daily Wear"


def test_raw_products_follow_webshop_schema(small: tuple) -> None:
    products, _, _ = small
    for p in products:
        for key, kind in PRODUCT_KEYS.items():
            assert isinstance(p[key], kind), (key, p[key])
        assert all(isinstance(b, str) for b in p["small_description"])
        assert len(p["small_description"]) <= 7
        assert p["images"] and all(u.startswith("https://") for u in p["images"])
        assert 3 <= len(p["product_category"].split(" › ")) <= 5
        assert p["query"] == p["query"].lower().strip()
        assert p["category"] in {c.name for c in vocab.CATEGORIES}
        for piece in p["pricing"].split("$")[1:]:
            assert re.search(r"\d", piece), p["pricing"]
            float(piece.strip(" -").replace(",", ""))
        assert p["pricing"] == "" or re.fullmatch(r"\$[\d,]+\.\d\d( - \$[\d,]+\.\d\d)?", p["pricing"])
        assert 2 <= len(re.findall(r"[.?!](\s|$)", p["full_description"])) <= 5
        options = p["customization_options"]
        assert options is None or isinstance(options, dict)
        assert len(options or {}) <= 3
        for values in (options or {}).values():
            assert 2 <= len(values) <= 8
            for v in values:
                assert isinstance(v["value"], str) and (v["image"] is None or isinstance(v["image"], str))


def test_catalogue_has_webshop_like_variety(big: tuple) -> None:
    products, attributes, human = big
    kept = kept_products(products)
    n = len(kept)
    assert n == 1000
    share = lambda count: count / n  # noqa: E731
    assert 0.10 <= share(sum(not attributes[p["asin"]]["attributes"] for p in kept)) <= 0.20
    assert 0.35 <= share(sum("instruction" in r for r in attributes.values())) <= 0.45
    assert 0.45 <= share(len(human)) <= 0.55
    prices = [p["pricing"] for p in kept]
    assert 0.10 <= share(sum(" - " in x for x in prices)) <= 0.20
    assert 0.005 <= share(sum(x == "" for x in prices)) <= 0.04
    assert any("," in x for x in prices)  # over $1,000
    assert any(p["small_description"] == [] for p in products)
    assert any(b in ("", " ") for p in products for b in p["small_description"])
    assert any(not p["customization_options"] for p in kept)
    values = [v["value"] for p in kept for vs in (p["customization_options"] or {}).values() for v in vs]
    assert any("/" in v for v in values) and any(v != v.lower() for v in values)
    assert any(" " in v.strip() for v in values)  # multi-word values such as "navy blue"
    assert 8 <= len({p["category"] for p in kept}) <= 10
    assert len({p["name"] for p in kept}) > 0.95 * n


def test_skipped_rows_only_when_catalogue_has_at_least_50_products() -> None:
    tiny, tiny_attrs, _ = generate_products(49, seed=0)
    assert len(tiny) == 49 and all(ASIN.fullmatch(p["asin"]) for p in tiny)
    assert len({p["asin"] for p in tiny}) == 49 and set(tiny_attrs) == {p["asin"] for p in tiny}

    products, attributes, _ = generate_products(200, seed=0)
    asins = [p["asin"] for p in products]
    duplicates = [a for a, c in collections.Counter(asins).items() if c > 1 and a != "nan"]
    invalid = [a for a in asins if a == "nan" or len(a) > 10]
    assert duplicates and len(invalid) >= 2
    kept = kept_products(products)
    assert len(kept) == 200
    assert set(attributes) == {p["asin"] for p in kept}
    assert all(ASIN.fullmatch(p["asin"]) for p in kept)


def test_attribute_words_occur_in_product_text_and_some_not_in_title(big: tuple) -> None:
    products, attributes, _ = big
    only_in_text = 0
    for p in kept_products(products):
        text = words(product_text(p))
        for attr in attributes[p["asin"]]["attributes"]:
            assert attr in vocab.ATTRIBUTES and attr == attr.lower()
            assert set(attr.split()) <= text, (attr, p["asin"])
            only_in_text += not set(attr.split()) <= words(p["name"])
    assert only_in_text > 200


def test_synthetic_instructions_use_product_attributes(big: tuple) -> None:
    products, attributes, _ = big
    leaf_by_asin = {p["asin"]: p["product_category"].split(" › ")[-1].lower() for p in kept_products(products)}
    for asin, record in attributes.items():
        if "instruction" not in record:
            continue
        chosen = record["instruction_attributes"]
        assert chosen and set(chosen) <= set(record["attributes"])
        assert record["instruction"].startswith("Find me ")
        assert leaf_by_asin[asin] in record["instruction"]
        assert all(attr in record["instruction"] for attr in chosen)


def test_human_instructions_are_consistent_and_solvable(big: tuple) -> None:
    products, attributes, human = big
    by_asin = {p["asin"]: p for p in kept_products(products)}
    empty_attributes = 0
    for asin, instructions in human.items():
        product = by_asin[asin]
        option_values = {
            name.lower(): [generate.clean_option_value(v["value"]) for v in values]
            for name, values in (product["customization_options"] or {}).items()
        }
        assert 1 <= len(instructions) <= 3
        for ins in instructions:
            text = ins["instruction"]
            assert ins["asin"] == asin and text == text.lower()
            assert "$" not in text and "dollar" not in text and "price" not in text
            assert set(ins["instruction_attributes"]) <= set(attributes[asin]["attributes"])
            assert len(ins["instruction_attributes"]) <= 3
            empty_attributes += not ins["instruction_attributes"]
            for attr in ins["instruction_attributes"]:
                assert set(attr.split()) <= words(text), (attr, text)
            groups = [name for name, values in option_values.items()
                      if any(v in values for v in ins["instruction_options"])]
            assert len(ins["instruction_options"]) <= 2 and len(groups) >= len(ins["instruction_options"])
            for value in ins["instruction_options"]:
                assert any(value in values for values in option_values.values()), (value, option_values)
                assert words(value) <= words(text), (value, text)
            nouns = [n for n in NOUNS_BY_QUERY[product["query"]] if n in product["name"].lower()]
            assert any(n in text for n in nouns), (text, product["name"])
    assert 0 < empty_attributes < 0.05 * sum(len(v) for v in human.values())


def test_human_instructions_vary_their_phrasing(small: tuple) -> None:
    _, _, human = small
    texts = [ins["instruction"] for instructions in human.values() for ins in instructions]
    openings = {" ".join(t.split()[:2]) for t in texts}
    assert len(openings) >= 10
    assert sum(bool(ins["instruction_options"]) for v in human.values() for ins in v) > 0.5 * len(texts)


def test_query_words_are_shared_by_many_documents(big: tuple) -> None:
    """Searching a sub-category's query finds more than one page: >= 30 documents contain it."""
    products, _, _ = big
    kept = kept_products(products)
    documents = [stems(" ".join((p["name"], p["full_description"], *p["small_description"][:1]))) for p in kept]
    queries = collections.Counter(p["query"] for p in kept)
    assert len(queries) == sum(len(c.subcategories) for c in vocab.CATEGORIES)
    for query, own in queries.items():
        assert own >= 30, query
        assert sum(stems(query) <= doc for doc in documents) >= 30, query


def test_vocabulary_is_consistent() -> None:
    assert 8 <= len(vocab.CATEGORIES) <= 10
    for cat in vocab.CATEGORIES:
        assert 3 <= len(cat.subcategories) <= 6 and len(cat.brands) >= 8
        for sub in cat.subcategories:
            for attr in sub.attributes + cat.shared_attributes:
                assert attr in vocab.ATTRIBUTES, attr
            for group in sub.options:
                assert group.pool in vocab.OPTION_POOLS and 0 < group.probability <= 1
                assert group.name.lower() in vocab.OPTION_PHRASES
            assert all(2 <= len(leaf.path) <= 4 and leaf.nouns for leaf in sub.leaves)
            assert len({n for leaf in sub.leaves for n in leaf.nouns}) >= 3
            assert sub.price_range[0] < sub.price_range[1]
    for attr, spec in vocab.ATTRIBUTES.items():
        assert spec.kind in vocab.ATTRIBUTE_KINDS and 2 <= len(attr.split()) <= 3 and attr == attr.lower()
        for surface in spec.surfaces:
            assert set(attr.split()) <= words(surface), (attr, surface)
    assert len(vocab.HUMAN_LEADS) >= 10


def test_generated_catalogue_loads_with_the_project_loader(tmp_path: Path) -> None:
    catalog_module = pytest.importorskip("webshop_env.catalog")
    if not hasattr(catalog_module, "load_catalog"):
        pytest.skip("webshop_env.catalog has no load_catalog yet")
    generate_catalog(tmp_path, n_products=150, seed=2)
    catalog = catalog_module.load_catalog(tmp_path)
    assert len(catalog.products) == 150
    for product in catalog.products:
        assert product["Attributes"] != ["DUMMY_ATTR"]
        for ins in catalog.human_instructions.get(product["asin"], []):
            values = {v for vs in product["options"].values() for v in vs}
            assert set(ins["instruction_options"]) <= values
            assert set(ins["instruction_attributes"]) <= set(product["Attributes"])


# ---- category mix -------------------------------------------------------------------------

MIX = ("beauty", "electronics", "garden", "pet", "toys")


def test_category_mix_draws_only_its_categories_and_all_of_them() -> None:
    products, attributes, human = generate_products(200, seed=7, categories=["toys", "Beauty ", "garden"])
    assert {p["category"] for p in products} == {"beauty", "garden", "toys"}
    queries = {sub.query for cat in vocab.CATEGORIES if cat.name in ("beauty", "garden", "toys")
               for sub in cat.subcategories}
    assert {p["query"] for p in products} == queries  # every sub-category of the mix gets its share
    assert attributes and human


def test_category_mix_is_canonical_and_the_full_mix_is_the_default(tmp_path: Path) -> None:
    assert generate.category_mix(None) is None
    assert generate.category_mix(["toys", "beauty", "toys"]) == ("beauty", "toys")
    assert generate.category_mix([cat.name for cat in reversed(vocab.CATEGORIES)]) is None
    assert generate_products(60, 3, ["pet", "food"]) == generate_products(60, 3, ["food", "pet"])
    default = generate_catalog(tmp_path / "default", n_products=60, seed=3)
    every = generate_catalog(tmp_path / "every", n_products=60, seed=3, categories=[c.name for c in vocab.CATEGORIES])
    mixed = generate_catalog(tmp_path / "mixed", n_products=60, seed=3, categories=MIX)
    for kind in default:
        assert default[kind].read_bytes() == every[kind].read_bytes()
        assert default[kind].read_bytes() != mixed[kind].read_bytes()
    assert "categories" not in json.loads((tmp_path / "default" / "catalog_meta.json").read_text())
    assert json.loads((tmp_path / "mixed" / "catalog_meta.json").read_text())["categories"] == list(MIX)


def test_unknown_or_empty_category_mix_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown category kitchen; use some of: beauty, electronics, .*toys"):
        generate_catalog(tmp_path, n_products=10, seed=0, categories=["beauty", "kitchen"])
    with pytest.raises(ValueError, match="categories is empty"):
        generate_products(10, seed=0, categories=[])
    with pytest.raises(ValueError, match="not the string"):
        generate_products(10, seed=0, categories="beauty,food")  # type: ignore[arg-type]
    assert not (tmp_path / "catalog_meta.json").exists()


def test_cache_folder_names_the_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from webshop_env.catalog import ensure_default_catalog
    from webshop_env.paths import default_catalog_dir

    monkeypatch.setenv("WEBSHOP_ENV_CACHE", str(tmp_path))
    assert default_catalog_dir(1000, 0) == tmp_path / "catalogs" / "generated-1000-seed0"  # existing caches
    folders = {default_catalog_dir(100, 7, m) for m in (None, ("beauty",), ("beauty", "toys"), ("food", "toys"))}
    assert len(folders) == 4
    mixed = ensure_default_catalog(60, 7, categories=["toys", "pet"])
    plain = ensure_default_catalog(60, 7)
    assert mixed == tmp_path / "catalogs" / "generated-60-seed7-pet+toys" and mixed != plain
    assert json.loads((mixed / "catalog_meta.json").read_text())["categories"] == ["pet", "toys"]
    assert "categories" not in json.loads((plain / "catalog_meta.json").read_text())


def test_cli_generate_takes_a_category_mix(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from webshop_env import cli

    out = tmp_path / "mix"
    result = CliRunner().invoke(cli.main, ["generate", "--out", str(out), "--products", "40", "--seed", "7",
                                           "--categories", "pet,toys"])
    assert result.exit_code == 0, result.output
    assert "pet, toys" in result.output
    assert {p["category"] for p in json.loads((out / "items_shuffle.json").read_text())} == {"pet", "toys"}
    bad = CliRunner().invoke(cli.main, ["generate", "--out", str(tmp_path / "bad"), "--categories", "pets"])
    assert bad.exit_code == 2
    assert "unknown category pets; use some of: beauty" in bad.output
    assert not (tmp_path / "bad").exists()
