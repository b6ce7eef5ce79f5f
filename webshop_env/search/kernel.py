"""Compiled query scoring: Lucene BM25 over the query terms' postings and an exact top-k.

`BM25Engine._match` scores with numpy over a dense array of every document, which costs
O(documents) per query (about 14 ms at 1.18M products). This kernel touches only the postings
of the query's terms and keeps a k-sized heap, with the same float32/float64 arithmetic in the
same order, so its rankings are those of the numpy path bit for bit:

* a term's score is the stored float32 value, or for a term repeated c times in the query
  ``w - w / (1 + tf * normInverse)`` with ``w = c * idf``, every operation in float32;
* a document's score is the float64 sum of its term scores in query-term order, cast to float32;
* documents are ordered by score (descending), then tie rank, then index (ascending): a total
  order, so the heap's k best are exactly the first k of the full sort.

numba compiles it on first use (cached on disk next to the package where it can write); bm25s
ships a numba backend too, but it scores whole queries into dense arrays and orders ties
differently, which would change WebShop's rankings.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

_ONE = np.float32(1.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _better(s1, t1, d1, s2, t2, d2) -> bool:
    """Whether hit 1 ranks before hit 2."""
    if s1 != s2:
        return s1 > s2
    if t1 != t2:
        return t1 < t2
    return d1 < d2


@numba.njit(cache=True, nogil=True)
def _sift_down(hs, ht, hd, size, i) -> None:
    # a min-heap by rank: the root is the worst of the kept hits
    while True:
        worst, left, right = i, 2 * i + 1, 2 * i + 2
        if left < size and _better(hs[worst], ht[worst], hd[worst], hs[left], ht[left], hd[left]):
            worst = left
        if right < size and _better(hs[worst], ht[worst], hd[worst], hs[right], ht[right], hd[right]):
            worst = right
        if worst == i:
            return
        hs[i], hs[worst] = hs[worst], hs[i]
        ht[i], ht[worst] = ht[worst], ht[i]
        hd[i], hd[worst] = hd[worst], hd[i]
        i = worst


@numba.njit(cache=True, nogil=True)
def _sift_up(hs, ht, hd, i) -> None:
    while i > 0:
        parent = (i - 1) // 2
        if not _better(hs[parent], ht[parent], hd[parent], hs[i], ht[i], hd[i]):
            return
        hs[i], hs[parent] = hs[parent], hs[i]
        ht[i], ht[parent] = ht[parent], ht[i]
        hd[i], hd[parent] = hd[parent], hd[i]
        i = parent


@numba.njit(cache=True, nogil=True)
def top_k(data, indices, tf, indptr, norms, norm_inverse, tie_rank, use_tie, term_ids, weights, k, acc, seen, touched):
    """Indices of the k best documents for the query terms `term_ids`, best first.

    Args:
        data, indices, tf, indptr: the CSC postings (float32 scores, int32 docs, tf, offsets).
        norms, norm_inverse: one-byte length norm per document and its 256-entry table.
        tie_rank, use_tie: rank of each document among ties (ignored when not `use_tie`).
        term_ids, weights: the query's terms in query order; weight 0 means "use the stored
            score", else the float32 ``count * idf`` of a repeated term.
        k: number of hits.
        acc, seen, touched: scratch of one entry per document; acc and seen must be zero and
            are left zero.
    """
    m = 0
    for t in range(term_ids.size):
        term = term_ids[t]
        w = weights[t]
        for p in range(indptr[term], indptr[term + 1]):
            d = indices[p]
            if w == 0:
                s = data[p]
            else:
                x = _ONE + np.float32(tf[p]) * norm_inverse[norms[d]]
                s = w - w / x
            if seen[d] == 0:
                seen[d] = 1
                touched[m] = d
                m += 1
            acc[d] += np.float64(s)
    hs = np.empty(k, np.float32)
    ht = np.empty(k, np.int64)
    hd = np.empty(k, np.int64)
    size = 0
    for j in range(m):
        d = touched[j]
        total = acc[d]
        acc[d] = 0.0
        seen[d] = 0
        if total == 0.0:
            continue  # as flatnonzero on the dense sum
        s = np.float32(total)
        tie = tie_rank[d] if use_tie else d
        if size < k:
            hs[size], ht[size], hd[size] = s, tie, d
            _sift_up(hs, ht, hd, size)
            size += 1
        elif _better(s, tie, d, hs[0], ht[0], hd[0]):
            hs[0], ht[0], hd[0] = s, tie, d
            _sift_down(hs, ht, hd, size, 0)
    out = np.empty(size, np.int64)
    for j in range(size - 1, -1, -1):  # pop the worst first: fills the output back to front
        out[j] = hd[0]
        last = size - 1
        hs[0], ht[0], hd[0] = hs[last], ht[last], hd[last]
        size = last
        _sift_down(hs, ht, hd, size, 0)
    return out


class Scratch(threading.local):
    """Per-thread scratch arrays of one entry per document (zero between queries)."""

    def __init__(self, num_docs: int) -> None:
        self.acc = np.zeros(num_docs, dtype=np.float64)
        self.seen = np.zeros(num_docs, dtype=np.uint8)
        self.touched = np.empty(num_docs, dtype=np.int64)
