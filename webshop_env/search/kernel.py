"""Compiled query scoring: Lucene BM25 over the query terms' postings and an exact top-k.

`BM25Engine._match` scores with numpy over a dense array of every document, which costs
O(documents) per query (about 14 ms at 1.18M products). This kernel touches only the postings
of the query's terms and keeps a k-sized heap, and its rankings are those of the numpy path
bit for bit:

* a term's score is the stored float32 value, or for a term repeated c times in the query
  ``w - w / (1 + tf * normInverse)`` with ``w = c * idf``, every operation in float32;
* a document's score is the float64 sum of its term scores cast to float32. The dense path
  adds them in query-term order; here they are added in another order, which gives the same
  float64 because every such sum is exact (`sums_are_exact`; the engine checks it per query
  and takes the dense path in the rare case it fails);
* documents are ordered by score (descending), then tie rank, then index (ascending): a total
  order, so the heap's k best are exactly the first k of the full sort.

The search is MaxScore over windows of up to `WINDOW` consecutive documents, term at a time
inside a window. Once k hits are held, a set of terms whose bounds add up to less than the k-th
score cannot bring a document in on its own; the other (essential) terms' postings in the
window are swept into a window-sized accumulator (a few nanoseconds a posting, against tens for
a document-at-a-time merge with its unpredictable branches). The terms left out are chosen by
postings per unit of bound, so a common term, or a repeated one with a large bound, is left
out before a rare one. The documents swept are filtered by their partial score plus their
block's bounds of the terms not added yet (the block-max table, `block_maxima`: a term's
largest score in each block of `BLOCK` documents, stored with the index), and the survivors
get the remaining terms, strongest first, pruned again after each.

It is hand-written rather than bm25s's own numba backend because that one scores whole
queries into dense arrays and orders equal scores differently, which would change WebShop's
rankings. numba compiles it on first use (cached on disk next to the package where it can
write).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_ONE = np.float32(1.0)
WINDOW = 4096  # documents per window: its accumulators stay in the first-level cache
BLOCK = 64  # documents per block of the block-max table (windows are whole blocks)
_INV255 = 1.0 / 255.0
_FIRST_WINDOW = 256  # windows double from this size: until the heap is full, every touched document is scored
# Walk a non-essential term's postings in a window, rather than gallop to each candidate, when
# the candidates are at least this fraction of its (estimated) postings there.
_WALK_FRACTION = 0.05
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_SHIFT = np.uint64(58)
# bit index of the lowest set bit b from (b * _DEBRUIJN) >> 58 (a 64-bit de Bruijn sequence)
_DEBRUIJN_INDEX = np.zeros(64, np.int64)
for _i in range(64):
    _DEBRUIJN_INDEX[(((1 << _i) * 0x03F79D71B4CB0A89) & (2**64 - 1)) >> 58] = _i
del _i


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


@numba.njit(cache=True, nogil=True, inline="always")
def _lowest_bit(word):
    """Index of the lowest set bit of a non-zero uint64 (de Bruijn multiplication)."""
    return _DEBRUIJN_INDEX[((word & (~word + np.uint64(1))) * _DEBRUIJN) >> _DEBRUIJN_SHIFT]


@numba.njit(cache=True, nogil=True)
def _seek_far(indices, lo, hi, d, density):
    """`_seek` for a far target: from where postings spread evenly (`density` a document) put it.

    Galloping from a cursor left many windows behind would touch a new cache line at every step.
    """
    if lo >= hi or indices[lo] >= d:
        return lo
    g = min(hi - 1, lo + int((d - indices[lo]) * density))
    if indices[g] < d:
        return _seek(indices, g, hi, d)
    step = 1  # the answer is in (lo, g]: gallop back from g
    while g - step > lo and indices[g - step] >= d:
        g -= step
        step *= 2
    lo = max(lo, g - step)  # indices[lo] < d <= indices[g]
    while g - lo > 1:
        mid = (lo + g) // 2
        if indices[mid] < d:
            lo = mid
        else:
            g = mid
    return g


@numba.njit(cache=True, nogil=True)
def term_bounds(data, indices, tf, indptr, norms, norm_inverse):
    """Per term: its largest and smallest stored score and its largest and smallest ``1 + tf * normInverse``.

    Rows 0 and 2 are the scores of a term met once in a query. A repeated one,
    ``w - w / x`` with ``w = count * idf`` in float32, grows with x (float32 division and
    subtraction are monotonic), so ``w - w / row1`` and ``w - w / row3`` are exactly its
    largest and smallest score.
    """
    out = np.zeros((4, indptr.size - 1), np.float32)
    for t in range(indptr.size - 1):
        hi, lo = np.float32(0.0), np.float32(np.inf)
        hi_x, lo_x = _ONE, np.float32(np.inf)
        for p in range(indptr[t], indptr[t + 1]):
            hi, lo = max(hi, data[p]), min(lo, data[p])
            x = _ONE + np.float32(tf[p]) * norm_inverse[norms[indices[p]]]
            hi_x, lo_x = max(hi_x, x), min(lo_x, x)
        out[0, t], out[1, t], out[2, t], out[3, t] = hi, hi_x, lo, lo_x
    return out


@numba.njit(cache=True, nogil=True)
def sums_are_exact(bounds, term_ids, weights):
    """Whether every float64 sum of the query's term scores is exact, so their order does not matter.

    Every float32 at least the smallest score v is a multiple of v's ulp u = 2^(e - 24)
    (v = m 2^e, 1/2 <= m < 1), so every partial sum is a multiple of u no larger than the sum
    of the terms' largest scores, and float64 holds such multiples exactly up to 2^53 u. Only
    a term found in almost every document of a huge catalogue has a score small enough to fail.
    """
    smallest, total = np.inf, 0.0
    for t in range(term_ids.size):
        term, w = term_ids[t], weights[t]
        hi = bounds[0, term] if w == 0 else w - w / bounds[1, term]
        lo = bounds[2, term] if w == 0 else w - w / bounds[3, term]
        if not lo > 0:
            return False
        smallest = min(smallest, np.float64(lo))
        total += np.float64(hi)
    _, e = math.frexp(smallest)
    return total * (1.0 + 1e-9) <= math.ldexp(1.0, e + 29)


@numba.njit(cache=True, nogil=True, inline="always")
def _unit(term_max):
    """What one step of a term's block-max code is worth: a code c stands for ``c * _unit``."""
    return np.float64(term_max) * _INV255


