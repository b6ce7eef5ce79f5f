"""The names phases meet by: the artifacts one phase logs and another reads, and the registered
models. One place, so a renamed file cannot leave a reader behind."""

from __future__ import annotations

# artifacts, at the root of the run that logs them
ROLLOUTS = "rollouts.jsonl"  # rollouts: every episode (teachable.records.Trajectory)
FAILURE_SNAPSHOTS = "failure_snapshots.jsonl"  # mine
LABELED_SNAPSHOTS = "labeled_snapshots.jsonl"  # label
LABEL_SUMMARY = "label_summary.json"  # label: counts and thresholds
TRAINING_SUMMARY = "training_summary.json"  # train_matrix: every cell, its adapter version and run
EVAL_SUMMARY = "eval_summary.csv"  # evaluate, recovery, select: one row per (model, set)
RECOVERY_TRAJECTORIES = "recovery_trajectories.jsonl"  # recovery
PREDICTOR_METRICS = "predictor_metrics.csv"  # train_predictor
RANKING_CURVES = "ranking_curves.csv"  # train_predictor
PREDICTOR_SPLIT = "split.json"  # train_predictor: the snapshot ids on each side
SELECTION_SUMMARY = "selection_summary.csv"  # select
SELECTION_COMPARISONS = "selection_comparisons.csv"  # select

# registered models
STUDENT_MODEL = "teachable-student"
ADAPTER_MODEL = "teachable-adapter"
PREDICTOR_MODEL = "teachable-predictor"
