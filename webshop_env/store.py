"""The catalogue store: WebShop's JSON files converted once into memory-mapped files.

Parsing and cleaning 1.18M products from JSON takes minutes and several GB per process, so a
data dir is converted once per content hash of its files (like the search index) into a folder
``<cache>/stores/catalog-<hash>`` that opens in well under a second and that every process on
a node maps from the same page cache:

* ``products.arrow``: an Arrow IPC file (uncompressed, fixed-size record batches) with one row
  per kept product: its asin and the cleaned product as a JSON document. Arrow IPC maps
  zero-copy, so a product is decoded only when it is looked at;
* ``attributes.arrow`` / ``human.arrow``: the records of ``items_ins_v2*.json`` and
  ``items_human_ins.json`` in file order (asin, JSON value);
* ``*.npy``: small numeric columns (raw row, prices), sorted asin keys with their row
  permutation (look-ups by binary search, no dict of a million strings per process), and each
  record's product index (goals walk the records in catalogue order without a product scan);
* ``store.json``: format version, source hash, row counts and every file's size, written
  last, so a folder without it (or with sizes that differ: a truncated copy) is incomplete.

The JSON files are read with ijson (yajl2 C backend), one row at a time; the conversion keeps
only per-row asins and row numbers in memory, never a whole file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import ijson
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from webshop_env.catalog import (
    CatalogError,
    clean_product,
    validate_attribute_record,
    validate_human_record,
)

logger = logging.getLogger(__name__)

STORE_FORMAT = 1
STORE_META = "store.json"
BATCH_ROWS = 8192
PRODUCT_CACHE_SIZE = 16384
PROGRESS_MIN_BYTES = 16 << 20
_PRODUCTS, _ATTRIBUTES, _HUMAN = "products", "attributes", "human"
_TABLES = (_PRODUCTS, _ATTRIBUTES, _HUMAN)
_SCHEMA = pa.schema([("asin", pa.string()), ("value", pa.large_binary())])
_ARRAYS = (
    "products.raw_row", "products.price_lo", "products.price_hi", "products.ranged",
    "products.keys", "products.perm", "products.exact_keys", "products.exact_perm",
    "attributes.keys", "attributes.perm", "attributes.product", "attributes.order",
    "human.keys", "human.perm", "human.product", "human.order",
    "human_goals.product", "human_goals.row", "human_goals.pos",
)


class StoreError(ValueError):
    """A store folder is incomplete, truncated, stale or of another format."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Conversion


class _ByteProgress:
    """A binary file whose reads advance a tqdm bar by bytes."""

    def __init__(self, f: IO[bytes], bar: tqdm) -> None:
        self._f, self._bar = f, bar

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        self._bar.update(len(chunk))
        return chunk


class _TableWriter:
    """Arrow IPC file of (asin, value) rows written in fixed-size record batches."""

    def __init__(self, path: Path) -> None:
        self._writer = pa.ipc.new_file(str(path), _SCHEMA)
        self._asins: list[str] = []
        self._values: list[bytes] = []
        self.asins: list[str] = []  # every row's asin, in row order

    def add(self, asin: str, value: bytes) -> None:
        self._asins.append(asin)
        self._values.append(value)
        if len(self._asins) == BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._asins:
            batch = pa.record_batch([pa.array(self._asins, pa.string()), pa.array(self._values, pa.large_binary())],
                                    schema=_SCHEMA)
            self._writer.write_batch(batch)
            self.asins.extend(self._asins)
            self._asins, self._values = [], []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _iter_json(path: Path, kind: str, bar: tqdm) -> Iterator[Any]:
    """Stream the rows of a JSON list (`kind` "list") or the (key, value) pairs of an object.

    Raises:
        CatalogError: the file is not valid JSON or of the wrong top-level type; the message
            names the file and the row where parsing stopped.
    """
    row = 0
    with path.open("rb") as raw:
        f = _ByteProgress(raw, bar)
        head = raw.read(1)
        while head and head.isspace():
            head = raw.read(1)
        expected = b"[" if kind == "list" else b"{"
        if head != expected:
            got = "nothing" if not head else repr(head.decode("utf-8", "replace"))
            raise CatalogError(f"{path}: expected a JSON {'list' if kind == 'list' else 'dict'} at the top level, got {got}.")
        raw.seek(0)
        items = ijson.items(f, "item", use_float=True) if kind == "list" else ijson.kvitems(f, "", use_float=True)
        try:
            for item in items:
                yield item
                row += 1
        except ijson.JSONError as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CatalogError(
                f"{path}: not valid JSON at row {row} ({reason}); the file may be truncated or corrupted."
            ) from e


