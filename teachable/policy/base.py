"""The policy contract shared by the student, the expert and baselines.

A policy maps a batch of `Context`s to actions. Clicks are chosen among `Context.valid_actions`;
on a page with a search bar (`Context.has_search_bar`) the policy writes a `search[...]` action.
Randomness comes only from the generator(s) passed to `act`: one `numpy.random.Generator` for
the whole batch, or one per context, which makes each episode's actions independent of which
other episodes share its batch (used by rollouts and labeling so results do not depend on the
batch layout or the number of workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, runtime_checkable

import numpy as np

from teachable.prompting import Context

RngLike = np.random.Generator | Sequence[np.random.Generator]


@runtime_checkable
class Policy(Protocol):
    """What rollouts, labels and evaluation need from a policy."""

    name: str

    def action_distribution(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        """For each context, a probability for each action the policy considers (sums to 1)."""
        ...

    def act(self, contexts: Sequence[Context], rng: RngLike, greedy: bool = False) -> list[str]:
        """One action per context; `greedy` takes the most likely action (and the greedy query)."""
        ...


def memoized(policy: Policy) -> AbstractContextManager:
    """A block in which the policy may reuse its scores of contexts it has seen (its
    `memoized_scores()`, where it has one); the weights must not change inside it."""
    memoize = getattr(policy, "memoized_scores", None)
    return memoize() if memoize is not None else nullcontext()


def instruction_query(instruction: str, words: int = 6) -> str:
    """The first `words` words of an instruction (commas dropped): a query without a model."""
    return " ".join(instruction.replace(",", " ").split()[:words])


def rng_for(rng: RngLike, i: int) -> np.random.Generator:
    """The generator for context `i` of a batch."""
    return rng if isinstance(rng, np.random.Generator) else rng[i]


def check_batch(contexts: Sequence[Context], rng: RngLike) -> None:
    """Raise ValueError when a per-context generator list does not match the batch."""
    if not isinstance(rng, np.random.Generator) and len(rng) != len(contexts):
        raise ValueError(f"got {len(rng)} generators for {len(contexts)} contexts; pass one per context or a single one.")


def sample_action(dist: dict[str, float], rng: np.random.Generator, greedy: bool) -> str:
    """Draw an action from a distribution (ties in greedy mode go to the first listed action)."""
    actions = list(dist)
    probs = np.fromiter(dist.values(), dtype=float, count=len(actions))
    if greedy:
        return actions[int(np.argmax(probs))]
    return actions[int(rng.choice(len(actions), p=probs / probs.sum()))]


class RandomPolicy:
    """Uniform over the valid clicks; on a search page, searches the instruction's first words.

    A baseline and a cheap policy for tests of the machinery (rollouts, mining, labels).

    Args:
        query_words: how many leading words of the instruction to search for.
    """

    name = "random"

    def __init__(self, query_words: int = 6) -> None:
        self.query_words = query_words

    def _query(self, ctx: Context) -> str:
        return f"search[{instruction_query(ctx.instruction, self.query_words)}]"

    def action_distribution(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        out = []
        for ctx in contexts:
            if ctx.has_search_bar or not ctx.valid_actions:
                out.append({self._query(ctx): 1.0})
            else:
                out.append({a: 1.0 / len(ctx.valid_actions) for a in ctx.valid_actions})
        return out

    def act(self, contexts: Sequence[Context], rng: RngLike, greedy: bool = False) -> list[str]:
        check_batch(contexts, rng)
        dists = self.action_distribution(contexts)
        return [sample_action(d, rng_for(rng, i), greedy) for i, d in enumerate(dists)]
