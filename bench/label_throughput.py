"""Labeling benchmark: snapshots labeled per minute and branch rollouts per second, batched (many
snapshots' branches in lockstep) vs one snapshot at a time (its own branches batched) vs one
snapshot and one rollout at a time, and the rollouts adaptive sampling spends vs a fixed n
giving the same interval width. Prints a Markdown table.

    python bench/label_throughput.py                         # untrained tiny student, 16 snapshots
    python bench/label_throughput.py --student PATH --snapshots 32
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from teachable.label.labeling import LabelConfig, label_snapshots
from teachable.label.stats import fixed_n_for_halfwidth
from teachable.mining import mine_failures
from teachable.models import build_tiny_llama, train_bpe_tokenizer
from teachable.policy.base import RandomPolicy
from teachable.policy.expert import ExpertPolicy
from teachable.policy.lm import LMPolicy
from teachable.policy.teacher.offline import OfflineTeacher
from teachable.rollouts import goal_specs, run_episodes, sample_goals
from webshop_env.env import Shop


def student_policy(shop: Shop, path: str | None) -> tuple[str, LMPolicy]:
    if path:
        return f"student {Path(path).name}", LMPolicy.from_pretrained(path)
    texts = [p["Title"] for p in shop.catalog.products] + [g["instruction_text"] for g in shop.goals]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=2048)
    return "tiny Llama (untrained)", LMPolicy(build_tiny_llama(tokenizer), tokenizer, max_observation_chars=1000)


def failure_snapshots(shop: Shop, n: int, seed: int):
    trajs = run_episodes(shop, RandomPolicy(), goal_specs(sample_goals(shop, "train", 4 * n, seed), seed=seed))
    snaps, _ = mine_failures(trajs, offsets=(1, 2, 3), include_search_steps=False)
    rng = np.random.default_rng(seed)
    return [snaps[i] for i in sorted(rng.choice(len(snaps), size=min(n, len(snaps)), replace=False))]


def run(student, snaps, config: LabelConfig) -> dict[str, float]:
    # a fresh shop per mode: its search-result and reward caches start cold, as in a labeling run
    shop = Shop.load()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        records, progress = label_snapshots(snaps, shop=shop, student=student, expert=ExpertPolicy(shop),
                                            teacher=OfflineTeacher(shop), config=config,
                                            work_file=Path(tmp) / "w.jsonl", show_progress=False)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "snapshots_per_min": 60 * len(records) / seconds,
            "rollouts_per_s": progress.branch.episodes / seconds, "episodes": progress.branch.episodes,
            "records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=16, help="snapshots to label")
    parser.add_argument("--student", default=None, help="a student model folder (default: an untrained tiny Llama)")
    parser.add_argument("--n-min", type=int, default=8)
    parser.add_argument("--n-max", type=int, default=24)
    parser.add_argument("--ci-halfwidth", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shop = Shop.load()
    name, student = student_policy(shop, args.student)
    snaps = failure_snapshots(shop, args.snapshots, args.seed)
    base = dict(n_min=args.n_min, n_max=args.n_max, ci_halfwidth=args.ci_halfwidth, seed=args.seed)
    run(student, snaps[:1], LabelConfig(snapshot_batch=1, **base))  # warm-up: first-call costs of torch
    batched = run(student, snaps, LabelConfig(snapshot_batch=len(snaps), **base))
    n_single = len(snaps)  # the same snapshots, one at a time
    single = run(student, snaps, LabelConfig(snapshot_batch=1, **base))
    # as research code does it: one snapshot, one rollout at a time (a forward pass per branch step)
    serial = run(student, snaps[:2], LabelConfig(snapshot_batch=1, branch_batch=1, **base))
    # a fixed n reaching the adaptive target half-width at the worst case (p = 0.5) for every condition
    fixed_n = fixed_n_for_halfwidth(0.5, args.ci_halfwidth)
    student_conditions = [c for r in batched["records"] for k, c in r.conditions.items() if k != "expert"]
    adaptive_spent = sum(c["n"] for c in student_conditions)
    fixed_spent = fixed_n * len(student_conditions)
    print(f"\nmachine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; student: {name}\n")
    print("| mode | snapshots | seconds | snapshots/min | branch rollouts/s | episodes |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, r, n in (("batched (all snapshots together)", batched, len(snaps)),
                       ("one snapshot at a time (its branches batched)", single, n_single),
                       ("one snapshot and one rollout at a time", serial, 2)):
        print(f"| {mode} | {n} | {r['seconds']:.1f} | {r['snapshots_per_min']:.1f} | {r['rollouts_per_s']:.1f} | "
              f"{r['episodes']} |")
    print(f"\nadaptive sampling (n_min={args.n_min}, n_max={args.n_max}, half-width {args.ci_halfwidth}): "
          f"{adaptive_spent} student rollouts over {len(student_conditions)} conditions; a fixed n={fixed_n} "
          f"(the n that reaches that half-width at p=0.5) would spend {fixed_spent} "
          f"({1 - adaptive_spent / fixed_spent:.0%} saved).")


if __name__ == "__main__":
    main()