@numba.njit(cache=True, nogil=True)
def block_maxima(data, indices, indptr, num_docs, term_max):
    """Block-max table: per term with a posting per block on average, its largest score in each block.

    Returns (rows, table): ``rows[term]`` is the term's row of `table` or -1, ``table[row, b]``
    a uint8 code of the largest stored score among documents ``b * BLOCK ...`` (0: none there),
    rounded up so that ``code * _unit(term_max[term])`` is at least that score (to float64
    rounding for code 255, far inside the kernel's margin). At most one byte per posting,
    whatever the vocabulary.
    """
    num_terms = indptr.size - 1
    num_blocks = (num_docs + BLOCK - 1) // BLOCK
    rows = np.full(num_terms, -1, np.int32)
    n = 0
    for t in range(num_terms):
        if num_blocks > 0 and indptr[t + 1] - indptr[t] >= num_blocks:
            rows[t] = n
            n += 1
    table = np.zeros((n, num_blocks), np.uint8)
    best = np.zeros(num_blocks, np.float32)
    for t in range(num_terms):
        r = rows[t]
        if r < 0:
            continue
        best[:] = 0.0
        for p in range(indptr[t], indptr[t + 1]):
            b = indices[p] // BLOCK
            best[b] = max(best[b], data[p])
        unit = _unit(term_max[t])
        for b in range(num_blocks):
            if best[b] > 0:
                code = min(255, int(np.ceil(np.float64(best[b]) / unit)))
                while code < 255 and code * unit < best[b]:
                    code += 1
                table[r, b] = code
    return rows, table


