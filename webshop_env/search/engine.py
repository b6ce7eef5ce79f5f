"""Product search with WebShop's ranking: Lucene BM25 over one text document per product.

WebShop searched a pyserini (Lucene) index with BM25 (k1=0.9, b=0.4) and Anserini's default
English analyzer. `BM25Engine` reproduces those rankings without Java: it stores a bm25s sparse
index (vocabulary plus a CSC matrix of per-term scores) whose scores are computed with Lucene's
formulas and float32 arithmetic:

* idf = ln(1 + (N - df + 0.5) / (df + 0.5)) cast to float32, N = documents with >= 1 term;
* document length = number of indexed tokens (stopwords excluded), stored as Lucene's one-byte
  norm (`SmallFloat.intToByte4`), so long documents share quantised lengths;
* avgdl = total tokens / N (float32);
* term score = w - w / (1 + tf * normInverse), normInverse = 1 / (k1 * ((1 - b) + b * dl / avgdl)),
  w = count_in_query * idf, all in float32 (Lucene 9's BM25Similarity);
* a document's score is the float64 sum of its term scores cast to float32;
* hits are ordered by score, then by the document's id string (Anserini sorts ties by the
  collection docid, which was the ASIN in WebShop), then by catalogue index.

`PyseriniEngine` runs the real thing (pyserini 0.25 and a Java runtime 11 or newer, e.g. Debian's
OpenJDK 17) and serves as the reference.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from webshop_env.search import kernel
from webshop_env.search.analyzer import ANALYZER_VERSION, Analyzer

logger = logging.getLogger(__name__)

SEARCH_BACKENDS = ("bm25s", "pyserini")
TIE_BREAKS = ("asin", "index")
DEFAULT_K1 = 0.9
DEFAULT_B = 0.4
DEFAULT_CACHE_SIZE = 4096
INDEX_FORMAT = 1  # the pyserini index's
BM25_INDEX_FORMAT = 2  # 2: with the compiled search's score bounds (term_bounds.npy, block_*.npy)
META_FILE = "webshop_index.json"
_TF_FILE = "tf.npy"
_NORMS_FILE = "norms.npy"
_TIE_FILE = "tie_rank.npy"
_BOUNDS_FILE = "term_bounds.npy"
_BLOCK_ROWS_FILE = "block_rows.npy"
_BLOCK_MAX_FILE = "block_max.npy"
_SAFE_HASH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NUM_FREE_VALUES = 24  # SmallFloat: 255 - longToInt4(Integer.MAX_VALUE)
_BUILD_CHUNK = 8192


def build_document(product: dict[str, Any]) -> str:
    """WebShop's search document of a product.

    ``lower(Title + ' ' + Description + ' ' + BulletPoints[0] + ' ' + option_text)``, where
    option_text is ``"name: v1, v2, and name2: w1"`` over the cleaned options in order; an
    empty BulletPoints list contributes ''.
    """
    bullets = product.get("BulletPoints") or [""]
    option_text = ", and ".join(
        f"{name}: {', '.join(values)}" for name, values in (product.get("options") or {}).items()
    )
    parts = (product.get("Title", ""), product.get("Description", ""), bullets[0], option_text)
    return " ".join(parts).lower()


# ---------------------------------------------------------------------------------------------
# Lucene's one-byte length norm (org.apache.lucene.util.SmallFloat)


def _long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i  # subnormal value
    shift = num_bits - 4
    encoded = (i >> shift) & 0x07  # the leading bit is implicit
    return encoded | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits = i & 0x07
    shift = (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


def int_to_byte4(length: int) -> int:
    """Lucene's ``SmallFloat.intToByte4``: a document length as an unsigned byte (0..255)."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length < _NUM_FREE_VALUES:
        return length
    return _NUM_FREE_VALUES + _long_to_int4(length - _NUM_FREE_VALUES)


def byte4_to_int(code: int) -> int:
    """Lucene's ``SmallFloat.byte4ToInt``: the (rounded-down) length a norm byte stands for."""
    code &= 0xFF
    if code < _NUM_FREE_VALUES:
        return code
    return _NUM_FREE_VALUES + _int4_to_long(code - _NUM_FREE_VALUES)


