"""U(s): how unsure the student is at a state, from its action distribution there.

- `entropy`: Shannon entropy (nats) of the distribution over the valid actions.
- `entropy_norm`: entropy / log(number of actions), in [0, 1] (0 with a single action).
- `margin`: p1 - p2, the gap between the two most likely actions (1 with a single action).
- `topk_spread`: p1 - p_k, the spread of the k most likely actions (k = `TOPK`, or fewer).

On a page with a search bar the student writes a query instead of choosing among clicks; its
distribution there is a single action, so U is 0 by construction (see `LMPolicy`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from teachable.policy.base import Policy
from teachable.prompting import Context

TOPK = 3


@dataclass(frozen=True)
class Uncertainty:
    """The student's uncertainty at one state (see the module docstring)."""

    entropy: float
    entropy_norm: float
    margin: float
    topk_spread: float
    n_actions: int
    top_action: str
    top_p: float

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def uncertainty_of(dist: Mapping[str, float], k: int = TOPK) -> Uncertainty:
    """Uncertainty of one action distribution.

    Raises:
        ValueError: an empty distribution.
    """
    if not dist:
        raise ValueError("an empty action distribution has no uncertainty; the state offers no action.")
    actions = list(dist)
    p = np.fromiter(dist.values(), dtype=float, count=len(actions))
    p = p / p.sum()
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    nz = ps[ps > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    n = len(ps)
    return Uncertainty(
        entropy=entropy,
        entropy_norm=entropy / float(np.log(n)) if n > 1 else 0.0,
        margin=float(ps[0] - ps[1]) if n > 1 else 1.0,
        topk_spread=float(ps[0] - ps[min(k, n) - 1]),
        n_actions=n,
        top_action=actions[int(order[0])],
        top_p=float(ps[0]),
    )


def measure_uncertainty(policy: Policy, contexts: Sequence[Context]) -> tuple[list[Uncertainty], list[dict[str, float]]]:
    """U for each context from one batched `action_distribution` call; also returns the distributions."""
    dists = policy.action_distribution(contexts)
    return [uncertainty_of(d) for d in dists], dists