@numba.njit(cache=True, nogil=True, inline="always")
def _add_block_bounds(rest, sign, blocks, block0, bound, row, unit, block_table):
    if row < 0:
        for j in range(blocks):
            rest[j] += sign * bound
    else:
        codes = block_table[row]
        for j in range(blocks):
            rest[j] += sign * (codes[block0 + j] * unit)


@numba.njit(cache=True, nogil=True)
def top_k(data, indices, tf, indptr, norms, norm_inverse, tie_rank, use_tie, term_ids, weights, bounds,
          block_rows, block_table, k):
    """Indices of the k best documents for the query terms `term_ids`, best first.

    MaxScore over windows of up to `WINDOW` documents (see the module docstring): once k hits
    are held, terms whose bounds add up to less than the k-th score can no longer bring a
    document in on their own. Each window starts at the next posting of the other (essential)
    terms; their postings in it are added up term at a time. A touched
    document whose partial score plus its block's bounds of the terms not yet added stays
    below the k-th score is dropped; the others get the remaining terms, strongest first,
    pruned again after each. Bounds are compared with a margin far above float32 rounding, so
    exactly the documents that could rank are scored, and their sums are exact
    (`sums_are_exact` must hold: the caller checks it), so the order they are added in does
    not matter.

    Args:
        data, indices, tf, indptr: the CSC postings (float32 scores, int32 docs, tf, offsets).
        norms, norm_inverse: one-byte length norm per document and its 256-entry table.
        tie_rank, use_tie: rank of each document among ties (ignored when not `use_tie`).
        term_ids, weights: the query's distinct terms; weight 0 means "use the stored score",
            else the float32 ``count * idf`` of a repeated term.
        bounds, block_rows, block_table: `term_bounds` and `block_maxima` of the index.
        k: number of hits (>= 1).
    """
    q = term_ids.size
    num_docs = norms.size
    num_blocks = (num_docs + BLOCK - 1) // BLOCK
    cursor = np.empty(q, np.int64)
    end = np.empty(q, np.int64)
    bound = np.empty(q, np.float64)
    density = np.empty(q, np.float64)  # postings per document
    row = np.empty(q, np.int64)  # the term's row of the block-max table, or -1: its bound in every block
    unit = np.empty(q, np.float64)
    for t in range(q):
        term = term_ids[t]
        cursor[t], end[t] = indptr[term], indptr[term + 1]
        w = weights[t]
        bound[t] = np.float64(bounds[0, term] if w == 0 else w - w / bounds[1, term])
        density[t] = (end[t] - cursor[t]) / max(num_docs, 1)
        row[t] = block_rows[term] if w == 0 else -1
        unit[t] = _unit(bounds[0, term])
    # The terms left out of the sweep are taken, as the threshold rises, in the order of their
    # postings per unit of bound (most first): a common term with a small bound, or a repeated one,
    # is left out before a rarer term with the same bound.
    cost = np.empty(q, np.float64)
    for t in range(q):
        cost[t] = -(end[t] - cursor[t]) / bound[t] if bound[t] > 0 else -np.inf
    order = np.argsort(cost, kind="mergesort")
    cum = np.empty(q + 1, np.float64)  # cum[i + 1]: sum of the bounds of order[0..i]; cum[0] = 0
    cum[0] = 0.0
    for i in range(q):
        cum[i + 1] = cum[i] + bound[order[i]]
    by_bound = np.argsort(-bound, kind="mergesort")  # strongest first: the order terms are added to candidates
    rank = np.empty(q, np.int64)  # position of each term in `order`
    for i in range(q):
        rank[order[i]] = i
    acc = np.zeros(WINDOW, np.float64)  # score so far of each document of the window (exact)
    alive = np.zeros(WINDOW, np.float32)  # 1 for a candidate still in the running
    touched = np.zeros(WINDOW // 64, np.uint64)  # documents an essential term has (one word a block)
    rest = np.empty(WINDOW // BLOCK, np.float64)  # per block: the bounds of the terms not added yet
    cand = np.empty(WINDOW, np.int64)  # candidates' offsets, ascending
    hs = np.empty(k, np.float32)
    ht = np.empty(k, np.int64)
    hd = np.empty(k, np.int64)
    size = 0
    first_essential = 0  # order[first_essential:] are swept; the rest only added to candidates
    threshold = -1.0
    big = np.iinfo(np.int64).max
    span = _FIRST_WINDOW // 2
    while True:
        span = min(2 * span, WINDOW)
        while first_essential < q and cum[first_essential + 1] < threshold:
            first_essential += 1
        base = big
        for i in range(first_essential, q):
            t = order[i]
            if cursor[t] < end[t] and indices[cursor[t]] < base:
                base = indices[cursor[t]]
        if base == big:
            break
        base -= base % BLOCK
        stop = base + span
        block0 = base // BLOCK
        blocks = min(span // BLOCK, num_blocks - block0)
        for j in range(blocks):
            rest[j] = 0.0
        for i in range(first_essential):
            t = order[i]
            _add_block_bounds(rest, 1.0, blocks, block0, bound[t], row[t], unit[t], block_table)
        for i in range(first_essential, q):  # the essential terms, term at a time
            t = order[i]
            w = weights[t]
            p, e = cursor[t], end[t]
            while p < e and indices[p] < stop:
                off = indices[p] - base
                acc[off] += _posting_score(data, tf, norms, norm_inverse, indices, w, p)
                touched[off >> 6] |= np.uint64(1) << np.uint64(off & 63)
                p += 1
            cursor[t] = p
        n = 0
        for j in range(blocks):
            word = touched[j]
            if word == 0:
                continue
            touched[j] = 0
            while word != 0:
                off = j * 64 + _lowest_bit(word)
                word &= word - np.uint64(1)
                if acc[off] + rest[j] >= threshold:
                    cand[n] = off
                    n += 1
                    alive[off] = 1.0
                else:
                    acc[off] = 0.0
        for i in range(q):  # the others, strongest first
            if n == 0:
                break
            t = by_bound[i]
            if rank[t] >= first_essential:
                continue
            w = weights[t]
            e = end[t]
            if n >= _WALK_FRACTION * density[t] * span:  # walk the window's postings: no branch on docs
                p = _seek_far(indices, cursor[t], e, base, density[t])
                while p < e and indices[p] < stop:
                    off = indices[p] - base
                    acc[off] += _posting_score(data, tf, norms, norm_inverse, indices, w, p) * alive[off]
                    p += 1
            else:  # few candidates: gallop to each
                p = _seek_far(indices, cursor[t], e, base, density[t])
                for j in range(n):
                    d = base + cand[j]
                    p = _seek(indices, p, e, d)
                    if p < e and indices[p] == d:
                        acc[cand[j]] += _posting_score(data, tf, norms, norm_inverse, indices, w, p)
                        p += 1
            cursor[t] = p
            _add_block_bounds(rest, -1.0, blocks, block0, bound[t], row[t], unit[t], block_table)
            kept = 0
            for j in range(n):
                off = cand[j]
                if acc[off] + rest[off >> 6] >= threshold:
                    cand[kept] = off
                    kept += 1
                else:
                    alive[off] = 0.0
                    acc[off] = 0.0
            n = kept
        for j in range(n):
            off = cand[j]
            total = acc[off]
            acc[off] = 0.0
            alive[off] = 0.0
            if total == 0.0:
                continue
            s = np.float32(total)
            d = base + off
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
    out = np.empty(size, np.int64)
    for j in range(size - 1, -1, -1):  # pop the worst first: fills the output back to front
        out[j] = hd[0]
        last = size - 1
        hs[0], ht[0], hd[0] = hs[last], ht[last], hd[last]
        size = last
        _sift_down(hs, ht, hd, size, 0)
    return out
