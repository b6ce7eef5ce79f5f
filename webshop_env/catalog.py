"""Load WebShop's product files and clean them exactly as WebShop does.

A data dir holds WebShop's official files:

- `items_shuffle.json` (or `items_shuffle_1000.json`): the products, a JSON list;
- `items_ins_v2.json` (or `items_ins_v2_1000.json`): attributes and synthetic instructions;
- `items_human_ins.json` (optional): human instructions, needed for human goals.

Cleaning follows the original loader: rows whose asin is 'nan', longer than 10 characters or
a duplicate are skipped (the first of duplicates is kept); `Title` is `name`, `Description` is
`full_description`, `BulletPoints` is `small_description` as a list; prices `$a` and `$a - $b`
are parsed (commas and other non-digits dropped), a missing price is 100.0; option names are
lower-cased and values stripped, lower-cased and '/' written as ' | '; `Attributes` come from
the attribute file, or `['DUMMY_ATTR']` when the asin is not there; `query` is lower-cased and
stripped. Ranged prices are drawn uniformly from their range with a seeded RNG (the original
used the unseeded global RNG), so a catalogue and its seed give the same prices every time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from webshop_env.paths import default_catalog_dir

logger = logging.getLogger(__name__)

PRODUCT_FILES = ("items_shuffle.json", "items_shuffle_1000.json")
ATTRIBUTE_FILES = ("items_ins_v2.json", "items_ins_v2_1000.json")
HUMAN_FILE = "items_human_ins.json"
DUMMY_ATTR = "DUMMY_ATTR"
MISSING_PRICE = 100.0
REQUIRED_PRODUCT_FIELDS = (
    "asin",
    "name",
    "full_description",
    "small_description",
    "category",
    "query",
    "product_category",
)
DEFAULT_N_PRODUCTS = 1000
DEFAULT_GENERATOR_SEED = 0


class CatalogError(ValueError):
    """A data file is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Catalog:
    """A cleaned WebShop catalogue.

    Opened from a store (`load_catalog`), its sequences and maps are read-only views that
    decode on access; built by hand, plain lists and dicts work the same.

    Attributes:
        products: cleaned product dicts in file order (index = search document id).
        prices: the price each product is bought at (ranged prices drawn with `price_seed`).
        asin_to_index: asin -> index into `products`.
        content_hash: hex digest of the source files and the price seed; states and search
            indexes are keyed by it.
        data_dir: the folder the files were read from.
        attributes: the attribute file's content (asin -> record).
        human_instructions: the human instruction file's content (asin -> list), may be empty.
        store: the store the views read from (None for a catalogue built by hand).
    """

    products: Sequence[dict[str, Any]]
    prices: Sequence[float]
    asin_to_index: Mapping[str, int]
    content_hash: str
    data_dir: Path
    attributes: Mapping[str, dict[str, Any]] = field(repr=False)
    human_instructions: Mapping[str, list[dict[str, Any]]] = field(repr=False)
    store: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.products)

    def records_in_order(self, kind: str) -> Iterator[tuple[int, Any]]:
        """(product index, record) in catalogue order for each product with a record.

        Args:
            kind: "human" (its human instructions) or "attributes" (its attribute record).
        """
        if kind not in ("human", "attributes"):
            raise ValueError(f"unknown record kind {kind!r}; use 'human' or 'attributes'.")
        if self.store is not None:
            yield from self.store.records_in_catalog_order(kind, len(self.products))
            return
        records = self.human_instructions if kind == "human" else self.attributes
        for i, product in enumerate(self.products):
            record = records.get(product["asin"])
            if record is not None:
                yield i, record

    def product(self, asin: str) -> dict[str, Any]:
        """Return the product with `asin` (case-insensitive).

        Raises:
            KeyError: no product has this asin.
        """
        return self.products[self.asin_to_index[asin.upper()]]


def find_data_file(data_dir: Path, candidates: tuple[str, ...], required: bool = True) -> Path | None:
    """Return the first existing file among `candidates` in `data_dir`."""
    for name in candidates:
        path = data_dir / name
        if path.is_file():
            return path
    if required:
        raise CatalogError(
            f"{data_dir}: none of {', '.join(candidates)} found. Point data_dir at a folder "
            "with WebShop's files, or leave it empty to use the generated catalogue."
        )
    return None


def read_json(path: Path, expected_type: type) -> Any:
    """Read a JSON file and check its top-level type."""
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CatalogError(f"{path}: not valid JSON ({e}); the file may be truncated.") from e
    if not isinstance(data, expected_type):
        raise CatalogError(
            f"{path}: expected a JSON {expected_type.__name__} at the top level, "
            f"got {type(data).__name__}."
        )
    return data


def validate_attribute_record(path: Path, asin: str, record: Any) -> None:
    """Check one record of WebShop's `items_ins_v2*.json`.

    Raises:
        CatalogError: naming the file, the asin and the field.
    """
    if not isinstance(record, dict):
        raise CatalogError(f"{path}: record {asin!r} must be an object, got {type(record).__name__}.")
    attrs = record.get("attributes", [])
    if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
        raise CatalogError(f"{path}: field 'attributes' of {asin!r} must be a list of strings.")
    if "instruction_attributes" in record and not isinstance(record["instruction_attributes"], list):
        raise CatalogError(f"{path}: field 'instruction_attributes' of {asin!r} must be a list.")