def _sorted_keys(asins: Sequence[str], *, upper: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(sorted fixed-width byte keys, row of each key); equal keys keep row order (stable)."""
    encoded = [(a.upper() if upper else a).encode("utf-8") for a in asins]
    keys = np.array(encoded, dtype=np.bytes_) if encoded else np.zeros(0, "S1")
    perm = np.argsort(keys, kind="stable")
    return keys[perm], perm.astype(np.int64)


def _lookup(keys: np.ndarray, perm: np.ndarray, key: str) -> int:
    """Row of `key` (the last row among equal keys, as a dict built in row order keeps), or -1."""
    try:
        probe = np.bytes_(key.encode("utf-8"))
    except (UnicodeError, AttributeError):
        return -1
    if keys.size == 0 or len(probe) > keys.dtype.itemsize:
        return -1
    pos = int(np.searchsorted(keys, probe, side="right")) - 1
    if pos < 0 or keys[pos] != probe:
        return -1
    return int(perm[pos])


def _record_order(keys: np.ndarray, perm: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Rows of the records that belong to a product, in catalogue order (last of duplicates)."""
    winners = np.ones(keys.size, dtype=bool)
    if keys.size > 1:
        winners[:-1] = keys[:-1] != keys[1:]
    rows = perm[winners]
    rows = rows[product[rows] >= 0]
    return rows[np.argsort(product[rows], kind="stable")]


def convert(product_path: Path, attribute_path: Path, human_path: Path | None, out: Path) -> dict[str, Any]:
    """Convert WebShop's files into store files under `out` (the metadata file is left out).

    Returns:
        the row counts and skip count for the metadata.

    Raises:
        CatalogError: a file is malformed (the message names file, row and field).
    """
    sizes = sum(p.stat().st_size for p in (product_path, attribute_path, human_path) if p is not None)
    arrays: dict[str, np.ndarray] = {}
    quiet = sizes < PROGRESS_MIN_BYTES  # small catalogues convert in well under a second
    with tqdm(total=sizes, unit="B", unit_scale=True, desc="catalogue store", mininterval=1.0, disable=quiet) as bar:
        attr_rows = _convert_records(attribute_path, out / f"{_ATTRIBUTES}.arrow", validate_attribute_record, bar)
        human_rows = _convert_records(human_path, out / f"{_HUMAN}.arrow", validate_human_record, bar)
        attr_table = _open_table(out / f"{_ATTRIBUTES}.arrow")
        attr_keys, attr_perm = _sorted_keys(attr_rows)

        def attributes_of(asin: str) -> dict[str, Any] | None:
            row = _lookup(attr_keys, attr_perm, asin)
            return None if row < 0 else json.loads(attr_table.value(row))

        products = _TableWriter(out / f"{_PRODUCTS}.arrow")
        raw_rows, lo, hi, ranged = [], [], [], []
        seen: set[str] = set()
        row = -1
        for row, raw in enumerate(_iter_json(product_path, "list", bar)):
            where = f"{product_path.name}[{row}]"
            if not isinstance(raw, dict) or not isinstance(raw.get("asin"), str):
                raise CatalogError(f"{where}: missing field 'asin' (each product needs a string asin).")
            asin = raw["asin"]
            if asin == "nan" or len(asin) > 10 or asin in seen:
                continue
            seen.add(asin)
            record = attributes_of(asin)
            product = clean_product(raw, {asin: record} if record is not None else {}, where)
            products.add(asin, _dumps(product))
            raw_rows.append(row)
            pricing = product["pricing"]
            lo.append(pricing[0])
            hi.append(pricing[1] if len(pricing) > 1 else pricing[0])
            ranged.append(len(pricing) > 1)
        products.close()
        del seen
    if not products.asins:
        raise CatalogError(f"{product_path}: no usable products (every row was skipped or the list is empty).")
    arrays["products.raw_row"] = np.array(raw_rows, dtype=np.int64)
    arrays["products.price_lo"] = np.array(lo, dtype=np.float64)
    arrays["products.price_hi"] = np.array(hi, dtype=np.float64)
    arrays["products.ranged"] = np.array(ranged, dtype=bool)
    arrays["products.keys"], arrays["products.perm"] = _sorted_keys(products.asins, upper=True)
    exact_keys, exact_perm = _sorted_keys(products.asins)
    arrays["products.exact_keys"], arrays["products.exact_perm"] = exact_keys, exact_perm
    for name, asins in ((_ATTRIBUTES, attr_rows), (_HUMAN, human_rows)):
        keys, perm = _sorted_keys(asins)
        product = np.array([_lookup(exact_keys, exact_perm, a) for a in asins], dtype=np.int64)
        arrays[f"{name}.keys"], arrays[f"{name}.perm"], arrays[f"{name}.product"] = keys, perm, product
        arrays[f"{name}.order"] = _record_order(keys, perm, product)
    arrays.update(_human_goal_rows(_open_table(out / f"{_HUMAN}.arrow"), arrays["human.order"], arrays["human.product"]))
    for name, array in arrays.items():
        np.save(out / f"{name}.npy", array, allow_pickle=False)
    return {"rows": {_PRODUCTS: len(products.asins), _ATTRIBUTES: len(attr_rows), _HUMAN: len(human_rows)},
            "raw_rows": row + 1}


def _human_goal_rows(table: _Table, order: np.ndarray, product: np.ndarray) -> dict[str, np.ndarray]:
    """(product, record row, position in its list) of every human instruction that makes a goal.

    In catalogue order; WebShop skips instructions without `instruction_attributes`.
    """
    products, rows, positions = [], [], []
    for row in order.tolist():
        for pos, ins in enumerate(json.loads(table.value(row))):
            if ins["instruction_attributes"]:
                products.append(int(product[row]))
                rows.append(row)
                positions.append(pos)
    return {
        "human_goals.product": np.array(products, dtype=np.int64),
        "human_goals.row": np.array(rows, dtype=np.int64),
        "human_goals.pos": np.array(positions, dtype=np.int64),
    }


def _convert_records(path: Path | None, out: Path, validate, bar: tqdm) -> list[str]:
    """Stream a JSON object file (asin -> value) into an Arrow table; return its keys in order."""
    writer = _TableWriter(out)
    if path is not None:
        for asin, value in _iter_json(path, "dict", bar):
            validate(path, asin, value)
            writer.add(asin, _dumps(value))
    writer.close()
    return writer.asins


# ---------------------------------------------------------------------------------------------
# Reading


class _Table:
    """A memory-mapped (asin, value) Arrow file with O(1) access to one row's value bytes."""

    def __init__(self, path: Path) -> None:
        self._reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
        self._batches = [self._reader.get_batch(i) for i in range(self._reader.num_record_batches)]
        self.num_rows = sum(b.num_rows for b in self._batches)
        self._offsets, self._data = [], []
        for batch in self._batches:
            column = batch.column(1)
            buffers = column.buffers()
            self._offsets.append(np.frombuffer(buffers[1], dtype=np.int64, count=len(column) + 1, offset=column.offset * 8))
            self._data.append(memoryview(buffers[2]) if buffers[2] is not None else memoryview(b""))
        for batch in self._batches[:-1]:
            if batch.num_rows != BATCH_ROWS:
                raise StoreError(f"{path}: record batches are not of {BATCH_ROWS} rows")

    def value(self, row: int) -> bytes:
        batch, j = divmod(row, BATCH_ROWS)
        offsets = self._offsets[batch]
        return bytes(self._data[batch][offsets[j]:offsets[j + 1]])

    def asin(self, row: int) -> str:
        batch, j = divmod(row, BATCH_ROWS)
        return self._batches[batch].column(0)[j].as_py()

    def asin_chunks(self) -> Iterator[list[str]]:
        for batch in self._batches:
            yield batch.column(0).to_pylist()


def _open_table(path: Path) -> _Table:
    return _Table(path)


def _read_store_meta(path: Path) -> dict[str, Any]:
    meta_path = path / STORE_META
    if not meta_path.is_file():
        raise StoreError(f"{meta_path} is missing: the store is incomplete")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StoreError(f"{meta_path} is unreadable: {e}") from e
    if not isinstance(meta, dict):
        raise StoreError(f"{meta_path} does not hold a JSON object")
    return meta


def _store_files(path: Path) -> list[Path]:
    return [path / f"{t}.arrow" for t in _TABLES] + [path / f"{a}.npy" for a in _ARRAYS]


class CatalogStore:
    """An opened store folder (see the module docstring); read-only and shared by processes.

    Raises:
        StoreError: the folder is incomplete, truncated, from another source hash or format.
    """

    def __init__(self, path: Path, source_hash: str) -> None:
        self.path = path
        meta = _read_store_meta(path)
        if meta.get("format") != STORE_FORMAT:
            raise StoreError(f"{path}: store format {meta.get('format')!r}, this version reads {STORE_FORMAT}")
        if meta.get("source_hash") != source_hash:
            raise StoreError(f"{path}: store of source hash {meta.get('source_hash')!r}, expected {source_hash!r}")
        sizes = meta.get("sizes", {})
        for file in _store_files(path):
            if not file.is_file() or file.stat().st_size != sizes.get(file.name):
                raise StoreError(f"{file}: missing or of another size than recorded (truncated?)")
        self.meta = meta
        self.tables = {t: _Table(path / f"{t}.arrow") for t in _TABLES}
        self.arrays = {a: np.load(path / f"{a}.npy", mmap_mode="r", allow_pickle=False) for a in _ARRAYS}
        for t in _TABLES:
            if self.tables[t].num_rows != meta["rows"][t] or self.arrays[f"{t}.perm"].shape != (meta["rows"][t],):
                raise StoreError(f"{path}: table {t} has other row counts than recorded")

    @property
    def num_products(self) -> int:
        return self.tables[_PRODUCTS].num_rows

    def limit(self, num_products: int | None) -> int:
        """Products kept when only the first `num_products` raw rows are read."""
        if num_products is None:
            return self.num_products
        return int(np.searchsorted(self.arrays["products.raw_row"], num_products, side="left"))

    def prices(self, n: int, seed: int) -> list[float]:
        """Bought prices of the first `n` products; ranged prices drawn uniformly with `seed`.

        The same draws, in the same order, as ``random.Random(seed).uniform(lo, hi)`` per
        ranged product (``uniform`` is ``lo + (hi - lo) * random()``).
        """
        import random

        lo = np.array(self.arrays["products.price_lo"][:n])
        hi = self.arrays["products.price_hi"][:n]
        ranged = np.flatnonzero(self.arrays["products.ranged"][:n])
        rng = random.Random(seed)
        draws = np.fromiter((rng.random() for _ in range(ranged.size)), dtype=np.float64, count=ranged.size)
        lo[ranged] = lo[ranged] + (hi[ranged] - lo[ranged]) * draws
        return lo.tolist()

    def records_in_catalog_order(self, table: str, n: int) -> Iterator[tuple[int, Any]]:
        """(product index, record) for every record of `table` whose product is among the first `n`."""
        rows = self.arrays[f"{table}.order"]
        product = self.arrays[f"{table}.product"]
        source = self.tables[table]
        for row in rows:
            index = int(product[row])
            if index >= n:
                break
            yield index, json.loads(source.value(int(row)))


def store_files_meta(path: Path, source_hash: str, counts: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "format": STORE_FORMAT,
        "source_hash": source_hash,
        **counts,
        "build_seconds": seconds,
        "sizes": {f.name: f.stat().st_size for f in _store_files(path)},
    }


def open_store(
    product_path: Path, attribute_path: Path, human_path: Path | None, source_hash: str, store_dir: Path
) -> CatalogStore:
    """Open the store of these files in ``store_dir / f"catalog-{source_hash}"``, building it if needed.

    A store that is missing, incomplete, truncated, of another source hash or of an older
    format is (re)built, with a log line saying why and where.

    Raises:
        CatalogError: the source files are malformed.
    """
    from webshop_env.search.engine import _publish_dir, _remove_dir  # one atomic-publish helper

    path = Path(store_dir) / f"catalog-{source_hash}"
    if path.exists():
        try:
            return CatalogStore(path, source_hash)
        except (StoreError, OSError, pa.ArrowInvalid, ValueError, KeyError, TypeError) as e:
            logger.warning("rebuilding the catalogue store %s: %s", path, e)
            _remove_dir(path)
    logger.info("building the catalogue store of %s in %s (once per content hash)", product_path.parent, path)

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        counts = convert(product_path, attribute_path, human_path, tmp)
        meta = store_files_meta(tmp, source_hash, counts, time.perf_counter() - start)
        (tmp / STORE_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        logger.info("built the catalogue store (%d products) in %.1fs", counts["rows"][_PRODUCTS], meta["build_seconds"])

    def is_valid(p: Path) -> bool:
        try:
            CatalogStore(p, source_hash)
        except (StoreError, OSError, pa.ArrowInvalid, ValueError, KeyError, TypeError):
            return False
        return True

    _publish_dir(path, build, is_valid)
    return CatalogStore(path, source_hash)


# ---------------------------------------------------------------------------------------------
# Lazy views used by `Catalog`


class ProductSequence(Sequence):
    """The first `n` products of a store as a read-only sequence of cleaned product dicts.

    Indexing decodes one product's JSON (a few µs) and keeps the last `cache_size` decoded
    products, so pages shown again cost a dict look-up; iteration decodes in order without
    filling the cache.
    """

    def __init__(self, store: CatalogStore, n: int, cache_size: int = PRODUCT_CACHE_SIZE) -> None:
        self._table = store.tables[_PRODUCTS]
        self._n = n
        self._get = lru_cache(maxsize=cache_size)(self._decode)

    def _decode(self, i: int) -> dict[str, Any]:
        return json.loads(self._table.value(i))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"product index {i} out of range (0..{self._n - 1})")
        return self._get(i)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self._n):
            yield self._decode(i)

    def asin_column(self) -> AsinColumn:
        """Every product's asin, in catalogue order, read from the asin column (no decoding)."""
        return AsinColumn(self._table, self._n)


