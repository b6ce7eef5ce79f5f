"""Policies: the contract (`Policy`), the LM student (`LMPolicy`), the oracle (`ExpertPolicy`)
and a uniform baseline (`RandomPolicy`)."""

from teachable.policy.base import Policy, RandomPolicy, RngLike, rng_for, sample_action
from teachable.policy.expert import ExpertPolicy

__all__ = ["Policy", "RandomPolicy", "RngLike", "rng_for", "sample_action"]
__all__ += ["ExpertPolicy"]
__all__ += ["LMPolicy"]


def __getattr__(name: str):
    # LMPolicy imports torch and transformers: load it only when asked for.
    if name == "LMPolicy":
        from teachable.policy.lm import LMPolicy

        return LMPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