def encode_lengths(lengths: np.ndarray) -> np.ndarray:
    """Vectorised `int_to_byte4` (uint8 norms)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    unique, inverse = np.unique(lengths, return_inverse=True)
    codes = np.array([int_to_byte4(int(v)) for v in unique], dtype=np.uint8)
    return codes[inverse].reshape(lengths.shape)


def _norm_inverse_table(avgdl: np.float32, k1: float, b: float) -> np.ndarray:
    """BM25Similarity's 256-entry cache 1 / (k1 * ((1 - b) + b * dl / avgdl)), in float32."""
    length_table = np.array([byte4_to_int(i) for i in range(256)], dtype=np.float32)
    one, k1f, bf = np.float32(1.0), np.float32(k1), np.float32(b)
    return one / (k1f * ((one - bf) + bf * length_table / np.float32(avgdl)))


def _idf(df: np.ndarray | int, doc_count: int) -> np.ndarray:
    """Lucene's idf in double precision, cast to float32."""
    df = np.asarray(df, dtype=np.float64)
    return np.log(1.0 + (doc_count - df + 0.5) / (df + 0.5)).astype(np.float32)


def _term_scores(weight: np.ndarray, tf: np.ndarray, norm_inverse: np.ndarray) -> np.ndarray:
    """``weight - weight / (1 + tf * normInverse)`` in float32, operation by operation."""
    x = np.float32(1.0) + tf.astype(np.float32) * norm_inverse
    return weight - weight / x


# ---------------------------------------------------------------------------------------------
# Engine protocol and shared pieces


@runtime_checkable
class SearchEngine(Protocol):
    """What the environment needs from a search backend."""

    build_seconds: float

    def search(self, query: str, k: int = 50) -> list[int]:
        """Product indices of the best `k` hits (score > 0), best first."""
        ...


class _ResultCache:
    """A small thread-safe LRU map (query, k) -> immutable result tuple."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"cache_size must be >= 0, got {size}")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[tuple[str, int], tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> tuple[int, ...] | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, int], value: tuple[int, ...]) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "size": len(self._data), "max_size": self.size}


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")


def _tie_ranks(doc_ids: Sequence[str] | None, num_docs: int) -> np.ndarray | None:
    """Rank of each document in ascending id order (stable, so equal ids keep index order)."""
    if doc_ids is None:
        return None
    if len(doc_ids) != num_docs:
        raise ValueError(f"doc_ids has {len(doc_ids)} entries for {num_docs} documents")
    order = sorted(range(num_docs), key=doc_ids.__getitem__)
    ranks = np.empty(num_docs, dtype=np.int32 if num_docs < 2**31 else np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(num_docs)
    return ranks


# ---------------------------------------------------------------------------------------------
# Index construction


class _RawTermIds(dict):
    """Raw token -> term id (-1 for stopwords), growing the vocabulary on a miss."""

    def __init__(self, analyzer: Analyzer, vocab: dict[str, int]) -> None:
        super().__init__()
        self._analyzer = analyzer
        self._vocab = vocab

    def __missing__(self, token: str) -> int:
        term = self._analyzer.analyze_token(token)
        term_id = -1 if term is None else self._vocab.setdefault(term, len(self._vocab))
        self[token] = term_id
        return term_id


def _count_chunk(
    id_lists: list[list[int]], offset: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(doc, term, tf) postings of one chunk of documents, sorted by doc then term, and lengths."""
    counts = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    flat = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(counts.sum()))
    local = np.repeat(np.arange(len(id_lists), dtype=np.int64), counts)
    keep = flat >= 0
    flat, local = flat[keep], local[keep]
    lengths = np.bincount(local, minlength=len(id_lists))
    keys, tf = np.unique((local << 32) | flat, return_counts=True)
    return (keys >> 32) + offset, keys & 0xFFFFFFFF, tf, lengths


