"""The evaluation suite: held-out goals, failure states and a retention set, on common seeds.

Three sets, built once per evaluation with `build_eval_sets` and played by every model:

- `heldout`: goals of the test split, fresh episodes (does training generalise?);
- `failures`: labeled failure snapshots, each episode starting from the restored state with its
  history (does the model now recover where the base student failed?);
- `retention`: train goals the base student solved in the rollouts run (did training break
  what already worked?).

Every item (goal or snapshot) is played `episodes_per_item` times, episode `j` of an item seeded
with `derive_seed(seed, set, item, j)`: every model meets the same seeds (common random
numbers), so differences between models are paired by item. Rates are estimated per item first
(the mean over its episodes) and intervals resample items, never episodes: one item played many
times counts once.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from teachable.executor import Executor, ExecutorConfig, PolicySpec
from teachable.label.quadrant import QUADRANTS
from teachable.names import EVAL_SUMMARY
from teachable.policy.base import Policy
from teachable.records import LabeledSnapshot, Trajectory
from teachable.rollouts import EpisodeSpec, play_episodes, run_episodes, sample_goals
from teachable.seeding import derive_seed, seeded_subset
from teachable.stats import (
    MDE_POWER,
    bootstrap_interval,
    paired_bootstrap_interval,
    paired_mde,
)
from webshop_env.env import Shop

log = logging.getLogger(__name__)

EVAL_SETS: tuple[str, ...] = ("heldout", "failures", "retention")
_SET_IDS = {name: i + 1 for i, name in enumerate(EVAL_SETS)}  # the set's key in episode seeds
ROW_COLUMNS: tuple[str, ...] = ("model", "set", "item", "episode", "goal_idx", "quadrant", "route",
                                "reward", "success", "n_steps", "seed")
METRICS: tuple[str, ...] = ("success", "score")
_ROW_FIELD = {"success": "success", "score": "reward"}


@dataclass
class EvalConfig(ExecutorConfig):
    """The `evaluate` phase: every model plays the same held-out, failure and retention items."""

    heldout_goals: int = field(default=50, metadata={"help": "test-split goals played from a reset (0: skip the set)"})
    failure_snapshots: int = field(default=100, metadata={"help": "labeled failure snapshots played from their restored state (0: skip the set)"})
    retention_goals: int = field(default=50, metadata={"help": "train goals the base student solved in the rollouts run (0: skip the set)"})
    episodes_per_item: int = field(default=2, metadata={"help": "episodes per goal or snapshot"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the LM policies"})
    greedy: bool = field(default=False, metadata={"help": "take the most likely action instead of sampling"})
    max_steps: int = field(default=15, metadata={"help": "episode length limit (counted from the episode's start, restored states included)"})
    batch_size: int = field(default=64, metadata={"help": "episodes stepped together"})
    success_threshold: float = field(default=1.0, metadata={"help": "reward counted as success"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples of every interval"})
    confidence: float = field(default=0.95, metadata={"help": "confidence of every interval"})
    seed: int = field(default=0, metadata={"help": "seed of the set draws, the episodes and the bootstrap"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("heldout_goals", "failure_snapshots", "retention_goals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 skips the set), got {getattr(self, name)}.")
        for name in ("episodes_per_item", "max_steps", "batch_size", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.temperature <= 0 and not self.greedy:
            raise ValueError(f"temperature must be > 0 (or set greedy=true), got {self.temperature}.")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {self.confidence}.")
        if not self.heldout_goals and not self.failure_snapshots and not self.retention_goals:
            raise ValueError("heldout_goals, failure_snapshots and retention_goals are all 0: nothing to evaluate.")


@dataclass
class EvalSets:
    """The items every model plays.

    Attributes:
        heldout: test-split goal indices.
        failures: labeled failure snapshots (played from their state).
        retention: train goal indices the base student solved.
    """

    heldout: list[int] = field(default_factory=list)
    failures: list[LabeledSnapshot] = field(default_factory=list)
    retention: list[int] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        """Items per set, e.g. for logging."""
        return {"heldout": len(self.heldout), "failures": len(self.failures), "retention": len(self.retention)}


def build_eval_sets(shop: Shop, *, labeled: Sequence[LabeledSnapshot], rollouts: Sequence[Trajectory],
                    config: EvalConfig) -> EvalSets:
    """Draw the three evaluation sets with `config.seed`.

    Args:
        shop: the catalogue and goals.
        labeled: the `label` phase's snapshots (the failure set is drawn from them).
        rollouts: the `rollouts` phase's trajectories of the base student (retention goals are
            the train goals of its successful episodes).
        config: set sizes, `max_steps` and the seed.

    Returns:
        The sets; a set whose size is 0 in the config is empty.

    Raises:
        ValueError: a requested set would be empty; the message names the phase to run.
    """
    heldout: list[int] = []
    if config.heldout_goals:
        heldout = sample_goals(shop, "test", config.heldout_goals, config.seed)
        if not heldout:
            raise ValueError("the catalogue has no test-split goals for the held-out set; use a data_dir "
                             "with test goals or set heldout_goals=0.")
    failures: list[LabeledSnapshot] = []
    if config.failure_snapshots:
        # A snapshot at or past the step limit has no action left to take.
        playable = [s for s in labeled if s.step_index < config.max_steps]
        if len(playable) < len(labeled):
            log.warning("%d labeled snapshots are at step >= max_steps=%d and are left out of the failure set.",
                        len(labeled) - len(playable), config.max_steps)
        if not playable:
            raise ValueError("no labeled failure snapshot to evaluate on: run the `label` phase (after `rollouts` "
                             "and `mine`) first, or set failure_snapshots=0.")
        failures = seeded_subset(playable, config.failure_snapshots, config.seed)
    retention: list[int] = []
    if config.retention_goals:
        train = set(shop.split_goal_indices("train"))
        solved = sorted({int(t.goal_idx) for t in rollouts if t.success and t.goal_idx in train})
        if not solved:
            raise EvalSetError(f"the retention set needs train goals the base student solved, and it solved none in the "
                               f"{len(rollouts)} rollouts given: run the `rollouts` phase with more goals (or a student "
                               "that succeeds sometimes) first, or set retention_goals=0.")
        retention = seeded_subset(solved, config.retention_goals, config.seed)
    sets = EvalSets(heldout=heldout, failures=failures, retention=retention)
    log.info("evaluation sets: %s", sets.sizes())
    return sets


def item_key(item_id: str | int) -> int:
    """The integer that stands for an item in its episodes' seeds (stable across runs and machines)."""
    if isinstance(item_id, int):
        return item_id
    return zlib.crc32(item_id.encode("utf-8"))


