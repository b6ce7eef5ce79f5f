"""webshop_env: a faithful, fast WebShop text environment with state save/restore.

Public names are imported lazily so that `import webshop_env.search` (or the CLI) does not
load the whole environment.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

ENV_ID = "WebShop-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="webshop_env.env:WebShopEnv")

_EXPORTS = {
    "Catalog": "webshop_env.catalog",
    "CatalogError": "webshop_env.catalog",
    "load_catalog": "webshop_env.catalog",
    "load_default_catalog": "webshop_env.catalog",
    "Shop": "webshop_env.env",
    "WebShopEnv": "webshop_env.env",
    "parse_action": "webshop_env.env",
    "get_reward": "webshop_env.reward",
    "StateError": "webshop_env.state",
    "generate_catalog": "webshop_env.generate",
    "build_real_schema_catalog": "webshop_env.realistic",
}

__all__ = ["ENV_ID", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'webshop_env' has no attribute {name!r}")
