"""Policies: the contract (`Policy`), the LM student (`LMPolicy`), the oracle (`ExpertPolicy`)
and a uniform baseline (`RandomPolicy`)."""

from teachable.policy.base import Policy, RandomPolicy, RngLike, rng_for, sample_action

__all__ = ["Policy", "RandomPolicy", "RngLike", "rng_for", "sample_action"]