def episode_specs(sets: EvalSets, config: EvalConfig) -> list[tuple[dict[str, Any], EpisodeSpec]]:
    """Every episode of the evaluation, set by set, with the row fields that describe its item.

    The seeds depend only on `config.seed`, the set, the item and the repeat, never on the model.
    """
    items: list[tuple[str, str, dict[str, Any]]] = []  # (set, item id, how the episode starts)
    items += [("heldout", str(g), {"goal_idx": int(g), "split": "test"}) for g in sets.heldout]
    items += [("failures", s.snapshot_id, {"state": s.state, "history": tuple(s.history)}) for s in sets.failures]
    items += [("retention", str(g), {"goal_idx": int(g), "split": "train"}) for g in sets.retention]
    labels = {s.snapshot_id: (s.goal_idx, s.quadrant, s.route) for s in sets.failures}
    out = []
    for name, item, start in items:
        goal_idx, quadrant, route = labels[item] if name == "failures" else (int(item), None, None)
        key = item_key(item if name == "failures" else int(item))
        for j in range(config.episodes_per_item):
            seed = derive_seed(config.seed, _SET_IDS[name], key, j)
            meta = {"set": name, "item": item, "episode": j, "goal_idx": goal_idx, "quadrant": quadrant,
                    "route": route, "seed": seed}
            out.append((meta, EpisodeSpec(traj_id=f"{name}:{item}:{j}", seed=seed, **start)))
    return out


