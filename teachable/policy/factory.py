"""Build a policy from a name: `expert`, `reader`, `random`, or a model (local folder or `smollm2`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from teachable.models import ModelNotFoundError
from teachable.policy.base import Policy, RandomPolicy
from webshop_env.env import Shop

BUILTIN_POLICIES = ("expert", "reader", "random")



def make_policy(name_or_path: str, shop: Shop, *, temperature: float = 1.0, adapter: str | None = None,
                device: str | None = None, **settings: Any) -> Policy:
    """The policy named `name_or_path`.

    Args:
        name_or_path: `expert` (the oracle), `reader` (the page-reading demonstrator, see
            `teachable.policy.reader`), `random` (uniform clicks), a local Hugging Face
            model folder, or the preset `smollm2`.
        shop: the shop the policy acts in (the expert plans with it).
        temperature: sampling temperature of an LM policy.
        adapter: a LoRA adapter folder for an LM policy.
        device: `cpu`, `cuda`, ... for an LM policy (default: CUDA when available).
        **settings: further `LMPolicy` settings (prompt format, batch size).

    Raises:
        ModelNotFoundError: a model or adapter folder that does not exist here.
    """
    if name_or_path == "expert":
        from teachable.policy.expert import ExpertPolicy

        return ExpertPolicy(shop)
    if name_or_path == "reader":
        from teachable.policy.reader import PageReader

        return PageReader()
    if name_or_path == "random":
        return RandomPolicy()
    from teachable.models import SMOLLM2_PRESET, is_hub_id
    from teachable.policy.lm import LMPolicy

    local = name_or_path != SMOLLM2_PRESET and not is_hub_id(name_or_path)
    for what, path in (("model", name_or_path if local else None), ("adapter", adapter)):
        if path and not Path(path).is_dir():
            raise ModelNotFoundError(
                f"the {what} folder {path!r} is not on this machine ({socket.gethostname()}). On a Ray cluster of "
                "several machines every node needs the model and adapter folders at the same paths: put them, "
                "TEACHABLE_WORK_DIR and the MLflow artifact store on a shared filesystem.")
    return LMPolicy.from_pretrained(name_or_path, adapter=adapter, device=device, temperature=temperature, **settings)
