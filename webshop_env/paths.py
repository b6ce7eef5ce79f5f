"""Where webshop_env keeps generated catalogues and search indexes.

The root is `$WEBSHOP_ENV_CACHE` when set, else the platform's user cache dir
(e.g. `~/.cache/webshop_env`). Nothing is written outside this root unless a caller
passes an explicit directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import platformdirs

CACHE_ENV_VAR = "WEBSHOP_ENV_CACHE"


def cache_root() -> Path:
    """Return the cache root directory (created on demand by callers that write)."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_cache_dir("webshop_env"))


def default_catalog_dir(n_products: int, seed: int, categories: Sequence[str] | None = None) -> Path:
    """Directory of the generated catalogue with `n_products` products, `seed` and category mix.

    `categories` is a canonical mix (`webshop_env.generate.category_mix`); None, all
    categories, keeps the folder name it always had, so existing caches stay valid.
    """
    mix = "" if categories is None else "-" + "+".join(categories)
    return cache_root() / "catalogs" / f"generated-{n_products}-seed{seed}{mix}"


def real_schema_catalog_dir(source_sha256: str, seed: int, distractors: int) -> Path:
    """Directory of a real-schema catalogue built from the attribute file with this sha256."""
    return cache_root() / "catalogs" / f"realistic-{source_sha256[:16]}-seed{seed}-d{distractors}"


def index_cache_dir() -> Path:
    """Directory holding search indexes keyed by catalogue content hash."""
    return cache_root() / "indexes"


def store_cache_dir() -> Path:
    """Directory holding catalogue stores keyed by the content hash of WebShop's files."""
    return cache_root() / "stores"
