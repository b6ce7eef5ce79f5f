"""Tests of webshop_env.search: Porter stemmer, Lucene analyzer, Lucene BM25 and index caching.

Expected values marked "Lucene" were produced by WebShop's own search stack (pyserini 0.17.0,
i.e. Anserini 0.14.3 on Lucene 8.11) on the same inputs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from webshop_env.search import (
    Analyzer,
    BM25Engine,
    PyseriniEngine,
    SearchEngine,
    build_document,
    open_search_engine,
)
from webshop_env.search.analyzer import ENGLISH_STOP_WORDS, tokenize
from webshop_env.search.engine import META_FILE, byte4_to_int, encode_lengths, int_to_byte4
from webshop_env.search.porter import porter_stem

# The optional reference backend: pyserini and a Java runtime (checked without starting the JVM
# at collection; test_search_backends.py imports it as the engine does).
HAVE_PYSERINI = importlib.util.find_spec("pyserini") is not None and shutil.which("java") is not None

# --------------------------------------------------------------------------------------------
# Porter stemmer

PORTER_CASES = """
caresses caress | ponies poni | ties ti | caress caress | cats cat | feed feed | agreed agre |
plastered plaster | motoring motor | sing sing | conflated conflat | troubled troubl |
sized size | hopping hop | tanned tan | falling fall | hissing hiss | fizzed fizz |
failing fail | filing file | happy happi | sky sky | relational relat | conditional condit |
rational ration | valenci valenc | digitizer digit | conformabli conform | radicalli radic |
differentli differ | vileli vile | analogousli analog | vietnamization vietnam |
predication predic | operator oper | feudalism feudal | decisiveness decis |
hopefulness hope | callousness callous | formaliti formal | sensitiviti sensit |
sensibiliti sensibl | triplicate triplic | formative form | formalize formal |
electriciti electr | electrical electr | hopeful hope | goodness good | revival reviv |
allowance allow | inference infer | airliner airlin | gyroscopic gyroscop |
adjustable adjust | defensible defens | irritant irrit | replacement replac |
adjustment adjust | dependent depend | adoption adopt | homologou homolog | communism commun |
activate activ | angulariti angular | homologous homolog | effective effect |
bowdlerize bowdler | probate probat | rate rate | cease ceas | controll control | roll roll |
technology technolog | generalization gener | oscillators oscil
"""


@pytest.mark.parametrize(
    ("word", "stem"), [tuple(pair.split()) for pair in PORTER_CASES.replace("\n", " ").split("|")]
)
def test_porter_matches_lucene(word: str, stem: str) -> None:
    assert porter_stem(word) == stem


def test_porter_departures_from_snowball() -> None:
    # Martin Porter's reference code (expected values: Lucene): -bli -> -ble, -logi -> -log
    # (when the stem before them has a vowel-consonant sequence), short words untouched.
    cases = {
        "possibli": "possibl", "abli": "abli", "archaeology": "archaeolog", "biology": "biologi",
        "ies": "i", "yes": "ye", "ox": "ox", "boyish": "boyish", "xyz": "xyz", "b07djjxgb5": "b07djjxgb5",
    }
    assert {word: porter_stem(word) for word in cases} == cases


# --------------------------------------------------------------------------------------------
# Analyzer (expected outputs: Lucene)

LUCENE_ANALYSIS = {
    "The Running Shoes of the U.S.A. are NOT for women's feet": ["run", "shoe", "u.s.a", "women", "feet"],
    "Costs $1,000.50 for 3.5 oz; don't buy 2-pack x_y ___ a.1 v1.2 80's": [
        "cost", "1,000.50", "3.5", "oz", "don't", "bui", "2", "pack", "x_y", "1", "v1.2", "80", "s",
    ],
    "JOHN'S cat\u2019s dog\uff07s \u0130stanbul \u03a3\u039f\u03a3 caf\u00e9": [
        "john", "cat", "dog", "istanbul", "\u03c3\u03bf\u03c3", "caf\u00e9",
    ],
    "Apple\u00ae iPhone\u2122 case \u00a9 \u2605\u2605 \u2714 \u2764\ufe0f \U0001f44d\U0001f3fd \U0001f1fa\U0001f1f8 1\ufe0f\u20e3 \u2022 \u2013": [
        "appl", "\u00ae", "iphon", "\u2122", "case", "\u00a9", "\u2605", "\u2605", "\u2714",
        "\u2764\ufe0f", "\U0001f44d\U0001f3fd", "\U0001f1fa\U0001f1f8", "1\ufe0f\u20e3",
    ],
    "\u4e2d\u6587abc \u3072\u3089 \u30ab\u30bf\u30abna \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 m\u00b2 1\u00bd soft\u00adhyphen 100\u202fkg": [
        "\u4e2d", "\u6587", "abc", "\u3072", "\u3089", "\u30ab\u30bf\u30ab", "na",
        "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "m", "1", "soft\u00adhyphen", "100\u202fkg",
    ],
    "to be or not to be, that is the question: a:b 9:30 1;2 a;b": ["question", "a:b", "9", "30", "1;2", "b"],
}


@pytest.mark.parametrize("text", list(LUCENE_ANALYSIS))
def test_analyzer_matches_lucene(text: str) -> None:
    assert Analyzer().tokens(text) == LUCENE_ANALYSIS[text]


def test_analyzer_basics() -> None:
    analyzer = Analyzer()
    assert len(ENGLISH_STOP_WORDS) == 33
    assert analyzer.tokens("the a an and of with") == []
    assert analyzer.tokens("") == []
    assert analyzer.tokens("1,000 3.5") == ["1,000", "3.5"]
    assert analyzer.tokens("RED Shoes") == analyzer.tokens("red shoes") == ["red", "shoe"]
    assert analyzer.tokens("women's WOMEN'S women\u2019s") == ["women"] * 3
    assert tokenize("a.1 1.a u.s.a. 1,2 a,b") == ["a", "1", "1", "a", "u.s.a", "1,2", "a", "b"]
    assert tokenize("x" * 600) == ["x" * 255, "x" * 255, "x" * 90]


def test_ascii_fast_path_agrees_with_unicode_pattern() -> None:
    rng = random.Random(7)
    alphabet = "ab1_.,;:'- "
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        # A non-ASCII space forces the Unicode pattern without changing the tokens.
        assert tokenize(text) == tokenize(text + "\u3000"), text


def test_analyzer_memoises_terms() -> None:
    analyzer = Analyzer()
    assert analyzer.term("Running") == "run"
    assert analyzer.term("The") is None
    assert analyzer._terms == {"Running": "run", "The": None}


# --------------------------------------------------------------------------------------------
# Lucene's one-byte norm


def test_norm_round_trip_known_points() -> None:
    for length in range(41):
        assert byte4_to_int(int_to_byte4(length)) == length
    # Beyond 40 only four significant bits of (length - 24) survive, rounded down.
    known = {41: 40, 42: 42, 55: 54, 56: 56, 100: 96, 1000: 984, 2**31 - 1: 2013265944}
    for length, decoded in known.items():
        assert byte4_to_int(int_to_byte4(length)) == decoded
    assert int_to_byte4(2**31 - 1) == 255
    with pytest.raises(ValueError):
        int_to_byte4(-1)


def test_norm_is_monotonic_and_rounds_down() -> None:
    lengths = np.arange(0, 200_000)
    codes = encode_lengths(lengths)
    assert codes.dtype == np.uint8
    assert np.all(np.diff(codes.astype(int)) >= 0)
    decoded = np.array([byte4_to_int(int(c)) for c in codes[::997]])
    assert np.all(decoded <= lengths[::997])
    assert all(int_to_byte4(byte4_to_int(code)) == code for code in range(256))


# --------------------------------------------------------------------------------------------
# BM25 scoring

SMALL_DOCS = [
    "red running shoes for men",  # red run shoe men: 4 tokens
    "blue running shoes",  # 3 tokens
    "red dress",  # 2 tokens
    "the and of",  # only stopwords: not counted in N or avgdl
    "red red red shoes shoes",  # 5 tokens
]


def _hand_bm25(tf: int, dl: int, df: int, n: int, avgdl: float, boost: int = 1) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    norm = 0.9 * (0.6 + 0.4 * dl / avgdl)
    return boost * idf * tf / (tf + norm)


def test_bm25_scores_match_hand_computation() -> None:
    engine = BM25Engine(SMALL_DOCS)
    n, avgdl = 4, 14 / 4
    assert engine.doc_count == n and engine.avgdl == np.float32(avgdl)
    red = engine.scores("red")
    expected = [_hand_bm25(1, 4, 3, n, avgdl), 0.0, _hand_bm25(1, 2, 3, n, avgdl), 0.0, _hand_bm25(3, 5, 3, n, avgdl)]
    assert red == pytest.approx(expected, rel=1e-6)
    both = engine.scores("red shoes")
    expected = [
        _hand_bm25(1, 4, 3, n, avgdl) + _hand_bm25(1, 4, 3, n, avgdl),
        _hand_bm25(1, 3, 3, n, avgdl),
        _hand_bm25(1, 2, 3, n, avgdl),
        0.0,
        _hand_bm25(3, 5, 3, n, avgdl) + _hand_bm25(2, 5, 3, n, avgdl),
    ]
    assert both == pytest.approx(expected, rel=1e-6)
    assert engine.search("red shoes") == [4, 0, 2, 1]
    # A repeated query term counts once per occurrence (Anserini boosts it by its count).
    assert engine.scores("red red dress") == pytest.approx(
        [2 * _hand_bm25(1, 4, 3, n, avgdl), 0.0, 2 * _hand_bm25(1, 2, 3, n, avgdl) + _hand_bm25(1, 2, 1, n, avgdl), 0.0,
         2 * _hand_bm25(3, 5, 3, n, avgdl)],
        rel=1e-6,
    )


def test_bm25_float32_arithmetic_is_lucenes() -> None:
    # Lucene: w - w / (1 + tf * normInverse), every step in float32.
    engine = BM25Engine(SMALL_DOCS)
    f = np.float32
    idf = f(math.log(1 + (4 - 3 + 0.5) / (3 + 0.5)))
    norm_inverse = f(1) / (f(0.9) * ((f(1) - f(0.4)) + f(0.4) * f(5) / f(3.5)))
    weight = f(3) * idf
    expected = weight - weight / (f(1) + f(3) * norm_inverse)
    assert engine.scores("red red red")[4] == expected


def test_long_documents_use_quantised_lengths() -> None:
    # 41 and 40 tokens share a norm byte, so their scores tie exactly.
    docs = ["shoe " + "x " * 39, "shoe " + "y " * 40, "shoe " + "z " * 41]
    scores = BM25Engine(docs).scores("shoe")
    assert scores[0] == scores[1] != scores[2]


def test_ties_broken_by_index_or_by_id() -> None:
    docs = ["red shoe", "blue hat", "red shoe", "red shoe"]
    assert BM25Engine(docs).search("red") == [0, 2, 3]
    assert BM25Engine(docs, doc_ids=["B3", "B0", "B1", "B2"]).search("red") == [2, 3, 0]


def test_k_cut_keeps_lowest_ranks_among_ties_at_the_cut() -> None:
    docs = ["shoe shoe"] + ["shoe"] * 10 + ["hat"]
    engine = BM25Engine(docs, doc_ids=[f"id{9 - i % 10}{i}" for i in range(len(docs))])
    full = engine.search("shoe", k=50)
    assert len(full) == 11
    for k in (0, 1, 3, 10, 11, 12):
        assert engine.search("shoe", k=k) == full[:k]
    with pytest.raises(ValueError):
        engine.search("shoe", k=-1)


def test_queries_without_indexed_terms_return_nothing() -> None:
    engine = BM25Engine(SMALL_DOCS)
    for query in ("", "   ", "the and of", "zzzz unknownword", "!!!"):
        assert engine.search(query) == []
    assert BM25Engine([]).search("red") == []
    assert BM25Engine(["the", "of"]).search("the") == []


def test_result_cache_hits_and_returns_fresh_lists() -> None:
    engine = BM25Engine(SMALL_DOCS, cache_size=2)
    first = engine.search("red shoes")
    first.append(99)  # callers may mutate what they get
    assert engine.search("red shoes") == [4, 0, 2, 1]
    assert engine.cache_info()["hits"] == 1
    engine.search("blue")
    engine.search("dress")  # evicts "red shoes" (LRU, size 2)
    assert engine.cache_info()["size"] == 2
    assert engine.search("red shoes") == [4, 0, 2, 1]
    assert engine.cache_info()["hits"] == 1
    assert isinstance(engine, SearchEngine)


def lucene_fixture_corpus() -> tuple[list[str], list[str], list[str]]:
    """Deterministic product-like corpus (documents, ASIN-like ids, queries)."""
    rng = random.Random(20240601)
    vocab = (
        "women's men's shoes running red blue black white cotton t-shirt dress long sleeve short "
        "casual slim fit machine wash high waist leggings yoga pants sports bra sneakers leather "
        "boots size small medium large x-large pack 2-pack 3.5 oz 1,000 mah usb-c charger cable "
        "wireless bluetooth headphones noise cancelling earbuds phone case iphone samsung glass "
        "screen protector tempered easy install tea tree oil natural organic gluten free snacks "
        "chocolate coffee beans ground decaf green tea bags caffeine shampoo conditioner hair "
        "dry damaged sensitive skin face wash moisturizer anti aging eye cream lip balm don't "
        "kid's u.s.a. ® ™ • 100% the and of for with to in a is it's stainless steel bpa "
        "dishwasher safe kitchen living room dining table chair sofa bed queen king pillow"
    ).split()
    weights = [1 / (i + 1) ** 0.8 for i in range(len(vocab))]

    def text(n: int) -> str:
        return " ".join(rng.choices(vocab, weights=weights, k=n))

    docs: list[str] = []
    for _ in range(400):
        if docs and rng.random() < 0.1:
            docs.append(rng.choice(docs))  # duplicates: equal scores, ordered by id
            continue
        length = rng.choice([rng.randint(2, 10), rng.randint(10, 60), rng.randint(60, 300)])
        docs.append(f"{text(rng.randint(3, 12))} {text(length)}".lower())
    ids = ["B0" + "".join(rng.choices("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=8)) for _ in docs]
    queries = [text(rng.randint(1, 5)) for _ in range(40)]
    queries += ["women's running shoes", "red red dress", "tea tea tea bags", "3.5 oz", "1,000 mah"]
    return docs, ids, queries

LUCENE_TOP20 = {
    "running women's medium": [72, 147, 286, 143, 36, 67, 106, 81, 389, 352, 74, 351, 330, 300, 75, 219, 41, 57, 360, 240],
    'dress': [254, 227, 110, 162, 192, 107, 130, 238, 116, 24, 342, 138, 314, 57, 54, 51, 65, 288, 2, 0],
    "don't long noise install": [280, 332, 231, 39, 228, 115, 57, 192, 348, 342, 390, 24, 337, 288, 227, 154, 158, 358, 6, 395],
    "shampoo t-shirt organic men's women's": [304, 18, 360, 225, 96, 138, 389, 94, 143, 158, 193, 306, 175, 24, 192, 99, 392, 6, 130, 238],
    "women's shampoo men's long women's": [135, 18, 193, 158, 138, 225, 133, 312, 134, 277, 94, 281, 348, 112, 366, 99, 389, 360, 96, 381],
    'install': [241, 72, 147, 24, 110, 228, 71, 202, 125, 364, 41, 302, 280, 44, 86, 257, 187, 129, 396, 323],
    "men's men's red": [219, 250, 132, 158, 394, 360, 390, 339, 65, 96, 320, 235, 39, 344, 286, 75, 229, 251, 130, 238],
    'bpa large leather': [192, 344, 254, 390, 213, 230, 175, 77, 373, 41, 244, 81, 183, 243, 227, 71, 275, 24, 120, 65],
    'blue dry dress red wash': [90, 319, 254, 193, 306, 138, 360, 164, 130, 238, 132, 231, 77, 65, 347, 363, 337, 320, 184, 288],
    "men's easy women's conditioner organic": [275, 57, 96, 29, 392, 265, 301, 390, 389, 138, 320, 319, 254, 97, 8, 24, 175, 202, 142, 344],
    "women's women's headphones": [228, 254, 225, 304, 119, 71, 348, 299, 63, 44, 86, 130, 238, 331, 172, 227, 115, 343, 12, 236],
    "women's pack shampoo women's shoes": [135, 18, 281, 138, 193, 225, 132, 360, 134, 277, 348, 158, 260, 210, 96, 125, 192, 247, 59, 274],
    'organic tea long samsung': [235, 175, 392, 66, 364, 275, 146, 96, 342, 213, 230, 231, 288, 57, 65, 202, 320, 366, 398, 193],
    'coffee iphone': [120, 229, 308, 288, 227, 294, 396, 331, 386, 193, 337, 254, 85, 138, 192, 275, 65, 184, 134, 277],
    'and bra tea running': [344, 146, 398, 228, 6, 66, 203, 96, 293, 360, 85, 294, 94, 266, 216, 342, 202, 397, 22, 302],
    "pants cotton running women's": [319, 104, 293, 54, 213, 230, 280, 175, 203, 314, 331, 366, 90, 205, 184, 185, 281, 254, 200, 342],
    'medium protector dress slim': [275, 250, 51, 132, 254, 314, 36, 67, 106, 225, 360, 192, 342, 247, 65, 154, 227, 255, 348, 390],
    "shoes women's women's shoes waist": [281, 193, 322, 54, 295, 336, 158, 373, 183, 243, 339, 118, 213, 230, 242, 303, 24, 298, 398, 390],
    "women's running tea fit": [344, 293, 65, 364, 146, 266, 337, 132, 6, 38, 294, 115, 235, 203, 280, 184, 172, 200, 360, 392],
    'medium hair': [188, 79, 351, 330, 254, 36, 67, 106, 206, 341, 192, 300, 212, 200, 255, 44, 86, 309, 215, 388],
    'long case safe': [7, 75, 172, 112, 266, 39, 352, 74, 318, 146, 281, 158, 231, 54, 386, 344, 288, 134, 277, 254],
    'blue': [24, 294, 251, 293, 342, 185, 6, 104, 247, 99, 219, 301, 65, 218, 228, 275, 39, 205, 340, 299],
    "beans long large men's": [65, 344, 235, 339, 280, 231, 390, 347, 363, 337, 138, 268, 302, 90, 158, 203, 143, 254, 288, 24],
    "men's cotton • fit": [23, 251, 104, 293, 281, 120, 146, 213, 230, 159, 392, 352, 74, 192, 348, 115, 364, 65, 366, 7],
    "wireless women's dress": [54, 172, 96, 131, 324, 254, 352, 74, 200, 25, 306, 29, 337, 331, 132, 221, 215, 27, 151, 270],
    'short high slim': [228, 302, 132, 24, 99, 389, 185, 6, 259, 157, 179, 143, 225, 298, 115, 134, 277, 104, 281, 314],
    "white u.s.a. oz running women's": [154, 294, 227, 250, 94, 223, 175, 390, 205, 314, 365, 342, 213, 230, 266, 57, 138, 318, 229, 386],
    '1,000 hair and': [192, 27, 341, 300, 6, 118, 133, 254, 83, 255, 302, 304, 281, 314, 360, 301, 342, 104, 39, 65],
    "cotton men's": [146, 213, 230, 251, 61, 6, 23, 302, 90, 36, 67, 106, 231, 193, 280, 258, 54, 293, 250, 331],
    'damaged t-shirt': [266, 229, 280, 183, 243, 49, 294, 259, 157, 179, 85, 175, 225, 389, 61, 361, 118, 235, 24, 306],
    'boots': [14, 97, 8, 212, 54, 200, 386, 1, 289, 318, 85, 158, 115, 281, 389, 96, 193, 268, 381, 120],
    '2-pack running a oz': [314, 213, 230, 185, 175, 281, 138, 135, 203, 59, 57, 132, 294, 143, 39, 327, 250, 301, 306, 266],
    "white women's waist": [54, 281, 268, 193, 118, 322, 303, 390, 336, 183, 243, 24, 213, 230, 131, 175, 94, 275, 154, 373],
    "wireless headphones women's": [254, 172, 261, 304, 225, 331, 131, 366, 27, 25, 299, 398, 241, 115, 286, 54, 268, 258, 386, 29],
    'wash dishwasher': [82, 394, 83, 133, 29, 203, 42, 164, 142, 135, 239, 280, 25, 154, 85, 131, 120, 396, 132, 71],
    'white wash wash protector': [275, 77, 154, 250, 293, 132, 202, 247, 366, 203, 35, 301, 51, 138, 97, 8, 360, 254, 314, 390],
    "men's": [57, 146, 339, 389, 250, 219, 332, 266, 172, 59, 320, 185, 227, 229, 81, 338, 37, 132, 231, 213],
    'shoes': [366, 314, 154, 254, 193, 183, 243, 239, 320, 213, 230, 373, 130, 238, 134, 277, 392, 115, 281, 331],
    'casual': [146, 104, 51, 215, 130, 238, 172, 367, 344, 115, 304, 266, 168, 252, 78, 6, 158, 191, 151, 270],
    "screen chocolate a oil men's": [225, 219, 320, 235, 298, 332, 135, 205, 304, 294, 281, 318, 392, 23, 65, 96, 158, 266, 39, 213],
    "women's running shoes": [254, 337, 65, 184, 366, 314, 386, 213, 230, 185, 193, 396, 143, 348, 75, 225, 94, 331, 231, 203],
    'red red dress': [96, 65, 51, 314, 130, 238, 228, 132, 138, 184, 90, 158, 250, 280, 254, 337, 342, 134, 277, 135],
    'tea tea tea bags': [378, 29, 132, 216, 146, 344, 364, 6, 235, 239, 96, 66, 219, 124, 184, 115, 346, 362, 294, 350],
    '3.5 oz': [226, 227, 213, 230, 57, 175, 172, 45, 360, 138, 311, 229, 17, 88, 97, 8, 294, 281, 185, 332],
    '1,000 mah': [104, 175, 302, 360, 149, 341, 137, 300, 6, 314, 18, 41, 132, 229, 208, 55, 334, 88, 227, 304],
}

def test_rankings_match_webshops_lucene_index() -> None:
    docs, ids, queries = lucene_fixture_corpus()
    engine = BM25Engine(docs, doc_ids=ids)
    for query in queries:
        assert engine.search(query, k=20) == LUCENE_TOP20[query], query


# --------------------------------------------------------------------------------------------
# Documents, the entry point and the disk cache


def _product(title: str, asin: str | None = None, **extra) -> dict:
    product = {"Title": title, "Description": "", "BulletPoints": [], "options": {}, **extra}
    if asin is not None:
        product["asin"] = asin
    return product


def test_build_document() -> None:
    product = _product(
        "Red Shoe", Description="Great FIT", BulletPoints=["Mesh", "Sole"],
        options={"color": ["red", "navy | blue"], "size": ["8"]},
    )
    assert build_document(product) == "red shoe great fit mesh color: red, navy | blue, and size: 8"
    assert build_document(_product("Hat")) == "hat   "


def test_open_search_engine_orders_ties_by_asin() -> None:
    products = [_product("red shoe", "B0C"), _product("red shoe", "B0A"), _product("red shoe", "B0B")]
    assert open_search_engine(products, "h1").search("shoe") == [1, 2, 0]
    assert open_search_engine(products, "h1", tie_break="index").search("shoe") == [0, 1, 2]
    no_asin = [_product("red shoe"), _product("red shoe")]
    assert open_search_engine(no_asin, "h2").search("shoe") == [0, 1]
    with pytest.raises(ValueError, match="tie_break"):
        open_search_engine(products, "h1", tie_break="random")


def test_open_search_engine_validates_arguments(tmp_path: Path) -> None:
    products = [_product("red shoe", "B0A")]
    with pytest.raises(ValueError, match="bm25s.*pyserini"):
        open_search_engine(products, "h1", backend="elastic")
    with pytest.raises(ValueError, match="content_hash"):
        open_search_engine(products, "../evil", cache_dir=tmp_path)


def _catalogue(n: int = 60) -> list[dict]:
    rng = random.Random(3)
    words = "red blue shoe dress cotton women men running tea bag oil wash".split()
    return [_product(" ".join(rng.choices(words, k=rng.randint(2, 9))), f"B{rng.randrange(10**8):08d}") for _ in range(n)]


QUERIES = ["red shoe", "women running shoe", "tea tea", "cotton dress", "wash"]


def test_disk_cache_reload_is_identical(tmp_path: Path) -> None:
    products = _catalogue()
    built = open_search_engine(products, "abc123", cache_dir=tmp_path)
    assert not built.from_cache and built.build_seconds > 0
    loaded = open_search_engine(products, "abc123", cache_dir=tmp_path)
    assert loaded.from_cache and loaded.build_seconds == pytest.approx(built.build_seconds)
    for query in QUERIES:
        assert loaded.search(query) == built.search(query)
        assert np.array_equal(loaded.scores(query), built.scores(query))
    assert [p.name for p in tmp_path.iterdir()] == ["index-bm25s-abc123"]
    meta = json.loads((tmp_path / "index-bm25s-abc123" / META_FILE).read_text())
    assert meta["content_hash"] == "abc123" and meta["num_docs"] == len(products)


def test_disk_cache_is_keyed_by_content_hash(tmp_path: Path) -> None:
    open_search_engine(_catalogue(), "hash1", cache_dir=tmp_path)
    other = [_product("green tea", "B1")]
    engine = open_search_engine(other, "hash2", cache_dir=tmp_path)
    assert not engine.from_cache
    assert engine.search("tea") == [0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index-bm25s-hash1", "index-bm25s-hash2"]


def test_half_written_cache_dirs_are_ignored(tmp_path: Path) -> None:
    products = _catalogue()
    reference = BM25Engine([build_document(p) for p in products], doc_ids=[p["asin"] for p in products])
    final = tmp_path / "index-bm25s-h"
    final.mkdir()
    (final / "vocab.index.json").write_text("{")  # a crash before the metadata was written
    (tmp_path / ".index-bm25s-h.tmp-dead").mkdir()  # a crashed writer's temporary dir
    engine = open_search_engine(products, "h", cache_dir=tmp_path)
    assert not engine.from_cache
    assert all(engine.search(q) == reference.search(q) for q in QUERIES)
    assert open_search_engine(products, "h", cache_dir=tmp_path).from_cache
    # Complete metadata but a damaged array: rebuilt as well.
    (final / "tf.npy").write_bytes(b"garbage")
    engine = open_search_engine(products, "h", cache_dir=tmp_path)
    assert not engine.from_cache
    assert all(engine.search(q) == reference.search(q) for q in QUERIES)
    assert open_search_engine(products, "h", cache_dir=tmp_path).from_cache
    # Score bounds of another shape (say, from a half-copied index): rebuilt too.
    np.save(final / "term_bounds.npy", np.zeros((2, 3), np.float32))
    engine = open_search_engine(products, "h", cache_dir=tmp_path)
    assert not engine.from_cache
    assert all(engine.search(q) == reference.search(q) for q in QUERIES)
    assert open_search_engine(products, "h", cache_dir=tmp_path).from_cache


# --------------------------------------------------------------------------------------------
# The pyserini reference backend


@pytest.mark.skipif(HAVE_PYSERINI, reason="pyserini is installed")
def test_pyserini_backend_explains_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"Java runtime.*pip install -e \.\[pyserini\]"):
        open_search_engine([_product("red shoe", "B0A")], "h", backend="pyserini", cache_dir=tmp_path)
    with pytest.raises(ImportError, match="pyserini"):
        PyseriniEngine(["red shoe"])


@pytest.mark.skipif(not HAVE_PYSERINI and os.environ.get("TEACHABLE_REQUIRE_PYSERINI") != "1",
                    reason="pyserini (and Java) not installed: pip install -e .[pyserini]")
def test_pyserini_parity(tmp_path: Path) -> None:
    docs, ids, queries = lucene_fixture_corpus()
    products = [_product(doc, asin) for doc, asin in zip(docs, ids, strict=True)]
    ours = open_search_engine(products, "parity", cache_dir=tmp_path)
    lucene = open_search_engine(products, "parity", backend="pyserini", cache_dir=tmp_path)
    for query in queries:
        assert ours.search(query, k=50) == lucene.search(query, k=50), query


def _assert_compiled_matches_dense(engine: BM25Engine, queries: list[str], ks: tuple[int, ...]) -> None:
    from webshop_env.search import kernel

    for q in queries:  # the kernel itself runs, not the dense fallback
        assert kernel.sums_are_exact(engine._bounds, *engine._kernel_query(q)), q
    differing = [(q, k) for q in queries for k in ks if engine._search_postings(q, k) != engine._search_dense(q, k)]
    assert not differing


def test_compiled_search_ranks_exactly_as_the_dense_path(tmp_path: Path) -> None:
    """Identical top-50 (and shorter cuts) from the postings kernel and the dense numpy path.

    10,000 products span several full windows and 157 blocks of the block-max table.
    """
    from webshop_env.catalog import load_catalog
    from webshop_env.generate import generate_catalog
    from webshop_env.goals import build_goals

    generate_catalog(tmp_path / "cat", n_products=10_000, seed=11)
    catalog = load_catalog(tmp_path / "cat", store_dir=tmp_path / "stores")
    engine = open_search_engine(catalog.products, catalog.content_hash, cache_dir=None, cache_size=0)
    assert engine._block_max.shape[0] > 0  # the block-max table is in use
    goals = build_goals(catalog)
    queries = [g["instruction_text"] for g in goals][:400]
    queries += [q.split(", and price")[0] for q in queries[:100]]
    queries += [" ".join(q.split()[:2]) for q in queries[:100]]  # short queries: many ties
    queries += [" ".join(q.split()[-3:]) for q in queries[:100]]
    queries += [f"{w} {w} shoes {w}" for w in ("red", "women", "pack", "black")]  # repeated terms
    queries += [f"{q} {q.split()[-1]} {q.split()[-1]}" for q in queries[:40]]
    queries += [catalog.products[i]["Title"] for i in range(0, 10_000, 97)]
    _assert_compiled_matches_dense(engine, queries, (50,))
    assert sum(len(engine.search(q, k=50)) == 50 for q in queries) > len(queries) // 2  # cuts happen
    _assert_compiled_matches_dense(engine, queries[:40] + queries[-60:], (1, 7, 10, 49, 200))


def test_compiled_search_ties_at_the_kth_score_across_windows() -> None:
    """Thousands of equal scores spread over many windows: the cut keeps the lowest tie ranks."""
    rng = random.Random(5)
    words = "red blue shoe dress cotton tea oil".split()
    docs = [rng.choice(["red shoe", "red shoe", "blue shoe", "red red shoe", "tea"]) for _ in range(20_000)]
    docs = [d if rng.random() < 0.9 else f"{d} {' '.join(rng.choices(words, k=rng.randint(1, 30)))}" for d in docs]
    ids = [f"B{rng.randrange(10**9):09d}" for _ in docs]
    engine = BM25Engine(docs, doc_ids=ids, cache_size=0)
    queries = ["red shoe", "red red shoe", "shoe", "blue shoe red", "tea tea", "shoe shoe shoe red", "oil tea red"]
    _assert_compiled_matches_dense(engine, queries, (1, 10, 50, 51, 500, 5000))
    for q in ("red shoe", "tea tea"):  # the 500th score is shared by documents across many windows
        scores, top = engine.scores(q), engine.search(q, k=500)
        tied = np.flatnonzero(scores == scores[top[-1]])
        assert tied.size > 100 and tied.max() - tied.min() > 4 * 4096


def test_block_maxima_bound_every_score() -> None:
    from webshop_env.search import kernel

    docs, _, _ = lucene_fixture_corpus()
    engine = BM25Engine(docs * 3)  # 1,200 documents, 19 blocks
    rows, table, term_max = engine._block_rows, engine._block_max, engine._bounds[0]
    indptr, indices, data = engine._indptr, engine._indices, engine._data
    num_blocks = -(-engine.num_docs // kernel.BLOCK)
    assert table.shape == (int(np.count_nonzero(rows >= 0)), num_blocks) and table.shape[0] > 0
    for term in range(len(indptr) - 1):
        lo, hi = indptr[term], indptr[term + 1]
        assert (rows[term] >= 0) == (hi - lo >= num_blocks)
        assert term_max[term] == data[lo:hi].max() and engine._bounds[2, term] == data[lo:hi].min()
        if rows[term] >= 0:
            codes = table[rows[term]]
            unit = np.float64(term_max[term]) * (1.0 / 255.0)
            blocks = indices[lo:hi] // kernel.BLOCK
            bound = codes[blocks] * unit
            assert np.all((bound >= data[lo:hi]) | (codes[blocks] == 255))
            assert np.all(codes[np.setdiff1d(np.arange(num_blocks), blocks)] == 0)


def test_inexact_sums_fall_back_to_the_dense_path(monkeypatch) -> None:
    from webshop_env.search import kernel

    bounds = np.array([[20.0, 30.0], [2.0, 2.0], [1e-9, 0.5], [1.0, 1.0]], np.float32)  # rows: max, max x, min, min x
    assert not kernel.sums_are_exact(bounds, np.array([0, 1]), np.zeros(2, np.float32))
    assert kernel.sums_are_exact(bounds, np.array([1]), np.zeros(1, np.float32))
    engine = BM25Engine(SMALL_DOCS, cache_size=0)
    expected = engine._search_dense("red shoes", 50)
    monkeypatch.setattr(kernel, "sums_are_exact", lambda *args: False)
    monkeypatch.setattr(kernel, "top_k", lambda *args: pytest.fail("the kernel ran on inexact sums"))
    assert engine.search("red shoes") == expected == [4, 0, 2, 1]