def validate_human_record(path: Path, asin: str, instructions: Any) -> None:
    """Check one entry of WebShop's `items_human_ins.json`.

    Raises:
        CatalogError: naming the file, the asin and the field.
    """
    if not isinstance(instructions, list):
        raise CatalogError(f"{path}: entry {asin!r} must be a list of instructions.")
    for ins in instructions:
        for key in ("instruction", "instruction_attributes", "instruction_options"):
            if not isinstance(ins, dict) or key not in ins:
                raise CatalogError(f"{path}: an instruction of {asin!r} lacks field {key!r}.")


def read_attribute_file(path: Path) -> dict[str, dict[str, Any]]:
    """Read WebShop's `items_ins_v2*.json` and validate each record's fields."""
    data = read_json(path, dict)
    for asin, record in data.items():
        validate_attribute_record(path, asin, record)
    return data


def read_human_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Read WebShop's `items_human_ins.json` and validate each instruction's fields."""
    data = read_json(path, dict)
    for asin, instructions in data.items():
        validate_human_record(path, asin, instructions)
    return data


def parse_pricing(pricing: Any, where: str) -> tuple[list[float], str]:
    """Parse WebShop's pricing string into (numbers, price tag shown on pages)."""
    if not pricing:
        return [MISSING_PRICE], f"${MISSING_PRICE}"
    if not isinstance(pricing, str):
        raise CatalogError(f"{where}: field 'pricing' must be a string like '$12.99', got {pricing!r}.")
    try:
        numbers = [float(Decimal(re.sub(r"[^\d.]", "", piece))) for piece in pricing.split("$")[1:]]
    except InvalidOperation as e:
        raise CatalogError(f"{where}: field 'pricing' {pricing!r} has a part without a number.") from e
    if not numbers:
        raise CatalogError(f"{where}: field 'pricing' {pricing!r} has no '$' amount.")
    if len(numbers) == 1:
        return numbers, f"${numbers[0]}"
    return numbers[:2], f"${numbers[0]} to ${numbers[1]}"


def clean_options(raw: Any, where: str) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """Lower-case option names and values, '/' -> ' | ', as WebShop's loader does."""
    options: dict[str, list[str]] = {}
    option_to_image: dict[str, str | None] = {}
    if not raw:
        return options, option_to_image
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: field 'customization_options' must be an object or null.")
    for name, contents in raw.items():
        if contents is None:
            continue
        values = []
        for content in contents:
            if not isinstance(content, dict) or not isinstance(content.get("value"), str):
                raise CatalogError(
                    f"{where}: field 'customization_options.{name}' needs objects with a string 'value'."
                )
            value = content["value"].strip().replace("/", " | ").lower()
            values.append(value)
            option_to_image[value] = content.get("image")
        options[name.lower()] = values
    return options, option_to_image