def evaluate_policy(shop: Shop | None, policy: Policy | PolicySpec, sets: EvalSets, config: EvalConfig, *, name: str,
                    progress: bool = False, executor: Executor | None = None) -> list[dict[str, Any]]:
    """Play every item of `sets` `config.episodes_per_item` times with `policy`.

    Args:
        shop: the catalogue the sets were built on (not needed with `executor`).
        policy: the model under evaluation (already at `config.temperature`), or its spec (built
            here, or by an executor's workers).
        sets: from `build_eval_sets`; the same sets for every model.
        config: episodes per item, step limit, batch size, greedy, success threshold and seed.
        name: the model's name in the rows (e.g. `base`, `Q1_highU_highL__demo`).
        progress: show a progress bar.
        executor: plays the episodes on its workers (default: this process).

    Returns:
        One row per episode (`ROW_COLUMNS`): model, set, item (goal index or snapshot id, as
        text), episode, goal_idx, quadrant and route (failure set only), reward, success,
        n_steps and the episode's seed.
    """
    plan = episode_specs(sets, config)
    settings = dict(max_steps=config.max_steps, batch_size=config.batch_size, greedy=config.greedy,
                    success_threshold=config.success_threshold, progress=progress)
    if executor is not None:
        if not isinstance(policy, PolicySpec):
            raise ValueError("with an executor, pass the policy as a PolicySpec (its workers build it).")
        trajectories = play_episodes(executor, policy, [spec for _, spec in plan], **settings)
    else:
        if shop is None:
            raise ValueError("without an executor, pass the shop the sets were built on.")
        if isinstance(policy, PolicySpec):
            policy = policy.build(shop)
        trajectories = run_episodes(shop, policy, [spec for _, spec in plan], **settings)
    rows = [{"model": name, **meta, "reward": float(t.reward), "success": bool(t.success), "n_steps": t.n_steps}
            for (meta, _), t in zip(plan, trajectories, strict=True)]
    return [{k: row[k] for k in ROW_COLUMNS} for row in rows]


def item_means(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(model, set) -> item -> {success, score, quadrant}: the mean over the item's episodes."""
    acc: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[(r["model"], r["set"])][str(r["item"])].append(r)
    return {
        key: {item: {"success": float(np.mean([float(e["success"]) for e in eps])),
                     "score": float(np.mean([float(e["reward"]) for e in eps])),
                     "quadrant": eps[0]["quadrant"]}
              for item, eps in items.items()}
        for key, items in acc.items()
    }


def summarize_eval(rows: Sequence[dict[str, Any]], config: EvalConfig) -> list[dict[str, Any]]:
    """One row per (model, set): item-level success rate and mean score with bootstrap intervals.

    Each item's episodes are averaged first; the intervals resample items (`config.n_boot`,
    `config.confidence`, seeded with `config.seed`, the same for every model). Failure-set rows
    also carry `success_<quadrant>` and `n_<quadrant>` (items of that quadrant).

    Returns:
        Rows with model, set, n_items, n_episodes, success_rate, success_low, success_high,
        mean_score, score_low, score_high (and the per-quadrant keys for the failure set).
    """
    n_episodes: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        n_episodes[(r["model"], r["set"])] += 1
    out = []
    for (model, name), items in item_means(rows).items():
        row: dict[str, Any] = {"model": model, "set": name, "n_items": len(items), "n_episodes": n_episodes[(model, name)]}
        for metric, label in (("success", "success_rate"), ("score", "mean_score")):
            est, low, high = bootstrap_interval([v[metric] for v in items.values()], n_boot=config.n_boot,
                                                confidence=config.confidence, seed=config.seed)
            row.update({label: est, f"{metric}_low": low, f"{metric}_high": high})
        if name == "failures":
            for q in QUADRANTS:
                values = [v["success"] for v in items.values() if v["quadrant"] == q]
                row[f"success_{q}"] = float(np.mean(values)) if values else math.nan
                row[f"n_{q}"] = len(values)
        out.append(row)
    order = {s: i for i, s in enumerate(EVAL_SETS)}
    return sorted(out, key=lambda r: (r["model"], order.get(r["set"], len(order)), r["set"]))


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a - b))