def _invert(documents: Sequence[str], analyzer: Analyzer) -> dict[str, Any]:
    """Tokenise every document and collect postings, lengths and the vocabulary."""
    vocab: dict[str, int] = {}
    raw_ids = _RawTermIds(analyzer, vocab)
    docs, terms, tfs, lengths = [], [], [], []
    for start in range(0, len(documents), _BUILD_CHUNK):
        chunk = documents[start : start + _BUILD_CHUNK]
        id_lists = [list(map(raw_ids.__getitem__, analyzer.tokenize(text))) for text in chunk]
        d, t, f, n = _count_chunk(id_lists, start)
        docs.append(d)
        terms.append(t)
        tfs.append(f)
        lengths.append(n)
    empty = np.zeros(0, dtype=np.int64)
    return {
        "vocab": vocab,
        "doc": np.concatenate(docs) if docs else empty,
        "term": np.concatenate(terms) if terms else empty,
        "tf": np.concatenate(tfs) if tfs else empty,
        "lengths": np.concatenate(lengths) if lengths else empty,
    }


def _lucene_csc(inv: dict[str, Any], k1: float, b: float) -> dict[str, Any]:
    """Lucene BM25 per-term scores as a CSC matrix (columns = terms, rows = documents)."""
    lengths, doc, term, tf = inv["lengths"], inv["doc"], inv["term"], inv["tf"]
    num_terms = len(inv["vocab"])
    doc_count = int(np.count_nonzero(lengths))
    total = int(lengths.sum())
    avgdl = np.float32(total / doc_count) if doc_count else np.float32(0.0)
    df = np.bincount(term, minlength=num_terms)
    norms = encode_lengths(lengths)
    if doc_count:
        norm_inverse = _norm_inverse_table(avgdl, k1, b)
        scores = _term_scores(_idf(df, doc_count)[term], tf, norm_inverse[norms[doc]])
    else:
        scores = np.zeros(0, dtype=np.float32)
    order = np.argsort(term, kind="stable")  # documents stay ascending within a term
    indptr = np.zeros(num_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    tf_dtype = np.uint16 if tf.size == 0 or tf.max() <= np.iinfo(np.uint16).max else np.uint32
    return {
        "vocab": inv["vocab"],
        "data": scores[order].astype(np.float32),
        "indices": doc[order].astype(np.int32),
        "indptr": indptr,
        "tf": tf[order].astype(tf_dtype),
        "norms": norms,
        "doc_count": doc_count,
        "total_tokens": total,
    }


def _new_bm25s(k1: float, b: float):
    import bm25s  # imported lazily: ~0.15 s, only needed to build, save or load an index

    return bm25s.BM25(k1=k1, b=b, method="lucene", idf_method="lucene", backend="numpy")


# ---------------------------------------------------------------------------------------------
# The default backend


class BM25Engine:
    """Lucene-exact BM25 search over a bm25s sparse index (see the module docstring).

    Args:
        documents: one text per product, in catalogue order (see `build_document`).
        doc_ids: id strings that order equal scores (ascending, like Anserini's sort by
            docid); None orders equal scores by catalogue index.
        k1: BM25 k1 (Lucene keeps it as a float32).
        b: BM25 b.
        cache_size: number of (query, k) results kept in the LRU cache; 0 disables it.

    Attributes:
        build_seconds: time it took to build the index (also when it was loaded from disk).
        load_seconds: time it took to load the index from disk (0.0 when built here).
        from_cache: whether the index was loaded from disk.
    """

    def __init__(
        self,
        documents: Sequence[str],
        *,
        doc_ids: Sequence[str] | None = None,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        start = time.perf_counter()
        analyzer = Analyzer()
        csc = _lucene_csc(_invert(documents, analyzer), k1, b)
        bm25 = _new_bm25s(k1, b)
        bm25.vocab_dict = csc["vocab"]
        bm25.unique_token_ids_set = set(bm25.vocab_dict.values())
        bm25.nonoccurrence_array = None
        bm25.scores = {
            "data": csc["data"],
            "indices": csc["indices"],
            "indptr": csc["indptr"],
            "num_docs": len(documents),
        }
        stats = {"doc_count": csc["doc_count"], "total_tokens": csc["total_tokens"]}
        tie_rank = _tie_ranks(doc_ids, len(documents))
        self._init_state(analyzer, bm25, csc["tf"], csc["norms"], tie_rank, stats, cache_size, None)
        self.build_seconds = time.perf_counter() - start
        self.load_seconds = 0.0
        self.from_cache = False
        logger.info(
            "built BM25 index of %d documents (%d terms) in %.2fs",
            self.num_docs, len(self._vocab), self.build_seconds,
        )

    def _init_state(
        self,
        analyzer: Analyzer,
        bm25: Any,
        tf: np.ndarray,
        norms: np.ndarray,
        tie_rank: np.ndarray | None,
        stats: dict[str, int],
        cache_size: int,
        bounds: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> None:
        self.analyzer = analyzer
        self._bm25 = bm25
        self.k1 = float(bm25.k1)
        self.b = float(bm25.b)
        self._vocab: dict[str, int] = bm25.vocab_dict
        self._data: np.ndarray = bm25.scores["data"]
        self._indices: np.ndarray = bm25.scores["indices"]
        self._indptr: np.ndarray = bm25.scores["indptr"]
        self.num_docs = int(bm25.scores["num_docs"])
        self._tf = tf
        self._norms = norms
        self._tie_rank = tie_rank
        self.doc_count = int(stats["doc_count"])
        self.total_tokens = int(stats["total_tokens"])
        self.avgdl = np.float32(self.total_tokens / self.doc_count) if self.doc_count else np.float32(0)
        self._norm_inverse = (
            _norm_inverse_table(self.avgdl, self.k1, self.b) if self.doc_count else np.zeros(256, np.float32)
        )
        self._cache = _ResultCache(cache_size)
        # plain ndarray views (memory maps included) for the compiled kernel
        self._k_data, self._k_indices = np.asarray(self._data), np.asarray(self._indices)
        self._k_tf, self._k_indptr, self._k_norms = np.asarray(tf), np.asarray(self._indptr), np.asarray(norms)
        self._k_tie = np.asarray(tie_rank) if tie_rank is not None else np.zeros(1, dtype=np.int32)
        if bounds is None:  # the compiled search's score bounds: per term, and per term and block
            term = kernel.term_bounds(
                self._k_data, self._k_indices, self._k_tf, self._k_indptr, self._k_norms, self._norm_inverse,
            )
            blocks = kernel.block_maxima(self._k_data, self._k_indices, self._k_indptr, self.num_docs, term[0])
            bounds = (term, *blocks)
        self._bounds, self._block_rows, self._block_max = (np.asarray(a) for a in bounds)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: Path | str, extra_meta: dict[str, Any] | None = None) -> None:
        """Write the index to the directory `path` (bm25s files plus our arrays and metadata).

        The metadata file is written last, so a directory without it is incomplete.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._bm25.save(path, show_progress=False)
        np.save(path / _TF_FILE, self._tf, allow_pickle=False)
        np.save(path / _NORMS_FILE, self._norms, allow_pickle=False)
        if self._tie_rank is not None:
            np.save(path / _TIE_FILE, self._tie_rank, allow_pickle=False)
        np.save(path / _BOUNDS_FILE, self._bounds, allow_pickle=False)
        np.save(path / _BLOCK_ROWS_FILE, self._block_rows, allow_pickle=False)
        np.save(path / _BLOCK_MAX_FILE, self._block_max, allow_pickle=False)
        meta = {
            "format": BM25_INDEX_FORMAT,
            "backend": "bm25s",
            "analyzer": ANALYZER_VERSION,
            "num_docs": self.num_docs,
            "doc_count": self.doc_count,
            "total_tokens": self.total_tokens,
            "k1": self.k1,
            "b": self.b,
            "tie_break": "index" if self._tie_rank is None else "id",
            "build_seconds": self.build_seconds,
            **(extra_meta or {}),
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str, *, cache_size: int = DEFAULT_CACHE_SIZE) -> BM25Engine:
        """Load an index written by `save`.

        Raises:
            FileNotFoundError: the directory or one of its files is missing.
            ValueError: the files are inconsistent or from another index format.
        """
        import bm25s

        start = time.perf_counter()
        path = Path(path)
        meta = _read_meta(path)
        if meta.get("format") != BM25_INDEX_FORMAT or meta.get("analyzer") != ANALYZER_VERSION:
            raise ValueError(f"{path}: index format or analyzer version differs; rebuild it")
        # Memory-mapped: processes on a node share the index's pages, and opening reads nothing.
        bm25 = bm25s.BM25.load(path, show_progress=False, mmap=True)
        tf = np.load(path / _TF_FILE, allow_pickle=False, mmap_mode="r")
        norms = np.load(path / _NORMS_FILE, allow_pickle=False, mmap_mode="r")
        tie_rank = np.load(path / _TIE_FILE, allow_pickle=False, mmap_mode="r") if meta["tie_break"] == "id" else None
        engine = cls.__new__(cls)
        bounds = tuple(
            np.load(path / name, allow_pickle=False, mmap_mode="r")
            for name in (_BOUNDS_FILE, _BLOCK_ROWS_FILE, _BLOCK_MAX_FILE)
        )
        engine._init_state(Analyzer(), bm25, tf, norms, tie_rank, meta, cache_size, bounds)
        engine._validate(meta)
        engine.build_seconds = float(meta.get("build_seconds", 0.0))
        engine.load_seconds = time.perf_counter() - start
        engine.from_cache = True
        logger.info("loaded BM25 index of %d documents from %s in %.2fs", engine.num_docs, path, engine.load_seconds)
        return engine

    def _validate(self, meta: dict[str, Any]) -> None:
        nnz = self._indptr[-1] if self._indptr.size else 0
        problems = []
        if self.num_docs != meta["num_docs"] or self._norms.shape != (self.num_docs,):
            problems.append("document count")
        if self._indptr.shape != (len(self._vocab) + 1,):
            problems.append("vocabulary size")
        if not (self._data.shape == self._indices.shape == self._tf.shape == (nnz,)):
            problems.append("posting arrays")
        if self._tie_rank is not None and self._tie_rank.shape != (self.num_docs,):
            problems.append("tie ranks")
        num_blocks = -(-self.num_docs // kernel.BLOCK)
        if (
            self._bounds.shape != (4, len(self._vocab)) or self._block_rows.shape != (len(self._vocab),)
            or self._block_max.ndim != 2 or self._block_max.shape[1] != num_blocks
            or self._block_max.shape[0] != int(np.count_nonzero(np.asarray(self._block_rows) >= 0))
        ):
            problems.append("score bounds")
        if problems:
            raise ValueError(f"inconsistent index ({', '.join(problems)}); rebuild it")

    # -- search ------------------------------------------------------------------------------

    def cache_info(self) -> dict[str, int]:
        """LRU result cache statistics: hits, misses, size, max_size."""
        return self._cache.info()

    def search(self, query: str, k: int = 50) -> list[int]:
        """Indices of the `k` best documents for `query` (score > 0), best first.

        Queries with no indexed term (empty, only stopwords or unknown words) give [].
        """
        _check_k(k)
        key = (query, int(k))
        hit = self._cache.get(key)
        if hit is None:
            hit = tuple(self._search_postings(query, int(k)))
            self._cache.put(key, hit)
        return list(hit)

    def _kernel_query(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """The query's distinct term ids and their kernel weights (0: the stored score)."""
        counts = self._query_terms(query)
        term_ids = np.fromiter(counts, dtype=np.int64, count=len(counts))
        weights = np.array(
            [0.0 if c == 1 else np.float32(c) * _idf(self._df(t), self.doc_count) for t, c in counts.items()],
            dtype=np.float32,
        )
        return term_ids, weights

    def _search_postings(self, query: str, k: int) -> list[int]:
        """The compiled path (`webshop_env.search.kernel`): only the query terms' postings."""
        term_ids, weights = self._kernel_query(query)
        if not term_ids.size or k == 0:
            return []
        if not kernel.sums_are_exact(self._bounds, term_ids, weights):
            return self._search_dense(query, k)  # a near-universal term in a huge catalogue
        docs = kernel.top_k(
            self._k_data, self._k_indices, self._k_tf, self._k_indptr, self._k_norms, self._norm_inverse,
            self._k_tie, self._tie_rank is not None, term_ids, weights, self._bounds, self._block_rows,
            self._block_max, k,
        )
        return docs.tolist()

    def _df(self, term_id: int) -> int:
        return int(self._indptr[term_id + 1] - self._indptr[term_id])

    def _search_dense(self, query: str, k: int) -> list[int]:
        """The numpy path over a dense score array: the reference the compiled path matches."""
        return self._top_k(*self._match(query), k)

    def scores(self, query: str) -> np.ndarray:
        """Lucene score of every document for `query` (float32, 0 where nothing matches)."""
        out = np.zeros(self.num_docs, dtype=np.float32)
        docs, scores = self._match(query)
        out[docs] = scores
        return out

    def _query_terms(self, query: str) -> dict[int, int]:
        """Term id -> number of occurrences in the analysed query (unknown terms dropped)."""
        counts: dict[int, int] = {}
        for term in self.analyzer.tokens(query):
            term_id = self._vocab.get(term)
            if term_id is not None:
                counts[term_id] = counts.get(term_id, 0) + 1
        return counts

    def _postings(self, term_id: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self._indptr[term_id]), int(self._indptr[term_id + 1])
        docs = self._indices[lo:hi]
        if count == 1:
            return docs, self._data[lo:hi]
        # Anserini boosts a repeated term by its count: weight = count * idf, in float32.
        weight = np.float32(count) * _idf(hi - lo, self.doc_count)
        return docs, _term_scores(weight, self._tf[lo:hi], self._norm_inverse[self._norms[docs]])

    def _match(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Matching documents (ascending) and their float32 scores."""
        counts = self._query_terms(query)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(counts) == 1:
            ((term_id, count),) = counts.items()
            return self._postings(term_id, count)
        total = np.zeros(self.num_docs, dtype=np.float64)
        for term_id, count in counts.items():
            docs, scores = self._postings(term_id, count)
            total[docs] += scores  # documents are unique within a posting list
        docs = np.flatnonzero(total)
        return docs, total[docs].astype(np.float32)

    def _top_k(self, docs: np.ndarray, scores: np.ndarray, k: int) -> list[int]:
        """The k best documents by score, then tie rank, then index; ties at the cut included."""
        n = docs.size
        if n == 0 or k == 0:
            return []
        if n > k:
            kth = np.partition(scores, n - k)[n - k]  # the k-th largest score
            keep = scores >= kth
            docs, scores = docs[keep], scores[keep]
        ties = docs if self._tie_rank is None else self._tie_rank[docs]
        order = np.lexsort((docs, ties, -scores))
        return docs[order[:k]].tolist()


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} is missing: the index is incomplete")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} does not hold a JSON object")
    return meta


def _meta_matches(path: Path, expected: dict[str, Any]) -> bool:
    """True when `path` holds a complete index whose metadata has the expected values."""
    try:
        meta = _read_meta(path)
    except (OSError, ValueError):
        return False
    return all(meta.get(key) == value for key, value in expected.items())


def _remove_dir(path: Path) -> None:
    """Move a directory aside (one atomic step), then delete it."""
    stale = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, stale)
    except FileNotFoundError:
        return
    shutil.rmtree(stale, ignore_errors=True)


def _publish_dir(final: Path, build: Callable[[Path], None], is_valid: Callable[[Path], bool]) -> None:
    """Build a directory under a temporary name, then rename it to `final` in one step.

    A crash leaves only a hidden ``.<name>.tmp-*`` directory, never a `final` that looks
    complete. An invalid `final` (say, half-written by an older writer) is replaced; a valid
    one published meanwhile by another process is kept.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        build(tmp)
        for _ in range(3):
            try:
                os.rename(tmp, final)
                return
            except OSError:
                if not final.exists():
                    raise
            if is_valid(final):
                return
            _remove_dir(final)
        raise OSError(f"could not publish {final}: another process keeps replacing it")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The reference backend (pyserini / Lucene)

_PYSERINI_HINT = (
    "the 'pyserini' search backend needs pyserini 0.25 and a Java runtime (11 or newer): "
    "pip install -e .[pyserini] and, e.g., apt-get install default-jre-headless"
)
_OPENAI_KEY = "OPENAI_API_KEY"


def _import_lucene_searcher() -> Any:
    # Importing pyserini.search (0.25) builds an OpenAI client for its dense encoders from
    # OPENAI_API_KEY, and openai >= 2 refuses the empty key it falls back to. The client is never
    # used for BM25, so a placeholder key is set for the import alone when none is set.
    placeholder = _OPENAI_KEY not in os.environ
    if placeholder:
        os.environ[_OPENAI_KEY] = "unused-by-pyserini-bm25"
    try:
        from pyserini.search.lucene import LuceneSearcher
    except Exception as exc:  # pyjnius raises assorted errors when Java is missing
        raise ImportError(f"{_PYSERINI_HINT} ({type(exc).__name__}: {exc})") from exc
    finally:
        if placeholder:
            os.environ.pop(_OPENAI_KEY, None)
    return LuceneSearcher


def _build_lucene_index(documents: Sequence[str], ids: Sequence[str], out: Path, meta: dict[str, Any]) -> None:
    """Index a JsonCollection {id, contents} with pyserini into ``out/lucene``; write metadata."""
    start = time.perf_counter()
    collection = out / "collection"
    collection.mkdir()
    with (collection / "docs.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, text in zip(ids, documents, strict=True):
            f.write(json.dumps({"id": doc_id, "contents": text}) + "\n")
    # One thread keeps Lucene's doc ids in file order.
    cmd = [
        sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection",
        "--input", str(collection), "--index", str(out / "lucene"),
        "--generator", "DefaultLuceneDocumentGenerator", "--threads", "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pyserini indexing failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    shutil.rmtree(collection)
    meta = {**meta, "build_seconds": time.perf_counter() - start}
    (out / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


class PyseriniEngine:
    """WebShop's original search: a Lucene index searched by pyserini's LuceneSearcher.

    Args:
        documents: one text per product, in catalogue order.
        doc_ids: unique id strings stored as the Lucene docid (Anserini orders equal scores by
            them); None uses zero-padded indices, i.e. ties in catalogue order.
        index_dir: where the index lives; built there (atomically) when missing or incomplete.
            None builds into a temporary directory removed with the engine.
        k1: BM25 k1.
        b: BM25 b.
        cache_size: number of (query, k) results kept in the LRU cache; 0 disables it.
        extra_meta: more metadata an existing index must match (e.g. the content hash).

    Raises:
        ImportError: pyserini (or Java) is not available.
    """

    def __init__(
        self,
        documents: Sequence[str],
        *,
        doc_ids: Sequence[str] | None = None,
        index_dir: Path | str | None = None,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        cache_size: int = DEFAULT_CACHE_SIZE,
        extra_meta: dict[str, Any] | None = None,
    ) -> None:
        searcher_cls = _import_lucene_searcher()
        ids = [f"{i:010d}" for i in range(len(documents))] if doc_ids is None else list(doc_ids)
        self._id_to_index = {doc_id: i for i, doc_id in enumerate(ids)}
        if len(ids) != len(documents) or len(self._id_to_index) != len(ids):
            raise ValueError("doc_ids must hold one unique id per document for the pyserini backend")
        self._tmp = None
        if index_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="webshop-pyserini-")
            index_dir = Path(self._tmp.name) / "index"
        index_dir = Path(index_dir)
        expected = {
            "format": INDEX_FORMAT, "backend": "pyserini", "num_docs": len(documents),
            "tie_break": "index" if doc_ids is None else "id", **(extra_meta or {}),
        }
        self.from_cache = _meta_matches(index_dir, expected)
        if not self.from_cache:
            _publish_dir(
                index_dir,
                lambda tmp: _build_lucene_index(documents, ids, tmp, expected),
                lambda path: _meta_matches(path, expected),
            )
        self.build_seconds = float(_read_meta(index_dir).get("build_seconds", 0.0))
        self._searcher = searcher_cls(str(index_dir / "lucene"))
        self._searcher.set_bm25(k1, b)
        self._cache = _ResultCache(cache_size)
        self.num_docs = len(documents)

    def cache_info(self) -> dict[str, int]:
        """LRU result cache statistics: hits, misses, size, max_size."""
        return self._cache.info()

    def search(self, query: str, k: int = 50) -> list[int]:
        """Indices of the `k` best documents for `query`, best first, as pyserini ranks them."""
        _check_k(k)
        key = (query, int(k))
        hit = self._cache.get(key)
        if hit is None:
            hits = self._searcher.search(query, int(k)) if k > 0 and query.strip() else []
            hit = tuple(self._id_to_index[h.docid] for h in hits)
            self._cache.put(key, hit)
        return list(hit)


# ---------------------------------------------------------------------------------------------
# Entry point


def _doc_ids(products: Sequence[dict[str, Any]], tie_break: str) -> list[str] | None:
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; expected one of: {', '.join(TIE_BREAKS)}")
    if tie_break == "index":
        return None
    column = getattr(products, "asin_column", None)
    if column is not None:  # a catalogue store's asin column: a string per product, no decoding
        return column()
    ids = [p.get("asin") for p in products]
    if all(isinstance(asin, str) for asin in ids):
        return ids
    logger.debug("some products have no asin; equal scores are ordered by catalogue index")
    return None


def _documents(products: Iterable[dict[str, Any]]) -> list[str]:
    return [build_document(p) for p in products]


def open_search_engine(
    products: Sequence[dict[str, Any]],
    content_hash: str,
    backend: str = "bm25s",
    cache_dir: Path | str | None = None,
    *,
    tie_break: str = "asin",
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> SearchEngine:
    """The search engine of a catalogue, built once and kept on disk when `cache_dir` is given.

    Args:
        products: cleaned product dicts in catalogue order (index = document id).
        content_hash: the catalogue's content hash; the index lives in
            ``cache_dir / f"index-{backend}-{content_hash}"``.
        backend: "bm25s" (default, pure Python) or "pyserini" (needs pyserini 0.25 and Java).
        cache_dir: directory for indexes; None builds in memory (bm25s) or in a temporary
            directory (pyserini) every time.
        tie_break: "asin" orders equal scores by ASIN like WebShop's Anserini index (docid =
            ASIN), falling back to catalogue order when a product has no asin; "index" orders
            them by catalogue index.
        cache_size: size of the engine's LRU result cache.

    Raises:
        ValueError: unknown backend or tie_break, or a content hash unfit for a file name.
        ImportError: backend "pyserini" without pyserini installed.
    """
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"unknown search backend {backend!r}; expected one of: {', '.join(SEARCH_BACKENDS)}")
    if not isinstance(content_hash, str) or not _SAFE_HASH.fullmatch(content_hash):
        raise ValueError(f"content_hash must be letters, digits, '.', '_' or '-', got {content_hash!r}")
    doc_ids = _doc_ids(products, tie_break)
    index_dir = None if cache_dir is None else Path(cache_dir) / f"index-{backend}-{content_hash}"
    if backend == "pyserini":
        return PyseriniEngine(
            _documents(products), doc_ids=doc_ids, index_dir=index_dir, cache_size=cache_size,
            extra_meta={"content_hash": content_hash},
        )
    if index_dir is None:
        return BM25Engine(_documents(products), doc_ids=doc_ids, cache_size=cache_size)
    return _open_bm25_cached(products, content_hash, doc_ids, index_dir, cache_size)


def _open_bm25_cached(
    products: Sequence[dict[str, Any]],
    content_hash: str,
    doc_ids: list[str] | None,
    index_dir: Path,
    cache_size: int,
) -> BM25Engine:
    expected = {
        "format": BM25_INDEX_FORMAT, "backend": "bm25s", "analyzer": ANALYZER_VERSION,
        "content_hash": content_hash, "num_docs": len(products), "k1": DEFAULT_K1, "b": DEFAULT_B,
        "tie_break": "index" if doc_ids is None else "id",
    }
    if _meta_matches(index_dir, expected):
        try:
            return BM25Engine.load(index_dir, cache_size=cache_size)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("rebuilding unreadable search index %s: %s", index_dir, exc)
            _remove_dir(index_dir)
    elif (index_dir / META_FILE).is_file():
        logger.info("rebuilding search index %s: built by another format or with other settings", index_dir)
    engine = BM25Engine(_documents(products), doc_ids=doc_ids, cache_size=cache_size)
    try:
        _publish_dir(
            index_dir,
            lambda tmp: engine.save(tmp, extra_meta={"content_hash": content_hash}),
            lambda path: _meta_matches(path, expected),
        )
    except OSError as exc:  # a read-only or full disk must not stop the environment
        logger.warning("could not store the search index in %s: %s", index_dir, exc)
    return engine