class AsinColumn(Sequence):
    """The asins of the first `n` products as a lazy sequence of strings."""

    def __init__(self, table: _Table, n: int) -> None:
        self._table, self._n = table, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._table.asin(j) for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"asin index {i} out of range")
        return self._table.asin(i % self._n)

    def __iter__(self) -> Iterator[str]:
        left = self._n
        for chunk in self._table.asin_chunks():
            yield from chunk[:left]
            left -= len(chunk)
            if left <= 0:
                return


class AsinIndex(Mapping):
    """Upper-cased asin -> product index, by binary search over the store's sorted keys."""

    def __init__(self, store: CatalogStore, n: int) -> None:
        self._keys = store.arrays["products.keys"]
        self._perm = store.arrays["products.perm"]
        self._n = n

    def get(self, key: Any, default: Any = None) -> Any:
        if not isinstance(key, str):
            return default
        # the last index among asins equal after upper-casing, as a dict built in order keeps,
        # but only among the first n products
        keys, perm = self._keys, self._perm
        try:
            probe = np.bytes_(key.encode("utf-8"))
        except UnicodeError:
            return default
        if keys.size == 0 or len(probe) > keys.dtype.itemsize:
            return default
        lo = int(np.searchsorted(keys, probe, side="left"))
        hi = int(np.searchsorted(keys, probe, side="right"))
        kept = [int(perm[p]) for p in range(lo, hi) if perm[p] < self._n]
        return kept[-1] if kept else default

    def __getitem__(self, key: Any) -> int:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: Any) -> bool:
        return self.get(key) is not None

    def _kept_keys(self) -> np.ndarray:
        """Distinct sorted keys among the first n products."""
        keys = self._keys[np.asarray(self._perm) < self._n]
        if keys.size < 2:
            return keys
        return keys[np.concatenate(([True], keys[1:] != keys[:-1]))]

    def __len__(self) -> int:
        return int(self._kept_keys().size)

    def __iter__(self) -> Iterator[str]:
        for key in self._kept_keys():
            yield key.decode("utf-8")


class RecordMap(Mapping):
    """asin -> record of an attribute or human-instruction file, decoded on access."""

    def __init__(self, store: CatalogStore, table: str) -> None:
        self._keys = store.arrays[f"{table}.keys"]
        self._perm = store.arrays[f"{table}.perm"]
        self._table = store.tables[table]

    def __getitem__(self, key: Any) -> Any:
        row = _lookup(self._keys, self._perm, key) if isinstance(key, str) else -1
        if row < 0:
            raise KeyError(key)
        return json.loads(self._table.value(row))

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and _lookup(self._keys, self._perm, key) >= 0

    def __len__(self) -> int:
        keys = self._keys
        return int(keys.size and 1 + np.count_nonzero(keys[1:] != keys[:-1]))

    def __iter__(self) -> Iterator[str]:
        keys = self._keys
        for i in range(keys.size):
            if i + 1 == keys.size or keys[i] != keys[i + 1]:
                yield keys[i].decode("utf-8")
