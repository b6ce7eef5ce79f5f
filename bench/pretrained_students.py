"""A pretrained student through the pipeline's first phases, as it is and LoRA-cloned.

    python bench/pretrained_students.py --base smollm2 --clone-steps 60 --eval-goals 16

For each variant (the base used as it is, `epochs=0`; and a LoRA clone with `--clone-steps`
optimiser steps) it runs, as separate commands on a private MLflow store: `student` (held-out
success on dev goals, sampled at temperature 1 and greedy), `rollouts` on `--goals` train goals,
`mine`, and `label` on `--snapshots` snapshots. It prints one table of the phases' seconds,
the held-out rates with 95% Wilson intervals, and the searches the variant played: how many,
how many were rewritten or replaced after an empty or placeholder query, and how many
placeholder or empty ones reached the env (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_phase(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def variant(name: str, student_args: list[str], opts: argparse.Namespace, env: dict[str, str]) -> dict:
    from mlflow.tracking import MlflowClient

    from teachable.policy.lm import is_placeholder
    from teachable.records import Trajectory, read_jsonl
    from teachable.stats import wilson_interval

    data = ["--data_dir", opts.data_dir] if opts.data_dir else []
    common = ["--max_steps", str(opts.max_steps)]
    row = {"variant": name}
    row["student_s"] = run_phase(["entry_points.student", *data, "--base_model", opts.base, *student_args,
                                  "--eval_goals", str(opts.eval_goals), "--n_train_goals", str(opts.train_goals),
                                  "--max_observation_chars", str(opts.max_observation_chars), "--device", "cpu",
                                  *common], env)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("teachable").experiment_id],
                              "tags.`teachable.phase` = 'student'", order_by=["attributes.start_time DESC"])
    student = runs[0]
    n = int(student.data.metrics.get("n_eval_goals", opts.eval_goals))
    for key in ("heldout_success_rate", "heldout_greedy_success_rate"):
        k = round(student.data.metrics[key] * n)
        row[key] = (student.data.metrics[key], *wilson_interval(k, n))
    row["rollouts_s"] = run_phase(["entry_points.rollouts", *data, "--student", student.info.run_id,
                                   "--n_goals", str(opts.goals), *common], env)
    rollouts = client.search_runs([student.info.experiment_id], "tags.`teachable.phase` = 'rollouts'",
                                  order_by=["attributes.start_time DESC"])[0]
    path = Path(client.download_artifacts(rollouts.info.run_id, "rollouts.jsonl", tempfile.mkdtemp()))
    searches = [s.action for t in read_jsonl(path, Trajectory) for s in t.steps if s.action.startswith("search[")]
    row["searches"] = len(searches)
    row["bad_searches_played"] = sum(is_placeholder(a[len("search["):-1]) for a in searches)
    row["queries_rewritten"] = int(rollouts.data.metrics.get("queries.rewritten", 0))
    row["queries_replaced"] = int(rollouts.data.metrics.get("queries.fallback", 0))
    row["rollouts_success"] = rollouts.data.metrics.get("success_rate", float("nan"))
    row["mine_s"] = run_phase(["entry_points.mine", "--rollouts_run", rollouts.info.run_id], env)
    row["label_s"] = run_phase(["entry_points.label", *data, "--student", student.info.run_id, "--max_snapshots",
                                str(opts.snapshots), "--n_min", "2", "--n_max", "2", *common], env)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="smollm2", help="smollm2, a local HF folder or a cached hub id")
    parser.add_argument("--data-dir", dest="data_dir", default="", help="catalogue (empty: the embedded one)")
    parser.add_argument("--clone-steps", type=int, default=60, help="LoRA steps of the cloned variant")
    parser.add_argument("--eval-goals", type=int, default=16, help="held-out dev goals the student phase measures")
    parser.add_argument("--train-goals", type=int, default=100, help="train goals the expert demonstrates for cloning")
    parser.add_argument("--goals", type=int, default=8, help="train goals of the rollouts phase")
    parser.add_argument("--snapshots", type=int, default=2, help="snapshots the label phase labels")
    parser.add_argument("--max-steps", type=int, default=10, help="actions per episode")
    parser.add_argument("--max-observation-chars", type=int, default=700, help="observation characters in the prompt")
    parser.add_argument("--store", default="", help="folder of the MLflow store (default: a new temporary one)")
    opts = parser.parse_args()
    store = Path(opts.store or tempfile.mkdtemp(prefix="pretrained-bench-"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
           "MLFLOW_EXPERIMENT_NAME": "teachable"}
    rows = [variant("as is (epochs=0)", ["--epochs", "0"], opts, env),
            variant(f"LoRA clone ({opts.clone_steps} steps)", ["--train_steps", str(opts.clone_steps),
                                                               "--train_batch_size", "4", "--search_goals", "200"], opts, env)]
    print(f"\n{opts.base}: {opts.eval_goals} dev goals, rollouts on {opts.goals} train goals, label on "
          f"{opts.snapshots} snapshots (store {store})\n")
    print("| variant | dev success, sampled | dev success, greedy | rollouts success | searches (rewritten / "
          "replaced / bad played) | student s | rollouts s | mine s | label s |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        fmt = "{:.2f} [{:.2f}, {:.2f}]"
        print(f"| {r['variant']} | {fmt.format(*r['heldout_success_rate'])} | "
              f"{fmt.format(*r['heldout_greedy_success_rate'])} | {r['rollouts_success']:.2f} | {r['searches']} "
              f"({r['queries_rewritten']} / {r['queries_replaced']} / {r['bad_searches_played']}) | "
              f"{r['student_s']:.0f} | {r['rollouts_s']:.0f} | {r['mine_s']:.0f} | {r['label_s']:.0f} |")
    (store / "pretrained_students.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