def gains_vs_base(summary: Sequence[dict[str, Any]], base_name: str, *, rows: Sequence[dict[str, Any]] | None = None,
                  config: EvalConfig | None = None) -> list[dict[str, Any]]:
    """Per model (other than the base) and set: success and score minus the base model's.

    With the per-episode `rows`, items played by both models are paired and the gain gets a
    paired bootstrap interval over those items (the models met the same seeds on each item);
    without them, or with no common item, the gain is the difference of the summary means and
    its interval is NaN.

    Args:
        summary: rows of `summarize_eval`.
        base_name: the model the others are compared with.
        rows: the per-episode rows of `evaluate_policy` for these models.
        config: `n_boot`, `confidence` and `seed` of the intervals (defaults: `EvalConfig()`'s).

    Returns:
        Rows with model, set, n_paired, success_gain (+ _low, _high, _mde) and score_gain (+ _low,
        _high, _mde): `_mde` is the minimum detectable effect of the paired comparison on these
        items at level `mde_alpha` (1 - `confidence`) and power `mde_power`
        (`teachable.stats.paired_mde`), so a gain the interval does not find can be told
        apart as "no effect" or "no power".

    Raises:
        ValueError: `base_name` is not in the summary.
    """
    config = config or EvalConfig()
    base = {r["set"]: r for r in summary if r["model"] == base_name}
    if not base:
        models = sorted({r["model"] for r in summary})
        raise ValueError(f"base model {base_name!r} is not in the summary (models: {', '.join(models)}); "
                         "evaluate it alongside the others.")
    items = item_means(rows) if rows else {}
    out = []
    for r in summary:
        name = r["set"]
        if r["model"] == base_name or name not in base:
            continue
        mine, theirs = items.get((r["model"], name), {}), items.get((base_name, name), {})
        common = sorted(set(mine) & set(theirs))
        if rows and set(mine) != set(theirs):
            log.warning("%s and %s played different %s items; the gain pairs the %d they share.",
                        r["model"], base_name, name, len(common))
        gain: dict[str, Any] = {"model": r["model"], "set": name, "n_paired": len(common),
                                "mde_alpha": 1.0 - config.confidence, "mde_power": MDE_POWER}
        for metric, label in (("success", "success_rate"), ("score", "mean_score")):
            if common:
                x = [mine[i][metric] for i in common]
                y = [theirs[i][metric] for i in common]
                est, low, high = paired_bootstrap_interval(x, y, mean_diff, n_boot=config.n_boot,
                                                           confidence=config.confidence, seed=config.seed)
                mde = paired_mde(x, y, alpha=1.0 - config.confidence, power=MDE_POWER)
            else:
                est, low, high, mde = r[label] - base[name][label], math.nan, math.nan, math.nan
            gain.update({f"{metric}_gain": est, f"{metric}_gain_low": low, f"{metric}_gain_high": high,
                         f"{metric}_gain_mde": mde})
        out.append(gain)
    return out


def summary_table(summary: Sequence[dict[str, Any]], gains: Sequence[dict[str, Any]] = ()) -> pd.DataFrame:
    """One row per model; columns `<set>_<stat>` (e.g. `failures_success`, `heldout_score_low`,
    `failures_success_Q1_highU_highL`, `retention_success_gain`)."""
    wide: dict[str, dict[str, Any]] = defaultdict(dict)
    renames = {"success_rate": "success", "mean_score": "score"}
    for r in summary:
        for key, value in r.items():
            if key not in ("model", "set"):
                wide[r["model"]][f"{r['set']}_{renames.get(key, key)}"] = value
    for g in gains:
        for key, value in g.items():
            if key not in ("model", "set"):
                wide[g["model"]][f"{g['set']}_{key}"] = value
    frame = pd.DataFrame([{"model": m, **cols} for m, cols in wide.items()])
    return frame.sort_values("model", kind="stable").reset_index(drop=True) if len(frame) else frame


def write_eval_csvs(rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], out_dir: str | Path, *,
                    gains: Sequence[dict[str, Any]] = ()) -> dict[str, Path]:
    """Write `eval_<set>.csv` (the per-episode rows of each set) and `eval_summary.csv`.

    Every set's file is written, with its header, even when the set was skipped.

    Returns:
        The written paths by name (`heldout`, `failures`, `retention`, `summary`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(list(rows), columns=list(ROW_COLUMNS))
    paths = {}
    for name in EVAL_SETS:
        paths[name] = out / f"eval_{name}.csv"
        frame[frame["set"] == name].to_csv(paths[name], index=False)
    paths["summary"] = out / EVAL_SUMMARY
    summary_table(summary, gains).to_csv(paths["summary"], index=False)
    return paths


class EvalSetError(ValueError):
    """An evaluation set cannot be built from the runs given; the message says what to change."""


