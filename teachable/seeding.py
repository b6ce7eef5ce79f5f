"""Seeds, the ground floor: every seeded draw in the project comes from a generator made here.

A phase's `seed` and the integers that name one draw (a goal index, a repeat, a purpose tag)
make a 63-bit seed through numpy's `SeedSequence`, so draws are independent of each other, of the
order they are made in and of the process, and nothing touches a global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integers (a base seed, a goal index, a repeat...), stable across runs."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFFFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 1)


def seeded_rng(*keys: int) -> np.random.Generator:
    """The generator of the draw named by `keys`."""
    return np.random.default_rng(derive_seed(*keys))


def seeded_subset(items: Sequence[T], k: int, seed: int) -> list[T]:
    """At most `k` of `items` drawn without replacement with `seed`, in their original order
    (all of them when `k` is 0 or at least their number)."""
    if not k or k >= len(items):
        return list(items)
    keep = set(seeded_rng(seed, len(items)).choice(len(items), size=k, replace=False).tolist())
    return [x for i, x in enumerate(items) if i in keep]
