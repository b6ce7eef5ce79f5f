"""H7: which snapshots to teach at a fixed budget K?

Four ways to pick K labeled snapshots from a pool:

- `random`: K drawn uniformly without replacement (one draw per seed);
- `entropy`: the K where the student is least sure (top-K by U entropy);
- `predictor`: the top-K by the teachability predictor's ELP_net;
- `oracle`: the top-K by the true ELP_net (an upper bound the labels give for free).

Ties keep the pool's order. Each selection is taught with the same recipe as the training
matrix: every snapshot once, in its route's format, and DEMO when the route is `none` (no format
beat the placebo there, so the plain demonstration is used; the same rule as `B2_all`).

The pool is the labeled snapshots with teacher advice (anything else cannot be supervision)
and an ELP_net (the oracle ranks by it). With `failure_holdout` > 0 a share of the failed
trajectories is kept out of the pool and is the failure-state evaluation set, so a method is
never scored on the very states it was trained on.

A predictor trained on the same label run would rank its own training labels, which it fits far
better than unseen ones: the trajectories it was trained on never enter the pool. The failure
evaluation set is drawn from them first (their labels do not reach any selection), so a
predictor trained with `valid_fraction` v leaves its validation side, about v of the
trajectories, as the pool.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from teachable.evaluation import EvalConfig, item_means, mean_diff
from teachable.names import SELECTION_COMPARISONS, SELECTION_SUMMARY
from teachable.predictor.metrics import top_k
from teachable.predictor.split import trajectory_split
from teachable.records import LabeledSnapshot
from teachable.seeding import seeded_rng
from teachable.stats import MDE_POWER, paired_bootstrap_interval, paired_mde
from teachable.supervision.examples import routed_format
from teachable.teach import Comparison

METHODS: tuple[str, ...] = ("random", "entropy", "predictor", "oracle")
GAINS: tuple[str, ...] = ("failure_gain", "retention_change", "heldout_gain")
# each gain with the low and high ends of its paired bootstrap interval over the set's items and
# its minimum detectable effect at 80% power on those items
SUMMARY_COLUMNS: tuple[str, ...] = ("method", "K", "seed",
                                    *(f"{g}{end}" for g in GAINS for end in ("", "_low", "_high", "_mde")),
                                    "n_examples")


# H7's head-to-head tests: (method, the method it is compared with)
COMPARISONS: tuple[tuple[str, str], ...] = (("predictor", "random"), ("predictor", "entropy"), ("entropy", "random"),
                                            ("oracle", "random"), ("oracle", "predictor"))
EVAL_SETS: tuple[str, ...] = ("failures", "retention", "heldout")
GAIN_COLUMNS: dict[str, str] = {"failures": "failure_gain", "retention": "retention_change", "heldout": "heldout_gain"}
COMPARISON_COLUMNS: tuple[str, ...] = ("K", "method", "versus", "set", "n_items", "success_diff", "success_diff_low",
                                       "success_diff_high", "success_diff_mde", "mde_alpha", "mde_power")


class BudgetError(ValueError):
    """A budget K larger than the pool of labeled snapshots."""


@dataclass
class SelectConfig:
    """What the `select` phase (H7) compares: the methods, the budgets K, the random draws and the
    failure holdout (each selection is taught with one `LoraRecipe` and compared under an
    `EvalConfig`)."""

    methods: str = field(default="random,entropy,predictor,oracle", metadata={"help": "comma-separated selection methods"})
    budgets: str = field(default="8,16", metadata={"help": "comma-separated budgets K"})
    random_seeds: int = field(default=3, metadata={"help": "draws of the random method per K"})
    failure_holdout: float = field(default=0.3, metadata={"help": "share of failed trajectories kept out of the pool as the failure-state eval set (0: evaluate on every labeled snapshot)"})
    seed: int = field(default=0, metadata={"help": "seed of the holdout split, the draws, the training and the episodes"})

    def __post_init__(self) -> None:
        self.method_list()
        self.budget_list()
        if self.random_seeds < 1:
            raise ValueError(f"random_seeds must be >= 1, got {self.random_seeds}.")
        if not 0.0 <= self.failure_holdout < 1.0:
            raise ValueError(f"failure_holdout must be in [0, 1), got {self.failure_holdout}.")

    def method_list(self) -> list[str]:
        """The methods to run, in `METHODS` order.

        Raises:
            ValueError: an unknown or no method.
        """
        wanted = [m.strip() for m in self.methods.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in METHODS]
        if unknown or not wanted:
            raise ValueError(f"methods={self.methods!r}: unknown or none; use a comma list of {', '.join(METHODS)}.")
        return [m for m in METHODS if m in wanted]

    def budget_list(self) -> list[int]:
        """The budgets, ascending and unique.

        Raises:
            ValueError: not a comma list of positive whole numbers.
        """
        try:
            values = sorted({int(b) for b in self.budgets.split(",") if b.strip()})
        except ValueError as e:
            raise ValueError(f"budgets={self.budgets!r}: expected a comma list of whole numbers, e.g. 8,16.") from e
        if not values or values[0] < 1:
            raise ValueError(f"budgets={self.budgets!r}: expected budgets >= 1, e.g. 8,16.")
        return values

    def cells(self) -> list[tuple[str, int, int | None]]:
        """Every (method, K, seed) to train; seed is None for the deterministic methods."""
        out: list[tuple[str, int, int | None]] = []
        for method in self.method_list():
            seeds: list[int | None] = list(range(self.random_seeds)) if method == "random" else [None]
            out += [(method, k, s) for k in self.budget_list() for s in seeds]
        return out


def cell_name(method: str, k: int, seed: int | None) -> str:
    return f"{method}_K{k}" + (f"_seed{seed}" if seed is not None else "")


def selection_pool(records: Sequence[LabeledSnapshot]) -> list[LabeledSnapshot]:
    """The labeled snapshots a method may pick: with teacher advice and an ELP_net."""
    return [r for r in records if r.teacher and r.elp_net is not None and not math.isnan(r.elp_net)]


def split_pool(records: Sequence[LabeledSnapshot], holdout: float, seed: int,
               fitted: Collection[str] = ()) -> tuple[list[LabeledSnapshot], list[LabeledSnapshot]]:
    """(selection pool, failure-state eval snapshots): whole trajectories on each side.

    With `holdout` 0 the pool is every usable snapshot and the eval set every labeled one.

    Args:
        records: the labeled snapshots.
        holdout: the share of trajectories kept out as the failure-state eval set.
        seed: draws the held-out trajectories.
        fitted: ids of snapshots a predictor was trained on: their trajectories never enter the
            pool, and the held-out trajectories are drawn from them first.

    Raises:
        ValueError: a holdout with fewer than two trajectories.
    """
    fitted_trajs = {r.traj_id for r in records if r.snapshot_id in fitted}
    if holdout <= 0:
        return selection_pool([r for r in records if r.traj_id not in fitted_trajs]), list(records)
    traj_ids = [r.traj_id for r in records]
    if not fitted_trajs:
        pool_ids, held_ids = trajectory_split(traj_ids, holdout, seed)
        return selection_pool([records[i] for i in pool_ids]), [records[i] for i in held_ids]
    groups = sorted(set(traj_ids))
    if len(groups) < 2:
        raise ValueError(f"{len(groups)} trajectory among the labeled snapshots: a holdout by trajectory needs at "
                         "least two; label snapshots from more failed episodes.")
    n_held = min(len(groups) - 1, max(1, round(holdout * len(groups))))
    rng = np.random.default_rng(seed)
    first = sorted(fitted_trajs)
    rest = [t for t in groups if t not in fitted_trajs]
    order = [first[i] for i in rng.permutation(len(first))] + [rest[i] for i in rng.permutation(len(rest))]
    held = set(order[:n_held])
    pool = [r for r in records if r.traj_id not in held and r.traj_id not in fitted_trajs]
    return selection_pool(pool), [r for r in records if r.traj_id in held]


def check_budgets(budgets: Sequence[int], pool: Sequence[LabeledSnapshot], n_fitted: int = 0) -> None:
    """Raises BudgetError when a budget exceeds the pool (`n_fitted`: usable snapshots kept out
    because the predictor was trained on them)."""
    too_big = [k for k in budgets if k > len(pool)]
    if too_big:
        fitted = (f" {n_fitted} more were kept out because the predictor was trained on them: select from another "
                  "label run than the predictor's, or train it with a larger valid_fraction." if n_fitted else "")
        raise BudgetError(f"budget K={max(too_big)} is larger than the {len(pool)} labeled snapshots in the selection "
                          "pool (with teacher advice and an ELP_net, outside the failure holdout); lower budgets, "
                          f"lower failure_holdout or label more snapshots (label max_snapshots).{fitted}")


def select(pool: Sequence[LabeledSnapshot], method: str, k: int, *, seed: int | None = None,
           scores: Mapping[str, float] | None = None) -> list[LabeledSnapshot]:
    """K snapshots of `pool` by `method`, best first (random: in draw order).

    Args:
        pool: the candidates (`selection_pool`).
        method: one of `METHODS`.
        k: the budget.
        seed: the random method's seed.
        scores: the predictor method's predicted ELP_net by snapshot id.

    Raises:
        BudgetError: k larger than the pool.
        ValueError: an unknown method, or a missing seed / score.
    """
    check_budgets([k], pool)
    if method == "random":
        if seed is None:
            raise ValueError("the random method needs a seed.")
        rng = seeded_rng(seed, k, len(pool))
        return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
    if method == "entropy":
        values = [float((r.uncertainty or {}).get("entropy", 0.0)) for r in pool]
    elif method == "oracle":
        values = [float(r.elp_net) for r in pool]
    elif method == "predictor":
        if scores is None:
            raise ValueError("the predictor method needs the predicted ELP_net of every snapshot in the pool.")
        missing = [r.snapshot_id for r in pool if r.snapshot_id not in scores]
        if missing:
            raise ValueError(f"no predicted ELP_net for {len(missing)} snapshots (e.g. {missing[0]}).")
        values = [float(scores[r.snapshot_id]) for r in pool]
    else:
        raise ValueError(f"unknown selection method {method!r}; use one of {', '.join(METHODS)}.")
    return [pool[i] for i in top_k(values, k)]


def selection_examples(selected: Sequence[LabeledSnapshot]) -> list[tuple[LabeledSnapshot, str]]:
    """Each selected snapshot once, in its routed format (DEMO for route `none`)."""
    return [(r, routed_format(r)) for r in selected]


def method_comparisons(rows: Sequence[dict[str, Any]], cells: Sequence[tuple[str, int, int | None]],
                       config: EvalConfig) -> list[dict[str, Any]]:
    """H7 head to head: at each budget K, each pair of `COMPARISONS` that both ran, and each
    evaluation set, the difference in item-level success (method minus versus) with a paired
    bootstrap interval over the items both played (`config.n_boot`, `confidence`, `seed`) and
    the minimum detectable difference on those items (`success_diff_mde`, at level `mde_alpha` =
    1 - `confidence` and power `mde_power`).

    Args:
        rows: the per-episode evaluation rows of the cells (`model` is the cell's name).
        cells: the (method, K, seed) cells that ran; a method with several seeds (random) is
            averaged over its seeds per item first.
        config: the interval settings.

    Returns:
        Rows with the `COMPARISON_COLUMNS`.
    """
    items = item_means(rows)
    names: dict[tuple[str, int], list[str]] = defaultdict(list)
    for method, k, seed in cells:
        names[(method, k)].append(cell_name(method, k, seed))
    out = []
    for k in sorted({k for _, k, _ in cells}):
        for method, versus in COMPARISONS:
            if (method, k) not in names or (versus, k) not in names:
                continue
            for set_name in EVAL_SETS:
                mine = _seed_mean(items, names[(method, k)], set_name)
                theirs = _seed_mean(items, names[(versus, k)], set_name)
                common = sorted(set(mine) & set(theirs))
                if not common:
                    continue
                x, y = [mine[i] for i in common], [theirs[i] for i in common]
                est, low, high = paired_bootstrap_interval(x, y, mean_diff, n_boot=config.n_boot,
                                                           confidence=config.confidence, seed=config.seed)
                alpha = 1.0 - config.confidence
                mde = paired_mde(x, y, alpha=alpha, power=MDE_POWER)
                out.append(dict(zip(COMPARISON_COLUMNS, (k, method, versus, set_name, len(common), est, low, high,
                                                         mde, alpha, MDE_POWER), strict=True)))
    return out


def _seed_mean(items: Mapping[tuple[str, str], Mapping[str, Mapping[str, float]]], models: Sequence[str],
               set_name: str) -> dict[str, float]:
    """Item -> success averaged over `models` (the seeds of one method), on the items all of them played."""
    per = [items.get((m, set_name), {}) for m in models]
    common = set.intersection(*(set(p) for p in per)) if per else set()
    return {i: float(np.mean([p[i]["success"] for p in per])) for i in common}


def cell_gains(comparison: Comparison) -> dict[str, float]:
    """failure_gain, retention_change and heldout_gain of the one cell of `comparison` vs the base,
    each with the ends of its paired bootstrap interval (`<gain>_low`, `<gain>_high`) and its
    minimum detectable effect at 80% power (`<gain>_mde`); NaN for a skipped set."""
    gains = {g["set"]: g for g in comparison.gains}
    return {f"{column}{end}": float(gains[s][f"success_gain{end}"]) if s in gains else math.nan
            for s, column in GAIN_COLUMNS.items() for end in ("", "_low", "_high", "_mde")}


def summary_frame(entries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """`selection_summary.csv`'s frame: one row per (method, K, seed), seed empty when deterministic."""
    # .get: a cell finished by an earlier version has no interval columns
    frame = pd.DataFrame([{c: e.get(c, math.nan) for c in SUMMARY_COLUMNS} for e in entries],
                         columns=list(SUMMARY_COLUMNS))
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def selection_frames(entries: Sequence[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Per method, the selected snapshot ids: method, K, seed, rank, snapshot_id."""
    out = {}
    for method in METHODS:
        rows = [{"method": method, "K": e["K"], "seed": e["seed"], "rank": i, "snapshot_id": sid}
                for e in entries if e["method"] == method for i, sid in enumerate(e["selected"])]
        if rows:
            frame = pd.DataFrame(rows)
            frame["seed"] = frame["seed"].astype("Int64")
            out[method] = frame
    return out


def summary_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """`<method>.<gain>.K<k>`: the cell's gain (random: the mean over seeds, and its std)."""
    metrics = {}
    for (method, k), group in frame.groupby(["method", "K"], sort=False):
        for column in ("failure_gain", "retention_change", "heldout_gain"):
            values = group[column].dropna()
            if len(values):
                metrics[f"{method}.{column}.K{k}"] = float(values.mean())
                if method == "random" and len(values) > 1:
                    metrics[f"{method}.{column}_std.K{k}"] = float(values.std(ddof=1))
    return metrics


def comparison_metrics(comparisons: pd.DataFrame) -> dict[str, float]:
    """`h7.<method>_vs_<versus>.<set>.K<k>`: the difference in item-level success (and `..._mde`,
    the smallest difference those items detect at 80% power)."""
    out = {}
    for r in comparisons.itertuples():
        key = f"h7.{r.method}_vs_{r.versus}.{r.set}.K{r.K}"
        out.update({key: float(r.success_diff), f"{key}_mde": float(r.success_diff_mde)})
    return out


def selection_tables(entries: Sequence[dict[str, Any]], config: EvalConfig) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(the summary frame, {file name: table}) of `select`'s cells: `selection_summary.csv`,
    `selection_comparisons.csv` (H7 head to head, see `method_comparisons`) and
    `selection_<method>.csv` (the snapshots each method chose)."""
    frame = summary_frame(entries)
    cells = [(e["method"], e["K"], e["seed"]) for e in entries]
    comparisons = pd.DataFrame(method_comparisons([r for e in entries for r in e["rows"]], cells, config),
                               columns=list(COMPARISON_COLUMNS))
    tables = {SELECTION_SUMMARY: frame, SELECTION_COMPARISONS: comparisons}
    tables.update({f"selection_{method}.csv": table for method, table in selection_frames(entries).items()})
    return frame, tables


def selection_metrics(frame: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, float]:
    """`summary_metrics` and `comparison_metrics` of a select run."""
    return {**summary_metrics(frame), **comparison_metrics(comparisons)}
