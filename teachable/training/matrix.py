"""The training matrix: one LoRA adapter per (quadrant x format) cell, plus two baselines.

Cells are named `<quadrant>__<format>` (4 x 3 = 12) and:

- `B1_uniform`: snapshots drawn at random from the whole labeled set, formats mixed uniformly;
- `B2_all`: every labeled snapshot once, each in its routed format (DEMO when the route is none).

Every quadrant cell and B1 get the same example budget (`examples_per_cell`): a cell with fewer
snapshots than the budget samples with replacement and says so (`with_replacement` in its info);
B2 uses the whole set. Snapshots without teacher advice cannot be supervision and are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from teachable.label.quadrant import QUADRANTS
from teachable.records import LabeledSnapshot
from teachable.seeding import seeded_rng
from teachable.supervision.examples import routed_format
from teachable.supervision.formats import FORMATS

log = logging.getLogger(__name__)
BASELINES: tuple[str, ...] = ("B1_uniform", "B2_all")
CELLS: tuple[str, ...] = (*(f"{q}__{f}" for q in QUADRANTS for f in FORMATS), *BASELINES)


class EmptyCellError(ValueError):
    """A cell has no snapshot to train on."""


@dataclass
class MatrixConfig:
    """The cells of the training matrix (the `train_matrix` phase): 12 quadrant x format adapters
    and 2 baselines, each trained with one `LoraRecipe` (as select and recovery train theirs)."""

    cells: str = field(default="", metadata={"help": "comma-separated cells to train (empty: all 14), e.g. Q1_highU_highL__demo,B2_all"})
    examples_per_cell: int = field(default=32, metadata={"help": "example budget of each quadrant cell and of B1_uniform"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})
    seed: int = field(default=0, metadata={"help": "seed of the cell samples and the training"})

    def __post_init__(self) -> None:
        self.cell_list()
        if self.examples_per_cell < 1:
            raise ValueError(f"examples_per_cell must be >= 1, got {self.examples_per_cell}.")

    def cell_list(self) -> list[str]:
        """The cells to train, in matrix order.

        Raises:
            ValueError: an unknown cell name.
        """
        if not self.cells.strip():
            return list(CELLS)
        wanted = [c.strip() for c in self.cells.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in CELLS]
        if unknown:
            raise ValueError(f"unknown cells {unknown}; cells are {', '.join(CELLS)}.")
        return [c for c in CELLS if c in wanted]


def cell_parts(cell: str) -> tuple[str | None, str | None]:
    """(quadrant, format) of a cell; (None, None) for a baseline."""
    if cell in BASELINES:
        return None, None
    quadrant, fmt = cell.split("__")
    return quadrant, fmt


def empty_cell_message(records: Sequence[LabeledSnapshot], cell: str, quadrant: str | None) -> str:
    """Why a cell has nothing to train on, and what would change it."""
    where = f"quadrant {quadrant}" if quadrant else "the labeled set"
    levers = [r.leverage["L_local"]["value"] for r in records if "L_local" in r.leverage]
    if records and levers and all(v == 0 for v in levers):
        return (f"cell {cell}: no snapshot falls in {where} because every one of the {len(records)} labeled snapshots has "
                "L_local = 0 (forcing the teacher's action never changed the student's success): the student is out "
                "of its competence band, so labeling more of them will not help; train a student that succeeds "
                "sometimes (student phase: more epochs or a stronger base) and label again, or leave the cell out "
                "(cells=...).")
    if records and not any(r.teacher for r in records):
        return (f"cell {cell}: none of the {len(records)} labeled snapshots has teacher advice (the teacher failed on "
                "all of them); check the teacher (teacher=offline works without a network) and label again.")
    return (f"cell {cell}: no labeled snapshot with teacher advice in {where} (of {len(records)} labeled); label more "
            "snapshots (max_snapshots) or leave the cell out (cells=...).")


def cell_examples(records: Sequence[LabeledSnapshot], cell: str, budget: int,
                  seed: int) -> tuple[list[tuple[LabeledSnapshot, str]], dict[str, Any]]:
    """The (snapshot, format) examples of a cell and a description of how they were drawn.

    Raises:
        EmptyCellError: no usable snapshot for the cell.
    """
    usable = [r for r in records if r.teacher]
    quadrant, fmt = cell_parts(cell)
    pool = [r for r in usable if quadrant is None or r.quadrant == quadrant]
    if not pool:
        raise EmptyCellError(empty_cell_message(records, cell, quadrant))
    rng = seeded_rng(seed, CELLS.index(cell))
    if cell == "B2_all":
        return [(r, routed_format(r)) for r in pool], {
            "n_available": len(pool), "n_examples": len(pool), "with_replacement": False}
    replace = len(pool) < budget
    picked = rng.choice(len(pool), size=budget, replace=replace)
    formats = [FORMATS[i] for i in rng.integers(len(FORMATS), size=budget)] if fmt is None else [fmt] * budget
    if replace:
        log.warning("cell %s: %d snapshots for a budget of %d: sampled with replacement", cell, len(pool), budget)
    return [(pool[i], f) for i, f in zip(picked, formats, strict=True)], {
        "n_available": len(pool), "n_examples": budget, "with_replacement": replace}
