"""Micro-training validation of the CPT labels (phase 1b).

Does a snapshot's ELP_net predict what training on it does? For a stratified sample of labeled
snapshots (the same number per quadrant), a tiny LoRA update (`MICRO_RECIPE`: `train_steps` optimiser steps) is made
on the snapshot's supervision in its route's format (DEMO when the route is `none`); then the
student's success from the snapshot state is measured before and after with the same branch
seeds (common random numbers), and `micro_gain = p_after - p_before`. The figure of merit is
Spearman(ELP_net, micro_gain) with a paired bootstrap interval, overall and per quadrant.

Each snapshot is one unit of work on an executor (`teachable.executor`): in this process, or on
Ray actors that each load the shop and the base model once (`MicroSetup`). The update and the
branches are seeded from the config's seed, never from the worker.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from teachable.executor import Executor, ExecutorConfig, LocalExecutor, ShopSpec
from teachable.label.quadrant import QUADRANTS
from teachable.policy.lm import LMPolicy
from teachable.records import LabeledSnapshot
from teachable.rollouts import EpisodeSpec, run_episodes
from teachable.seeding import derive_seed, seeded_rng
from teachable.stats import paired_bootstrap_interval, spearman
from teachable.supervision.examples import routed_format, supervision_pair
from teachable.training.sft import LoraRecipe, micro_update
from webshop_env.env import Shop

log = logging.getLogger(__name__)


# a micro update: two steps on the one example of a snapshot, at a high rate, without dropout
MICRO_RECIPE = LoraRecipe(lora_r=8, lora_alpha=16, lora_dropout=0.0, learning_rate=5e-3, epochs=1.0, train_steps=2,
                          train_batch_size=1)


@dataclass
class MicroConfig(ExecutorConfig):
    """How tiny LoRA updates per snapshot are measured against ELP_net (the `micro_train` phase;
the update's own settings are a `LoraRecipe`, `MICRO_RECIPE` by default)."""

    per_quadrant: int = field(default=6, metadata={"help": "snapshots drawn per quadrant"})
    n_rollouts: int = field(default=16, metadata={"help": "branches before and after the update, same seeds"})
    temperature: float = field(default=1.0, metadata={"help": "student sampling temperature"})
    max_steps: int = field(default=15, metadata={"help": "episode length limit"})
    success_threshold: float = field(default=1.0, metadata={"help": "a branch succeeds when its reward reaches this"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the Spearman interval"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})
    seed: int = field(default=0, metadata={"help": "seed of the sample, the updates and the branches"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("per_quadrant", "n_rollouts", "max_steps", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")


def stratified_sample(records: Sequence[LabeledSnapshot], per_quadrant: int, seed: int) -> list[LabeledSnapshot]:
    """Up to `per_quadrant` snapshots with teacher advice from each quadrant, drawn with `seed`."""
    by_q: dict[str, list[LabeledSnapshot]] = defaultdict(list)
    for r in records:
        if r.quadrant and r.teacher:
            by_q[r.quadrant].append(r)
    rng = seeded_rng(seed, 101)
    out = []
    for q in QUADRANTS:
        pool = by_q.get(q, [])
        picked = rng.choice(len(pool), size=min(per_quadrant, len(pool)), replace=False) if pool else []
        out += [pool[i] for i in sorted(picked)]
    return out


def success_from(shop: Shop, policy: LMPolicy, record: LabeledSnapshot, config: MicroConfig) -> float:
    """The policy's success rate from the snapshot state over `n_rollouts` seeded branches."""
    specs = [EpisodeSpec(traj_id=f"{record.snapshot_id}/micro/{j}", seed=derive_seed(config.seed, 7, j),
                         state=record.state, history=tuple(record.history)) for j in range(config.n_rollouts)]
    trajs = run_episodes(shop, policy, specs, max_steps=config.max_steps, batch_size=config.n_rollouts,
                         success_threshold=config.success_threshold)
    return float(np.mean([t.success for t in trajs]))


@dataclass
class MicroWorld:
    """What micro-trains a snapshot: the shop, the base model's folder and the base policy."""

    shop: Shop
    base_model: str
    base: LMPolicy


@dataclass(frozen=True)
class MicroSetup:
    """Builds a `MicroWorld` where it runs (a Ray actor, or this process)."""

    shop: ShopSpec
    base_model: str
    config: MicroConfig

    def __call__(self) -> MicroWorld:
        return micro_world(self.shop.load(), self.base_model, self.config)


def batch_settings(config: MicroConfig) -> dict[str, Any]:
    """`LMPolicy.from_pretrained` settings: the batch size from `config.policy_batch` (none for 0:
    the policy's default) and how the model is loaded."""
    return {**({"batch_size": config.policy_batch} if config.policy_batch else {}), **config.model_loading()}


def micro_world(shop: Shop, base_model: str, config: MicroConfig) -> MicroWorld:
    base = LMPolicy.from_pretrained(base_model, device=config.device or None, temperature=config.temperature,
                                    **batch_settings(config))
    return MicroWorld(shop, base_model, base)


def micro_row(world: MicroWorld, record: LabeledSnapshot, config: MicroConfig,
              recipe: LoraRecipe = MICRO_RECIPE) -> dict[str, Any]:
    """Micro-train on one snapshot with `recipe` (its `train_steps` steps): its success from the
    snapshot before and after the update."""
    device = config.device or None
    fmt = routed_format(record)
    ctx, action = supervision_pair(record, fmt)
    before = success_from(world.shop, world.base, record, config)
    with tempfile.TemporaryDirectory() as tmp:
        micro_update(world.base_model, [(world.base.prompt(ctx), world.base.completion(ctx, action))], Path(tmp) / "adapter",
                     steps=recipe.train_steps, settings=recipe.sft_settings(config.seed), device=device)
        adapted = LMPolicy.from_pretrained(world.base_model, adapter=str(Path(tmp) / "adapter"), device=device,
                                           temperature=config.temperature, **batch_settings(config))
        after = success_from(world.shop, adapted, record, config)
    return {"snapshot_id": record.snapshot_id, "quadrant": record.quadrant, "route": record.route, "format": fmt,
            "elp_net": record.elp_net, "p_before": before, "p_after": after, "micro_gain": after - before}


def micro_validate(records: Sequence[LabeledSnapshot], *, base_model: str, shop: Shop | None = None,
                   config: MicroConfig, recipe: LoraRecipe = MICRO_RECIPE, show_progress: bool = True,
                   executor: Executor | None = None) -> dict[str, Any]:
    """Micro-train on each sampled snapshot and relate the gains to ELP_net.

    Args:
        records: the labeled snapshots (a stratified sample is drawn from them).
        base_model: the student's model folder (or `smollm2`).
        shop: the shop, to micro-train in this process (not needed with `executor`).
        config: the micro_train configuration.
        recipe: the LoRA settings of each update; `train_steps` (>= 1) steps on the snapshot's example.
        show_progress: show a progress bar.
        executor: runs one snapshot per batch on workers built on a `MicroSetup`.

    Returns:
        {"snapshots": [per-snapshot rows], "overall": {...}, "per_quadrant": {q: {...}}} where each
        summary has n, spearman, low, high (a 95% paired bootstrap interval).

    Raises:
        ValueError: no labeled snapshot has a quadrant and teacher advice, neither a shop nor an
            executor was given, or `recipe.train_steps` < 1.
    """
    if recipe.train_steps < 1:
        raise ValueError(f"train_steps={recipe.train_steps}: a micro update is a number of steps; pass train_steps >= 1.")
    sample = stratified_sample(records, config.per_quadrant, config.seed)
    if not sample:
        raise ValueError("no labeled snapshot has a quadrant and teacher advice; label snapshots first.")
    if executor is None:
        if shop is None:
            raise ValueError("micro_validate needs a shop (to micro-train here) or an executor built on a MicroSetup.")
        executor = LocalExecutor(micro_world(shop, base_model, config))
    done: dict[int, dict[str, Any]] = {}
    for i, row in tqdm(executor.map(partial(micro_row, config=config, recipe=recipe), sample), total=len(sample),
                       desc="micro-training", unit="snapshot", disable=not show_progress):
        done[i] = row
    rows = [done[i] for i in range(len(sample))]
    return {"snapshots": rows, "overall": _correlation(rows, config),
            "per_quadrant": {q: _correlation([x for x in rows if x["quadrant"] == q], config) for q in QUADRANTS}}


def _correlation(rows: Sequence[dict[str, Any]], config: MicroConfig) -> dict[str, float]:
    x = np.array([r["elp_net"] if r["elp_net"] is not None else np.nan for r in rows], dtype=float)
    y = np.array([r["micro_gain"] for r in rows], dtype=float)
    keep = ~np.isnan(x)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return {"n": int(len(x)), "spearman": float("nan"), "low": float("nan"), "high": float("nan"),
                "mean_gain": float(np.mean(y)) if len(y) else float("nan")}
    est, low, high = paired_bootstrap_interval(x, y, spearman, n_boot=config.n_boot, seed=config.seed)
    return {"n": int(len(x)), "spearman": est, "low": low, "high": high, "mean_gain": float(np.mean(y))}
