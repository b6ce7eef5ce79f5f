"""Teach and compare: how the training matrix, select and recovery train a LoRA adapter on
supervision, and how they and evaluate compare models with the base student.

- `teaching_examples`: (context, action) pairs rendered as the base is prompted, by its
  `PromptRenderer` (its tokenizer and saved prompt settings; no weights loaded).
- `train_adapter`: LoRA SFT with a `LoraRecipe` through TRL (`teachable.training.sft.train_lora`,
  which writes the adapter's provenance: its base and the base's fingerprint, checked before an
  evaluation by `check_adapter_base`).
- `compare_to_base` / `compare_rows`: every model on the same evaluation items and seeds, the
  summaries with bootstrap intervals and each model's gains over the base (paired intervals and
  the minimum detectable effect).
- `run_cells`: the resumable loop over cells: a cell whose `done.json` exists in the work
  folder is read back, not run again.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from teachable.evaluation import (
    EvalConfig,
    EvalSets,
    evaluate_policy,
    gains_vs_base,
    summarize_eval,
)
from teachable.executor import Executor, PolicySpec
from teachable.policy.base import Policy
from teachable.policy.lm import PromptRenderer
from teachable.prompting import Context
from teachable.training.sft import LoraRecipe, train_lora
from webshop_env.env import Shop

BASE = "base"  # the base student's name in evaluation rows
DONE_FILE = "done.json"
C = TypeVar("C")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Comparison:
    """Models compared with the base on the same items: per-episode `rows`, the per (model, set)
    `summary` and the per (model, set) `gains` over the base (see `teachable.evaluation`)."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    gains: list[dict[str, Any]]


def compare_rows(rows: Sequence[dict[str, Any]], config: EvalConfig, base: str = BASE) -> Comparison:
    """The summary and the gains over `base` of evaluation rows already measured."""
    summary = summarize_eval(rows, config)
    return Comparison(list(rows), summary, gains_vs_base(summary, base, rows=rows, config=config))


def compare_to_base(shop: Shop | None, models: Mapping[str, Policy | PolicySpec], sets: EvalSets, config: EvalConfig,
                    executor: Executor | None = None, *, measured: Sequence[dict[str, Any]] = (),
                    base: str = BASE) -> Comparison:
    """Evaluate every model of `models` on `sets` (the same items and seeds for each; on the
    executor's workers, or in this process) and compare them with `base`, which is one of
    `models` or was measured before (its rows in `measured`)."""
    rows = list(measured) + [row for name, spec in models.items()
                             for row in evaluate_policy(shop, spec, sets, config, name=name, executor=executor,
                                                        progress=True)]
    return compare_rows(rows, config, base)


def policy_spec(model: str, config: EvalConfig, *, device: str = "", adapter: str | None = None) -> PolicySpec:
    """An LM policy as the comparing phases play it: `config`'s temperature, policy batch and
    loading, on `device` (empty: cuda when available), with `adapter` on the base `model`."""
    return PolicySpec(model, config.temperature, adapter=adapter, device=device or None,
                      batch_size=config.policy_batch, **config.model_loading())


def teaching_examples(renderer: PromptRenderer, pairs: Iterable[tuple[Context, str]]) -> list[tuple[str, str]]:
    """(prompt, completion) texts of (context, action) pairs, as the renderer's model is prompted
    and scored (product aliases and all)."""
    return [(renderer.prompt(ctx), renderer.completion(ctx, action)) for ctx, action in pairs]


def train_adapter(base_model: str, examples: Sequence[tuple[str, str]], out_dir: Path, recipe: LoraRecipe, *,
                  seed: int, device: str | None = None, report_to: str = "none",
                  run_name: str | None = None) -> dict[str, Any]:
    """Train a LoRA adapter with `recipe` and `seed` on `examples` (see `teaching_examples`) into
    `out_dir`, with its provenance (`adapter_meta.json`); return `train_lora`'s metrics."""
    return train_lora(base_model, examples, out_dir, recipe.sft_settings(seed), report_to=report_to,
                      run_name=run_name, device=device)


def run_cells(cells: Sequence[C], work: Path, run_one: Callable[[C, Path], dict[str, Any]], *,
              name: Callable[[C], str] = str, keep: Callable[[dict[str, Any]], bool] = lambda entry: True,
              ) -> list[tuple[C, dict[str, Any], bool]]:
    """Run every cell not done in `work`: (cell, entry, reused) in the order of `cells`.

    A cell runs as `run_one(cell, folder)` in its own folder `work/<name(cell)>`; its entry (a
    JSON object) is kept in the folder's `done.json` when `keep(entry)` (e.g. when it finished),
    so a killed run started again reads the cells it had done and runs the others.
    """
    out = []
    for cell in cells:
        folder = work / name(cell)
        folder.mkdir(parents=True, exist_ok=True)
        entry, reused = cached_json(folder / DONE_FILE, functools.partial(run_one, cell, folder), keep)
        if reused:
            log.info("cell %s: reused from an earlier run of the same parameters", name(cell))
        out.append((cell, entry, reused))
    return out


def cached_json(path: Path, compute: Callable[[], Any], keep: Callable[[Any], bool] = lambda value: True,
                ) -> tuple[Any, bool]:
    """(the JSON value in `path`, True) when it exists, else (`compute()`, False), written to
    `path` when `keep(value)`; the file appears whole or not at all."""
    if path.is_file():
        return json.loads(path.read_text()), True
    value = compute()
    if keep(value):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(value, indent=2))
        partial.replace(path)
    return value, False


def best_per_quadrant(gains: Sequence[dict[str, Any]], cells: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, float]]:
    """{quadrant: (cell, failure-set success gain)} of the cell with the largest gain on the
    failure states in each quadrant (cells without a measured gain are left out; a tie goes to
    the first cell in name order)."""
    best: dict[str, tuple[str, float]] = {}
    for g in sorted(gains, key=lambda g: g["model"]):
        quadrant = cells.get(g["model"], {}).get("quadrant")
        gain = g["success_gain"]
        if g["set"] != "failures" or not quadrant or gain != gain:
            continue
        if quadrant not in best or gain > best[quadrant][1]:
            best[quadrant] = (g["model"], gain)
    return best
