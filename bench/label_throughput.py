"""Labeling benchmark: snapshots labeled per minute and branch rollouts per second, batched (many
snapshots' branches in lockstep) vs one snapshot at a time (its own branches batched), with and
without score reuse (a context the student has scored in the batch is not scored again), vs one
snapshot and one rollout at a time, and the rollouts adaptive sampling spends vs a fixed n
giving the same interval width. Prints a Markdown table.

With `--executor ray`, snapshots per minute by number of Ray actors instead (`--workers 1,2`; a
local cluster with as many CPUs as the most workers asked for, or `--ray-address auto`), beside
the in-process executor on the same snapshots; actor start-up (loading the catalogue and the
model) is timed apart from labeling.

    python bench/label_throughput.py                         # untrained tiny student, 16 snapshots
    python bench/label_throughput.py --student PATH --snapshots 32
    python bench/label_throughput.py --executor ray --workers 1,2
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

from teachable.executor import PolicySpec, RayExecutor, ShopSpec
from teachable.label.labeling import LabelConfig, LabelSetup, label_snapshots
from teachable.mining import mine_failures
from teachable.models import build_tiny_llama, train_bpe_tokenizer
from teachable.policy.base import RandomPolicy
from teachable.policy.expert import ExpertPolicy
from teachable.policy.lm import LMPolicy
from teachable.policy.teacher.offline import OfflineTeacher
from teachable.rollouts import goal_specs, run_episodes, sample_goals
from teachable.stats import fixed_n_for_halfwidth
from webshop_env.env import Shop


def student_policy(shop: Shop, path: str | None, batch_size: int = 16,
                   max_padding: float | None = None) -> tuple[str, LMPolicy]:
    if path:
        return f"student {Path(path).name}", LMPolicy.from_pretrained(path, batch_size=batch_size,
                                                                      max_padding=max_padding)
    texts = [p["Title"] for p in shop.catalog.products] + [g["instruction_text"] for g in shop.goals]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=2048)
    return "tiny Llama (untrained)", LMPolicy(build_tiny_llama(tokenizer), tokenizer, max_observation_chars=1000,
                                              batch_size=batch_size, max_padding=max_padding)


def failure_snapshots(shop: Shop, n: int, seed: int):
    trajs = run_episodes(shop, RandomPolicy(), goal_specs(sample_goals(shop, "train", 4 * n, seed), seed=seed))
    snaps, _ = mine_failures(trajs, offsets=(1, 2, 3), include_search_steps=False)
    rng = np.random.default_rng(seed)
    return [snaps[i] for i in sorted(rng.choice(len(snaps), size=min(n, len(snaps)), replace=False))]


def run(student, snaps, config: LabelConfig, executor=None) -> dict[str, float]:
    # a fresh shop per mode: its search-result and reward caches start cold, as in a labeling run
    shop = None if executor else Shop.load()
    world = {} if executor else dict(shop=shop, student=student, expert=ExpertPolicy(shop), teacher=OfflineTeacher(shop))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        records, progress = label_snapshots(snaps, config=config, work_file=Path(tmp) / "w.jsonl", executor=executor,
                                            show_progress=False, **world)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "snapshots_per_min": 60 * len(records) / seconds,
            "rollouts_per_s": progress.branch.episodes / seconds, "episodes": progress.branch.episodes,
            "records": records}


def by_workers(shop: Shop, student: LMPolicy, snaps, config: LabelConfig, workers: list[int], address: str) -> None:
    """Snapshots per minute on 1, 2, ... Ray actors, and in this process, on the same snapshots."""
    import ray

    if not address:
        ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        student.save_pretrained(tmp)  # actors build the student from its folder; so does this process
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as each actor (one CPU, one thread): the same arithmetic, so the same labels
        local = run(PolicySpec(tmp, batch_size=student.batch_size).build(shop), snaps, config)
        torch.set_num_threads(threads)
        rows = [("local (in-process, 1 thread)", 0.0, local)]
        setup = LabelSetup(shop=ShopSpec.of(None), student=PolicySpec(tmp, batch_size=student.batch_size), config=config)
        for n in workers:
            start = time.perf_counter()
            with RayExecutor(setup, address=address, workers=n) as executor:
                ray.get([a.ready.remote() for a in executor._actors])
                started = time.perf_counter() - start
                rows.append((f"ray, {n} actor{'s' if n > 1 else ''}", started, run(None, snaps, config, executor)))
    ray.shutdown()
    print("| executor | snapshots | actor start (s) | labeling (s) | snapshots/min | branch rollouts/s | vs 1 actor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    one = rows[1][2]["snapshots_per_min"] if len(rows) > 1 else float("nan")
    for name, started, r in rows:
        print(f"| {name} | {len(snaps)} | {started:.1f} | {r['seconds']:.1f} | {r['snapshots_per_min']:.1f} | "
              f"{r['rollouts_per_s']:.1f} | {r['snapshots_per_min'] / one:.2f}x |")
    same = {name: [x.to_dict() for x in r["records"]] == [x.to_dict() for x in local["records"]]
            for name, _, r in rows[1:]}
    print(f"\nlabels identical to the in-process run's: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=16, help="snapshots to label")
    parser.add_argument("--student", default=None, help="a student model folder (default: an untrained tiny Llama)")
    parser.add_argument("--n-min", type=int, default=8)
    parser.add_argument("--n-max", type=int, default=24)
    parser.add_argument("--ci-halfwidth", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy-batch", type=int, default=16,
                        help="contexts per forward pass of the student (LMPolicy batch_size; larger suits a GPU)")
    parser.add_argument("--max-padding", type=float, default=None,
                        help="LMPolicy max_padding (default: 0.25 on a CPU, no limit on a GPU)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local: batched vs one-at-a-time modes in this process; ray: snapshots/min by actors")
    parser.add_argument("--workers", default="1,2", help="--executor ray: comma-separated numbers of actors")
    parser.add_argument("--snapshot-batch", type=int, default=4, help="--executor ray: snapshots per batch")
    parser.add_argument("--ray-address", default="", help="--executor ray: a running cluster (auto) or empty: local")
    args = parser.parse_args()
    shop = Shop.load()
    name, student = student_policy(shop, args.student, args.policy_batch, args.max_padding)
    snaps = failure_snapshots(shop, args.snapshots, args.seed)
    base = dict(n_min=args.n_min, n_max=args.n_max, ci_halfwidth=args.ci_halfwidth, seed=args.seed)
    print(f"\nmachine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; student: {name}, {args.policy_batch} contexts per forward pass\n")
    if args.executor == "ray":
        workers = [int(w) for w in args.workers.split(",")]
        by_workers(shop, student, snaps, LabelConfig(snapshot_batch=args.snapshot_batch, **base), workers,
                   args.ray_address)
        return
    run(student, snaps[:1], LabelConfig(snapshot_batch=1, **base))  # warm-up: first-call costs of torch
    batched = run(student, snaps, LabelConfig(snapshot_batch=len(snaps), **base))
    single = run(student, snaps, LabelConfig(snapshot_batch=1, **base))  # the same snapshots, one at a time
    student.memoize = False  # every context scored afresh, as a loop over rollouts does
    fresh = run(student, snaps, LabelConfig(snapshot_batch=len(snaps), **base))
    # as research code does it: one snapshot, one rollout at a time (a forward pass per branch step)
    serial = run(student, snaps, LabelConfig(snapshot_batch=1, branch_batch=1, **base))
    student.memoize = True
    modes = (("batched (all snapshots together)", batched, len(snaps)),
             ("one snapshot at a time (its branches batched)", single, len(snaps)),
             ("batched, every context scored afresh (no score reuse)", fresh, len(snaps)),
             ("one snapshot and one rollout at a time, no score reuse", serial, len(snaps)))
    # a fixed n reaching the adaptive target half-width at the worst case (p = 0.5) for every condition
    fixed_n = fixed_n_for_halfwidth(0.5, args.ci_halfwidth)
    student_conditions = [c for r in batched["records"] for k, c in r.conditions.items() if k != "expert"]
    adaptive_spent = sum(c["n"] for c in student_conditions)
    fixed_spent = fixed_n * len(student_conditions)
    print("| mode | snapshots | seconds | snapshots/min | branch rollouts/s | episodes | vs one rollout at a time |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, r, n in modes:
        print(f"| {mode} | {n} | {r['seconds']:.1f} | {r['snapshots_per_min']:.1f} | {r['rollouts_per_s']:.1f} | "
              f"{r['episodes']} | {r['snapshots_per_min'] / serial['snapshots_per_min']:.1f}x |")
    same = [x.to_dict() for x in fresh["records"]] == [x.to_dict() for x in batched["records"]]
    print(f"\nlabels with and without score reuse identical: {same}")
    print(f"\nadaptive sampling (n_min={args.n_min}, n_max={args.n_max}, half-width {args.ci_halfwidth}): "
          f"{adaptive_spent} student rollouts over {len(student_conditions)} conditions; a fixed n={fixed_n} "
          f"(the n that reaches that half-width at p=0.5) would spend {fixed_spent} "
          f"({1 - adaptive_spent / fixed_spent:.0%} saved).")


if __name__ == "__main__":
    main()
