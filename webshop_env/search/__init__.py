"""Product search for webshop_env: WebShop's Lucene BM25 ranking, in Python or via pyserini."""

from webshop_env.search.analyzer import Analyzer
from webshop_env.search.engine import (
    BM25Engine,
    PyseriniEngine,
    SearchEngine,
    build_document,
    open_search_engine,
)

__all__ = [
    "Analyzer",
    "BM25Engine",
    "PyseriniEngine",
    "SearchEngine",
    "build_document",
    "open_search_engine",
]
