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

It is term at a time over a dense accumulator rather than over a list of touched documents: the
postings are sorted by document, so each term is a forward sweep (prefetch-friendly), and a
generated catalogue's few hundred thousand-long posting lists make most documents touched anyway.

numba compiles it on first use (cached on disk next to the package where it can write); bm25s
ships a numba backend too, but it scores whole queries into dense arrays and orders ties
differently, which would change WebShop's rankings.
"""

from __future__ import annotations

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


@numba.njit(cache=True, nogil=True, inline="always")
def _posting_score(data, tf, norms, norm_inverse, indices, w, p):
    if w == 0:
        return data[p]
    x = _ONE + np.float32(tf[p]) * norm_inverse[norms[indices[p]]]
    return w - w / x


@numba.njit(cache=True, nogil=True)
def _seek(indices, lo, hi, d):
    """First position in [lo, hi) whose document is >= d (galloping, then binary search)."""
    step = 1
    while lo + step < hi and indices[lo + step] < d:
        lo += step
        step *= 2
    hi = min(hi, lo + step + 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < d:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def term_max_scores(data, indptr):
    """The largest stored score of each term (the MaxScore bound of a term met once)."""
    out = np.zeros(indptr.size - 1, np.float32)
    for t in range(indptr.size - 1):
        best = np.float32(0.0)
        for p in range(indptr[t], indptr[t + 1]):
            if data[p] > best:
                best = data[p]
        out[t] = best
    return out


@numba.njit(cache=True, nogil=True)
def top_k(data, indices, tf, indptr, norms, norm_inverse, tie_rank, use_tie, term_ids, weights, term_max, k):
    """Indices of the k best documents for the query terms `term_ids`, best first.

    Document at a time with MaxScore pruning: terms are ordered by their score bound, and once
    k hits are held, the terms whose bounds add up to less than the k-th score can no longer
    bring a document in on their own, so only the other terms' postings are walked and the
    weak terms are looked up (by galloping search) for those candidates whose bound still
    reaches the k-th score. A candidate's score is summed in query-term order, as the dense
    path sums, and bounds are compared with a margin far above float32 rounding, so exactly
    the documents that could rank are scored exactly.

    Args:
        data, indices, tf, indptr: the CSC postings (float32 scores, int32 docs, tf, offsets).
        norms, norm_inverse: one-byte length norm per document and its 256-entry table.
        tie_rank, use_tie: rank of each document among ties (ignored when not `use_tie`).
        term_ids, weights: the query's terms in query order; weight 0 means "use the stored
            score", else the float32 ``count * idf`` of a repeated term.
        term_max: `term_max_scores` of the index.
        k: number of hits.
    """
    q = term_ids.size
    cursor = np.empty(q, np.int64)
    end = np.empty(q, np.int64)
    bound = np.empty(q, np.float64)
    for t in range(q):
        term = term_ids[t]
        cursor[t], end[t] = indptr[term], indptr[term + 1]
        w = weights[t]
        if w == 0:
            bound[t] = np.float64(term_max[term])
        else:  # the score grows with tf * normInverse: bound it by the largest
            best = np.float32(0.0)
            for p in range(cursor[t], end[t]):
                sc = _posting_score(data, tf, norms, norm_inverse, indices, w, p)
                if sc > best:
                    best = sc
            bound[t] = np.float64(best)
    by_bound = np.argsort(bound, kind="mergesort")  # weakest first
    cum = np.empty(q, np.float64)  # cum[i]: sum of the bounds of by_bound[0..i]
    run = 0.0
    for i in range(q):
        run += bound[by_bound[i]]
        cum[i] = run
    contrib = np.zeros(q, np.float64)
    hs = np.empty(k, np.float32)
    ht = np.empty(k, np.int64)
    hd = np.empty(k, np.int64)
    size = 0
    first_essential = 0  # by_bound[first_essential:] are walked; the rest only looked up
    threshold = -1.0
    big = np.iinfo(np.int64).max
    while True:
        d = big
        for i in range(first_essential, q):
            t = by_bound[i]
            if cursor[t] < end[t] and indices[cursor[t]] < d:
                d = indices[cursor[t]]
        if d == big:
            break
        partial = 0.0
        for i in range(first_essential, q):
            t = by_bound[i]
            c = cursor[t]
            if c < end[t] and indices[c] == d:
                contrib[t] = np.float64(_posting_score(data, tf, norms, norm_inverse, indices, weights[t], c))
                partial += contrib[t]
                cursor[t] = c + 1
        pruned = False
        for i in range(first_essential - 1, -1, -1):
            if partial + cum[i] < threshold:
                pruned = True
                break
            t = by_bound[i]
            c = _seek(indices, cursor[t], end[t], d)
            cursor[t] = c
            if c < end[t] and indices[c] == d:
                contrib[t] = np.float64(_posting_score(data, tf, norms, norm_inverse, indices, weights[t], c))
                partial += contrib[t]
                cursor[t] = c + 1
        if not pruned:
            total = 0.0
            for t in range(q):  # query-term order, as the dense sum (adding 0.0 changes nothing)
                total += contrib[t]
            s = np.float32(total)
            if total != 0.0:
                tie = tie_rank[d] if use_tie else d
                if size < k:
                    hs[size], ht[size], hd[size] = s, tie, d
                    _sift_up(hs, ht, hd, size)
                    size += 1
                elif _better(s, tie, d, hs[0], ht[0], hd[0]):
                    hs[0], ht[0], hd[0] = s, tie, d
                    _sift_down(hs, ht, hd, size, 0)
                if size == k:
                    threshold = np.float64(hs[0]) * (1.0 - 1e-5)
                    while first_essential < q and cum[first_essential] < threshold:
                        first_essential += 1
        for t in range(q):
            contrib[t] = 0.0
    out = np.empty(size, np.int64)
    for j in range(size - 1, -1, -1):  # pop the worst first: fills the output back to front
        out[j] = hd[0]
        last = size - 1
        hs[0], ht[0], hd[0] = hs[last], ht[last], hd[last]
        size = last
        _sift_down(hs, ht, hd, size, 0)
    return out
