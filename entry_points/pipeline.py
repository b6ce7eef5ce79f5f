"""Phase `pipeline`: every phase in order, reusing the finished runs that already did the work.

    mlflow run . -e pipeline --env-manager local -P rollouts_n_goals=200 -P label_max_snapshots=48
    python -m entry_points.pipeline --phases student,rollouts,mine,label --overrides "label.n_min=4"

Order: student, rollouts, mine, label, micro_train, train_matrix, evaluate, train_predictor,
promote, select, recovery, report. Each phase is started with `mlflow.projects.run` in this
experiment and gets its upstream inputs as explicit run ids (never `latest`): those the pipeline
just produced or reused, or, for an upstream phase left out with `phases=`, the newest FINISHED
run of that phase. Before starting a phase the pipeline looks for a finished run whose phase,
parameters, code version and upstream runs match (`entry_points.reuse`) and reuses it, so a
second pipeline with the same parameters on the same code starts nothing.

Parameters: the sizes of the phases (`<phase>_<parameter>`; the defaults are the phases' own,
full sizes; `make demo` passes the demo's), `data_dir` and `seed` (given to every phase that
has them), `phases` (a comma list to run a subset, in pipeline order) and `overrides`
(`phase.parameter=value` pairs separated by `;`, for any other parameter of any phase; they win).
A selected phase whose entry point is not in this tree fails the pipeline before anything runs.

The pipeline run (tag teachable.phase=pipeline) records per phase the run id (tag
`pipeline.<phase>`), whether it was reused or ran (`pipeline.<phase>.status`, metric
`reused/<phase>`), its seconds, and `pipeline_summary.json`; the runs it starts are its children
in the MLflow UI.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from entry_points.cli import PhaseError, config_params, parse_configs, run_cli
from entry_points.reuse import PIPELINE_UPSTREAM_TAG, expected_params, find_reusable
from entry_points.runs import (
    PHASE_TAG,
    PROJECT_ROOT,
    TrackingArgs,
    code_version,
    log_metrics,
    start_phase,
    tracking_uri,
    ui_url,
)
from entry_points.upstream import RUN_ID_RE
from teachable.evaluation import EvalConfig
from teachable.label.labeling import LabelConfig
from teachable.mining import MiningConfig
from teachable.recovery import RecoveryConfig
from teachable.rollouts import RolloutsConfig
from teachable.selection import SelectConfig
from teachable.student import StudentConfig
from teachable.training.matrix import MatrixConfig
from teachable.training.micro import MicroConfig
from teachable.training.sft import LoraRecipe

PHASE = "pipeline"
log = logging.getLogger(__name__)

PHASES: tuple[str, ...] = ("student", "rollouts", "mine", "label", "micro_train", "train_matrix", "evaluate",
                           "train_predictor", "promote", "select", "recovery", "report")
# phase -> {parameter: upstream phase whose run id it gets}
UPSTREAM_PARAMS: dict[str, dict[str, str]] = {
    "rollouts": {"student": "student"},
    "mine": {"rollouts_run": "rollouts"},
    "label": {"mine_run": "mine", "student": "student"},
    "micro_train": {"label_run": "label"},
    "train_matrix": {"label_run": "label"},
    "evaluate": {"matrix_run": "train_matrix"},
    "train_predictor": {"label_run": "label"},
    "select": {"label_run": "label"},
    "recovery": {"label_run": "label"},
    "report": {f"{p}_run": p for p in ("label", "train_matrix", "evaluate", "train_predictor", "select", "recovery")},
}
# inputs that are not parameters: promote moves @champion to train_predictor's model, select loads @champion
UPSTREAM_AFTER: dict[str, tuple[str, ...]] = {"promote": ("train_predictor",), "select": ("promote",)}
OPTIONAL_UPSTREAM = {"report"}  # a missing input is passed as `none` and left out of the report
# pipeline parameter -> the (phase, parameter) pairs it sets; an empty string leaves the phase's default
SIZES: dict[str, tuple[tuple[str, str], ...]] = {
    "student_n_train_goals": (("student", "n_train_goals"),),
    "student_epochs": (("student", "epochs"),),
    "rollouts_n_goals": (("rollouts", "n_goals"),),
    "mine_offsets": (("mine", "offsets"),),
    "mine_include_search_steps": (("mine", "include_search_steps"),),
    "label_max_snapshots": (("label", "max_snapshots"),),
    "label_n_max": (("label", "n_max"),),
    "micro_per_quadrant": (("micro_train", "per_quadrant"),),
    "micro_n_rollouts": (("micro_train", "n_rollouts"),),
    "matrix_examples_per_cell": (("train_matrix", "examples_per_cell"),),
    "matrix_epochs": (("train_matrix", "epochs"), ("recovery", "epochs"), ("select", "epochs")),
    "eval_heldout_goals": (("evaluate", "heldout_goals"), ("recovery", "heldout_goals"), ("select", "heldout_goals")),
    "eval_failure_snapshots": (("evaluate", "failure_snapshots"), ("recovery", "failure_snapshots"), ("select", "failure_snapshots")),
    "eval_retention_goals": (("evaluate", "retention_goals"), ("recovery", "retention_goals"), ("select", "retention_goals")),
    "eval_episodes_per_item": (("evaluate", "episodes_per_item"), ("recovery", "episodes_per_item"), ("select", "episodes_per_item")),
    "select_budgets": (("select", "budgets"),),
    "select_random_seeds": (("select", "random_seeds"),),
    "recovery_min_l_upper": (("recovery", "min_l_upper"),),
    "recovery_max_snapshots": (("recovery", "max_snapshots"),),
}
# given to every phase that has the parameter
GLOBAL_PARAMS = ("data_dir", "seed", "policy_batch", "dtype", "device_map", "attn_implementation", "system_metrics")
GATED_PHASE = "label"  # the competence gate stands before it: labels of a student out of band measure nothing
DEGENERATE_TAG = "teachable.allow_degenerate"


class PipelineError(PhaseError):
    """The pipeline cannot run as asked; the message says what to change."""


@dataclass
class PipelineConfig:
    """The `pipeline` phase: sizes of every phase, the phases to run, and free overrides."""

    data_dir: str = field(default="", metadata={"help": "folder with WebShop's files for every phase; empty: the embedded generated catalogue"})
    seed: int = field(default=0, metadata={"help": "seed given to every phase that has one"})
    policy_batch: int = field(default=0, metadata={"help": "contexts an LM policy scores per forward pass, in every phase that rolls out (0: its default, 16; on a GPU raise it, e.g. 128)"})
    dtype: str = field(default="auto", metadata={"help": "weights of an LM student in every phase: auto (float32 on CPU, bfloat16 on CUDA), bfloat16, float16, float32"})
    device_map: str = field(default="auto", metadata={"help": "placement of an LM student on CUDA in every phase: auto, none, or a device"})
    attn_implementation: str = field(default="", metadata={"help": "attention of an LM student in every phase: sdpa, eager, flash_attention_2; empty: the library's default"})
    allow_degenerate: bool = field(default=False, metadata={"help": "go on past the competence gate (a student outside its success band, or rollouts without failures or successes); recorded as a tag and shown on the report"})
    phases: str = field(default="", metadata={"help": f"comma-separated phases to run, in pipeline order (empty: all of {', '.join(PHASES)})"})
    overrides: str = field(default="", metadata={"help": "other phase parameters: phase.parameter=value pairs separated by ';' (they win over the sizes)"})
    student_n_train_goals: int = field(default=StudentConfig.n_train_goals, metadata={"help": "student: train goals played by the expert"})
    student_epochs: float = field(default=StudentConfig.epochs, metadata={"help": "student: behaviour-cloning epochs"})
    rollouts_n_goals: int = field(default=RolloutsConfig.n_goals, metadata={"help": "rollouts: train goals the student plays"})
    mine_offsets: str = field(default=MiningConfig.offsets, metadata={"help": "mine: steps before the end to snapshot (empty: every step)"})
    mine_include_search_steps: bool = field(default=MiningConfig.include_search_steps, metadata={"help": "mine: keep snapshots on search pages"})
    label_max_snapshots: int = field(default=LabelConfig.max_snapshots, metadata={"help": "label: snapshots labeled"})
    label_n_max: int = field(default=LabelConfig.n_max, metadata={"help": "label: most rollouts per condition"})
    micro_per_quadrant: int = field(default=MicroConfig.per_quadrant, metadata={"help": "micro_train: snapshots per quadrant"})
    micro_n_rollouts: int = field(default=MicroConfig.n_rollouts, metadata={"help": "micro_train: rollouts before and after"})
    matrix_examples_per_cell: int = field(default=MatrixConfig.examples_per_cell, metadata={"help": "train_matrix: examples per cell"})
    matrix_epochs: float = field(default=LoraRecipe.epochs, metadata={"help": "train_matrix, recovery and select: SFT epochs"})
    eval_heldout_goals: int = field(default=EvalConfig.heldout_goals, metadata={"help": "evaluate, recovery and select: held-out goals"})
    eval_failure_snapshots: int = field(default=EvalConfig.failure_snapshots, metadata={"help": "evaluate, recovery and select: failure states"})
    eval_retention_goals: int = field(default=EvalConfig.retention_goals, metadata={"help": "evaluate, recovery and select: retention goals"})
    eval_episodes_per_item: int = field(default=EvalConfig.episodes_per_item, metadata={"help": "evaluate, recovery and select: episodes per item"})
    select_budgets: str = field(default=SelectConfig.budgets, metadata={"help": "select: comma-separated budgets K"})
    select_random_seeds: int = field(default=SelectConfig.random_seeds, metadata={"help": "select: draws of the random method per K"})
    recovery_min_l_upper: float = field(default=RecoveryConfig.min_l_upper, metadata={"help": "recovery: least L_upper of a continued snapshot"})
    recovery_max_snapshots: int = field(default=RecoveryConfig.max_snapshots, metadata={"help": "recovery: most snapshots continued (0: all)"})

    def __post_init__(self) -> None:
        self.phase_list()
        self.override_map()

    def phase_list(self) -> list[str]:
        """The phases to run, in pipeline order.

        Raises:
            ValueError: an unknown phase name.
        """
        wanted = [p.strip() for p in self.phases.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in PHASES]
        if unknown:
            raise ValueError(f"phases: unknown {unknown}; the phases are {', '.join(PHASES)}.")
        return [p for p in PHASES if p in wanted] if wanted else list(PHASES)

    def override_map(self) -> dict[str, dict[str, str]]:
        """`overrides` as {phase: {parameter: value}}.

        Raises:
            ValueError: a pair that is not `phase.parameter=value`, or an unknown phase.
        """
        out: dict[str, dict[str, str]] = {}
        for pair in (p.strip() for p in self.overrides.split(";") if p.strip()):
            key, sep, value = pair.partition("=")
            phase, dot, param = key.strip().partition(".")
            if not sep or not dot or not param:
                raise ValueError(f"overrides: {pair!r} is not phase.parameter=value (e.g. label.n_min=4).")
            if phase not in PHASES:
                raise ValueError(f"overrides: {pair!r} names an unknown phase; the phases are {', '.join(PHASES)}.")
            out.setdefault(phase, {})[param.strip()] = value.strip()
        return out


CONFIG = (PipelineConfig, TrackingArgs)


def project_parameters(root: Path = PROJECT_ROOT) -> dict[str, set[str]]:
    """The parameters of each entry point of the MLproject at `root`."""
    spec = yaml.safe_load((root / "MLproject").read_text())["entry_points"]
    return {name: set((entry or {}).get("parameters", {})) for name, entry in spec.items()}


def missing_entry_points(phases: Sequence[str], root: Path = PROJECT_ROOT) -> list[str]:
    """The phases without an `entry_points/<phase>.py` module or an MLproject block at `root`."""
    declared = project_parameters(root)
    return [p for p in phases if p not in declared or not (root / "entry_points" / f"{p}.py").is_file()]


def phase_params(config: PipelineConfig, phase: str, known: set[str], inputs: dict[str, str],
                 tracking: TrackingArgs | None = None) -> dict[str, str]:
    """The parameters a phase is started with: global ones (with the pipeline's `tracking`),
    sizes, upstream run ids, then overrides.

    Raises:
        PipelineError: an override names a parameter the phase does not have.
    """
    texts = config_params((config, tracking or TrackingArgs()))
    params = {name: texts[name] for name in GLOBAL_PARAMS if name in known}
    for name, targets in SIZES.items():
        for target_phase, param in targets:
            if target_phase == phase and param in known and texts[name] != "":
                params[param] = texts[name]
    params.update(inputs)
    overrides = config.override_map().get(phase, {})
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PipelineError(f"overrides: phase {phase} has no parameters {unknown}; its parameters are "
                            f"{', '.join(sorted(known))}.")
    params.update(overrides)
    return params


def latest_run(experiment_id: str, phase: str) -> str | None:
    """The newest FINISHED run of `phase` in the experiment, if any."""
    runs = MlflowClient().search_runs([experiment_id], filter_string=(f"tags.`{PHASE_TAG}` = '{phase}' and "
                                                                      "attributes.status = 'FINISHED'"),
                                      order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def resolve_inputs(phase: str, done: dict[str, str], overridden: set[str], experiment_id: str
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """(upstream parameters, {upstream phase: run id}) of a phase.

    An upstream phase run in this pipeline gives its run; one left out gives its newest FINISHED
    run. An input given in `overrides` is the user's.

    Raises:
        PipelineError: a required upstream phase has no run.
    """
    params: dict[str, str] = {}
    upstream: dict[str, str] = {}
    for param, up in UPSTREAM_PARAMS.get(phase, {}).items():
        if param in overridden:
            continue
        run_id = done.get(up) or latest_run(experiment_id, up)
        if run_id is None and phase not in OPTIONAL_UPSTREAM:
            raise PipelineError(f"phase {phase} needs a {up} run ({param}): add {up} to phases, run it first, or "
                                f"give overrides={phase}.{param}=<run id>.")
        params[param] = run_id or "none"
        if run_id:
            upstream[up] = run_id
    for up in UPSTREAM_AFTER.get(phase, ()):
        if run_id := done.get(up) or latest_run(experiment_id, up):
            upstream[up] = run_id
    return params, upstream


def launch(phase: str, params: dict[str, str], upstream: dict[str, str], experiment_id: str, parent_id: str) -> str:
    """Start the phase with `mlflow.projects.run`, wait for it, and link it to the pipeline run."""
    try:
        submitted = mlflow.projects.run(str(PROJECT_ROOT), entry_point=phase, parameters=params, env_manager="local",
                                        experiment_id=experiment_id, synchronous=True)
    except MlflowException as e:  # ExecutionException (the run failed) is one
        raise PipelineError(f"phase {phase} failed ({e}); fix it and run the pipeline again: the phases that "
                            "finished are reused.") from e
    client = MlflowClient()
    client.set_tag(submitted.run_id, PIPELINE_UPSTREAM_TAG, json.dumps(upstream, sort_keys=True))
    client.set_tag(submitted.run_id, "mlflow.parentRunId", parent_id)  # nested under the pipeline in the UI
    return submitted.run_id


def competence_gate(upstream: dict[str, str], allow_degenerate: bool) -> None:
    """Stop before labeling when the student cannot be studied: its held-out success (student
    run) is outside its band, or its rollouts have no failures or no successes.

    Raises:
        PipelineError: the measured rates and what to do, unless `allow_degenerate`.
    """
    from entry_points.rollouts import COMPETENCE_TAG as ROLLOUTS_TAG
    from entry_points.student import COMPETENCE_TAG

    client = MlflowClient()
    problems = []
    student = upstream.get("student")
    if student and RUN_ID_RE.match(student):
        tags = client.get_run(student).data.tags
        detail = json.loads(tags.get("teachable.competence.detail", "{}") or "{}")
        if tags.get(COMPETENCE_TAG, "in_band") not in ("in_band", "unmeasured"):
            problems.append(f"the student (run {student}) solved {detail.get('rate', 0):.1%} of {detail.get('n_goals')} "
                            f"held-out goals, outside the band [{detail.get('min_success')}, {detail.get('max_success')}] "
                            f"where teachable moments can be measured: {detail.get('advice')}")
    rollouts = upstream.get("mine") and client.get_run(upstream["mine"]).data.tags.get("upstream.rollouts")
    if rollouts:
        run = client.get_run(rollouts)
        status = run.data.tags.get(ROLLOUTS_TAG, "in_band")
        if status != "in_band":
            rate = run.data.metrics.get("success_rate", float("nan"))
            problems.append(f"its rollouts (run {rollouts}) succeeded on {rate:.1%} of their episodes ({status.replace('_', ' ')}): "
                            "labels need both failures (to snapshot) and successes (to measure leverage); play more goals "
                            "(rollouts_n_goals) or train the student differently")
    if not problems:
        return
    if allow_degenerate:
        log.warning("pipeline: going on past the competence gate (allow_degenerate=true): %s", "; ".join(problems))
        mlflow.set_tag("teachable.degenerate", "; ".join(problems)[:5000])
        return
    raise PipelineError("; ".join(problems) + ". Or pass allow_degenerate=true to label it anyway (recorded and shown "
                        "on the report).")


def main(argv: Sequence[str] | None = None) -> None:
    configs = config, tracking = parse_configs(CONFIG, argv, __doc__)
    with start_phase(PHASE, configs) as run:
        plan = config.phase_list()
        missing = missing_entry_points(plan)
        if missing:
            raise PipelineError(f"phases {missing} have no entry point in this tree (entry_points/<phase>.py and an "
                                "MLproject block); add them, or leave them out with phases=<the others>.")
        experiment_id, parent_id = run.info.experiment_id, run.info.run_id
        declared = project_parameters()
        version = code_version()
        done: dict[str, str] = {}
        summary = []
        mlflow.set_tag(DEGENERATE_TAG, str(config.allow_degenerate).lower())
        for phase in plan:
            start = time.perf_counter()
            overridden = set(config.override_map().get(phase, {}))
            inputs, upstream = resolve_inputs(phase, done, overridden, experiment_id)
            params = phase_params(config, phase, declared[phase], inputs, tracking)
            if phase == GATED_PHASE:
                competence_gate(upstream, config.allow_degenerate)
            found = find_reusable([experiment_id], phase, expected_params(phase, params), upstream, version)
            if found is not None:
                status, run_id = "reused", found.info.run_id
                log.info("pipeline: %s reuses run %s", phase, run_id)
            else:
                status = "ran"
                log.info("pipeline: %s starts with %s", phase, params)
                run_id = launch(phase, params, upstream, experiment_id, parent_id)
            done[phase] = run_id
            seconds = time.perf_counter() - start
            mlflow.set_tags({f"pipeline.{phase}": run_id, f"pipeline.{phase}.status": status})
            log_metrics({f"reused/{phase}": int(status == "reused"), f"seconds/{phase}": seconds})
            summary.append({"phase": phase, "status": status, "run_id": run_id, "seconds": round(seconds, 1),
                            "params": params, "upstream": upstream})
        log_metrics({"n_reused": sum(s["status"] == "reused" for s in summary),
                     "n_ran": sum(s["status"] == "ran" for s in summary)})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pipeline_summary.json"
            path.write_text(json.dumps(summary, indent=2))
            mlflow.log_artifact(str(path))
        log.info("pipeline: its runs in the MLflow UI: %s (with `mlflow ui --backend-store-uri %s` when the store "
                 "is a file)", ui_url(experiment_id), tracking_uri())


if __name__ == "__main__":
    run_cli(main)
