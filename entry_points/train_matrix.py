"""Phase `train_matrix`: a LoRA adapter per quadrant x format cell (12) and two baselines.

    mlflow run . -e train_matrix --env-manager local -P examples_per_cell=32
    python -m entry_points.train_matrix --cells Q1_highU_highL__demo,B2_all

One parent run; one nested run per cell (tags cell, quadrant, format, n_examples) with its loss
curve; each adapter is logged as an MLflow Model (a pyfunc that names its base, not a copy of
it; see `entry_points/lm_model.py`) and registered as a version of `teachable-adapter` tagged
with its cell. `training_summary.json` on the parent lists every cell. A crash midway: run again with
the same parameters and the finished cells are reused, only the rest are trained.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow

from entry_points.cli import parse_configs, run_cli
from entry_points.lm_registry import ADAPTER_MODEL, base_reference, log_adapter
from entry_points.runs import PHASE_TAG, TrackingArgs, log_metrics, start_phase
from entry_points.upstream import labeled_inputs
from entry_points.workfiles import model_identity, open_work
from teachable.names import TRAINING_SUMMARY
from teachable.policy.lm import PromptRenderer
from teachable.records import LabeledSnapshot
from teachable.supervision.examples import supervision_pair
from teachable.teach import run_cells, teaching_examples, train_adapter
from teachable.training.matrix import EmptyCellError, MatrixConfig, cell_examples, cell_parts
from teachable.training.sft import LoraRecipe

PHASE = "train_matrix"
log = logging.getLogger(__name__)


@dataclass
class MatrixArgs:
    """The labels and the base student the `train_matrix` phase reads."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest or a run id"})
    student: str = field(default="label", metadata={"help": "base model: label (the label run's student), latest, a run id, models:/..., or a folder"})


CONFIG = (MatrixArgs, MatrixConfig, LoraRecipe, TrackingArgs)


def train_cell(cell: str, records: list[LabeledSnapshot], renderer: PromptRenderer, base_model: str, base_ref: str,
               config: MatrixConfig, recipe: LoraRecipe, folder: Path) -> dict[str, Any]:
    """Train one cell in its own nested run; return its summary entry (`base_ref`: how its
    registered model names the base, see `lm_registry.base_reference`)."""
    quadrant, fmt = cell_parts(cell)
    tags = {"cell": cell, "quadrant": quadrant or "all", "format": fmt or ("mixed" if cell == "B1_uniform" else "routed"),
            PHASE_TAG: "train_matrix_cell"}
    with mlflow.start_run(run_name=cell, nested=True, tags=tags) as child:
        try:
            pairs, info = cell_examples(records, cell, config.examples_per_cell, config.seed)
        except EmptyCellError as e:
            mlflow.set_tag("error", str(e))
            mlflow.end_run(status="FAILED")
            log.error("%s", e)
            return {"status": "failed", "error": str(e), "run_id": child.info.run_id}
        mlflow.set_tags({"n_examples": str(info["n_examples"]), "with_replacement": str(info["with_replacement"])})
        examples = teaching_examples(renderer, (supervision_pair(r, f) for r, f in pairs))
        adapter = folder / "adapter"
        metrics = train_adapter(base_model, examples, adapter, recipe, seed=config.seed, report_to="mlflow",
                                run_name=cell, device=config.device or None)
        log_metrics({"final_train_loss": metrics["train_loss"], "n_examples": info["n_examples"],
                     "n_available": info["n_available"], "train_seconds": metrics["seconds"]})
        mlflow.log_artifacts(str(adapter), "adapter")
        version = log_adapter(adapter, base_ref, tags={**{k: v for k, v in tags.items() if k != PHASE_TAG},
                                                        "base_model": base_model})
        mlflow.set_tag("registered_model", f"models:/{ADAPTER_MODEL}/{version}")
    return {**info, "status": "finished", "run_id": child.info.run_id, "version": version,
            "train_loss": metrics["train_loss"], "quadrant": quadrant, "format": fmt}


def main(argv: Sequence[str] | None = None) -> None:
    configs = args, config, recipe, _ = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs), ExitStack() as stack:
        label_run_id, records, base_model = labeled_inputs(args.label_run, args.student)
        work = stack.enter_context(open_work(
            PHASE, configs, {"label": label_run_id, "student": model_identity(args.student, base_model)}, "cells"))
        renderer = PromptRenderer.from_pretrained(base_model)  # prompts as the model was trained
        base_ref = base_reference(base_model)
        done = run_cells(config.cell_list(), work,
                         lambda cell, folder: train_cell(cell, records, renderer, base_model, base_ref, config, recipe, folder),
                         keep=lambda entry: entry["status"] == "finished")
        cells = {cell: {**entry, "reused": True} if reused else entry for cell, entry, reused in done}
        summary: dict[str, Any] = {"base_model": base_model, "label_run": label_run_id, "cells": cells}
        finished = [c for c, e in cells.items() if e["status"] == "finished"]
        log_metrics({"n_cells_finished": len(finished), "n_cells_failed": len(cells) - len(finished)})
        mlflow.set_tag("base_model", base_model)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / TRAINING_SUMMARY
            path.write_text(json.dumps(summary, indent=2))
            mlflow.log_artifact(str(path))
        if not finished:
            raise EmptyCellError("no cell could be trained; see training_summary.json and label more snapshots.")


if __name__ == "__main__":
    run_cli(main)