def clean_product(raw: dict[str, Any], attributes: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    """Turn one raw product row into WebShop's cleaned product dict."""
    for key in REQUIRED_PRODUCT_FIELDS:
        if key not in raw:
            raise CatalogError(f"{where}: missing field {key!r}.")
    asin = raw["asin"]
    bullets = raw["small_description"]
    pricing, price_tag = parse_pricing(raw.get("pricing"), where)
    options, option_to_image = clean_options(raw.get("customization_options"), where)
    record = attributes.get(asin)
    images = raw.get("images") or [None]
    return {
        "asin": asin,
        "name": raw["name"],
        "Title": raw["name"],
        "Description": raw["full_description"],
        "BulletPoints": bullets if isinstance(bullets, list) else [bullets],
        "Price": price_tag,
        "pricing": pricing,
        "options": options,
        "option_to_image": option_to_image,
        "Attributes": record["attributes"] if record and "attributes" in record else [DUMMY_ATTR],
        "category": raw["category"],
        "query": str(raw["query"]).lower().strip(),
        "product_category": raw["product_category"],
        "MainImage": images[0],
    }


def draw_prices(products: list[dict[str, Any]], seed: int) -> list[float]:
    """The bought price of each product: ranged prices are drawn uniformly with `seed`."""
    rng = random.Random(seed)
    return [p["pricing"][0] if len(p["pricing"]) == 1 else rng.uniform(*p["pricing"][:2]) for p in products]


def hash_files(paths: list[Path], price_seed: int) -> str:
    """Content hash of the catalogue: the bytes of its files and the price seed."""
    digest = _files_digest(paths)
    digest.update(f"price_seed={price_seed}".encode())
    return digest.hexdigest()[:16]


def _files_digest(paths: list[Path]) -> Any:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest


def _stat_signature(paths: list[Path]) -> list[list[Any]]:
    """What changes whenever a file's bytes do: path, size, inode and both timestamps (ns)."""
    out = []
    for path in paths:
        st = path.stat()
        out.append([str(path.resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns])
    return out


def content_hashes(paths: list[Path], price_seed: int, memo_dir: Path | None = None) -> tuple[str, str]:
    """(hash of the files' bytes, `hash_files(paths, price_seed)`), remembered per file state.

    Hashing WebShop's full files takes seconds, so the result is kept in `memo_dir` under the
    files' stat signature (size, inode, mtime and ctime in ns: the last is set by the kernel on
    every write, so a rewritten file never matches) and recomputed whenever it differs.
    """
    signature = _stat_signature(paths)
    memo = None
    if memo_dir is not None:
        memo = memo_dir / (hashlib.sha1("\n".join(s[0] for s in signature).encode()).hexdigest()[:20] + ".json")
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
            if known.get("signature") == signature and str(price_seed) in known.get("content_hashes", {}):
                return known["source_hash"], known["content_hashes"][str(price_seed)]
        except (OSError, ValueError, AttributeError):
            known = None
    digest = _files_digest(paths)
    source_hash = digest.hexdigest()[:16]
    digest.update(f"price_seed={price_seed}".encode())
    content_hash = digest.hexdigest()[:16]
    if memo is not None:
        previous = known.get("content_hashes", {}) if known and known.get("signature") == signature else {}
        record = {"signature": signature, "source_hash": source_hash,
                  "content_hashes": {**previous, str(price_seed): content_hash}}
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, memo)
        except OSError as e:  # a read-only cache only costs the hashing next time
            logger.warning("could not remember the catalogue hash in %s: %s", memo, e)
    return source_hash, content_hash


def load_catalog(
    data_dir: str | Path,
    price_seed: int = 0,
    num_products: int | None = None,
    store_dir: str | Path | None = None,
) -> Catalog:
    """Open the catalogue of WebShop's files in `data_dir` from its store (built on first use).

    The files are converted once per content hash into a memory-mapped store (see
    `webshop_env.store`); products, attributes and instructions are then decoded on access.

    Args:
        data_dir: folder with `items_shuffle*.json`, `items_ins_v2*.json` and optionally
            `items_human_ins.json`.
        price_seed: seed for drawing prices of products with a price range.
        num_products: keep only the first N raw rows (WebShop's `num_products`).
        store_dir: folder of catalogue stores; default `webshop_env.paths.store_cache_dir()`.

    Raises:
        CatalogError: a file is missing or malformed (the message names file, row and field).
    """
    from webshop_env.paths import store_cache_dir
    from webshop_env.store import AsinIndex, ProductSequence, RecordMap, open_store

    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise CatalogError(f"data_dir {data_dir} is not a folder. Give a folder with WebShop's files.")
    product_path = find_data_file(data_dir, PRODUCT_FILES)
    attribute_path = find_data_file(data_dir, ATTRIBUTE_FILES)
    human_path = find_data_file(data_dir, (HUMAN_FILE,), required=False)
    hashed = [p for p in (product_path, attribute_path, human_path) if p is not None]
    store_dir = Path(store_dir) if store_dir is not None else store_cache_dir()
    source_hash, content_hash = content_hashes(hashed, price_seed, store_dir / "sources")
    content_hash += "" if num_products is None else f"-n{num_products}"
    store = open_store(product_path, attribute_path, human_path, source_hash, store_dir)
    n = store.limit(num_products)
    if n == 0:
        raise CatalogError(f"{product_path}: no usable products (every row was skipped or the list is empty).")
    logger.info("opened %d products of %s from the store %s", n, product_path, store.path)
    return Catalog(
        products=ProductSequence(store, n),
        prices=store.prices(n, price_seed),
        asin_to_index=AsinIndex(store, n),
        content_hash=content_hash,
        data_dir=data_dir,
        attributes=RecordMap(store, "attributes"),
        human_instructions=RecordMap(store, "human"),
        store=store,
    )


def ensure_default_catalog(n_products: int = DEFAULT_N_PRODUCTS, seed: int = DEFAULT_GENERATOR_SEED,
                           categories: Sequence[str] | None = None) -> Path:
    """Return the folder of a generated catalogue (the default: all categories), generating it on first use.

    Raises:
        ValueError: `categories` names an unknown category.
    """
    from webshop_env.generate import category_mix, generate_catalog

    mix = category_mix(categories)
    out = default_catalog_dir(n_products, seed, mix)
    if not (out / "catalog_meta.json").is_file():
        logger.info("generating a catalogue (%d products, seed %d, categories %s) in %s", n_products, seed,
                    ", ".join(mix) if mix else "all", out)
        generate_catalog(out, n_products=n_products, seed=seed, categories=mix)
    return out


def load_default_catalog(n_products: int = DEFAULT_N_PRODUCTS, seed: int = DEFAULT_GENERATOR_SEED, price_seed: int = 0) -> Catalog:
    """Load the embedded default: a generated catalogue cached in the user cache dir."""
    return load_catalog(ensure_default_catalog(n_products, seed), price_seed=price_seed)
