"""Student recipe sweep: train several embedded-default students (one process each, in parallel)
and print their held-out success, the training time and the model size as a Markdown table.

    python bench/student_sweep.py --variant base --variant wide:hidden_size=256,num_heads=8 \
        --eval-goals 200 --jobs 4 --out /tmp/sweep

Each variant is `name` or `name:field=value,...` over `StudentConfig` fields. The students are
saved under `--out/<name>` (usable as `--student` of the other benches).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from teachable.student import StudentConfig

FIELDS = {f.name: f for f in dataclasses.fields(StudentConfig)}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    overrides = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    unknown = set(overrides) - set(FIELDS)
    if unknown:
        raise SystemExit(f"variant {name!r}: unknown StudentConfig fields {sorted(unknown)}")
    return name, overrides


def worker(name: str, overrides: dict[str, str], out: Path, eval_goals: int) -> None:
    from teachable.student import train_student
    from webshop_env.env import Shop

    values = {}
    for key, text in overrides.items():
        default = FIELDS[key].default
        values[key] = (text.lower() == "true") if isinstance(default, bool) else type(default)(text)
    config = StudentConfig(**{"eval_goals": eval_goals, **values})
    start = time.perf_counter()
    metrics = train_student(config, Shop.load(None), out / name)
    metrics.pop("losses", None)
    metrics["seconds"] = time.perf_counter() - start
    (out / name / "sweep_metrics.json").write_text(json.dumps(metrics, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[], help="name or name:field=value,...")
    parser.add_argument("--eval-goals", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="variants trained at once")
    parser.add_argument("--out", default="student_sweep")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    if args.worker:
        worker(*parse_variant(args.worker), out, args.eval_goals)
        return
    variants = [parse_variant(v) for v in args.variant or ["base"]]
    out.mkdir(parents=True, exist_ok=True)
    from teachable.rollouts import sample_goals
    from webshop_env.env import Shop

    # the catalogue and index are built once here, before the workers share them
    n_eval = len(sample_goals(Shop.load(None), StudentConfig.eval_split, args.eval_goals, 0))

    def launch(spec: str) -> int:
        cmd = [sys.executable, __file__, "--worker", spec, "--out", str(out), "--eval-goals", str(args.eval_goals)]
        with open(out / f"{spec.partition(':')[0]}.log", "w") as logf:
            return subprocess.call(cmd, stdout=logf, stderr=subprocess.STDOUT)

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(launch, args.variant or ["base"]))
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    print(f"\nstudent sweep on {device}, {os.cpu_count()} CPUs, {args.jobs} at once, {n_eval} {StudentConfig.eval_split} goals\n")
    print("| variant | overrides | params | steps | loss | dev success (sampled) | dev success (greedy) | dev score | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, overrides), code in zip(variants, codes, strict=True):
        path = out / name / "sweep_metrics.json"
        if code or not path.exists():
            print(f"| {name} | failed (exit {code}), see {out / name}.log | | | | | | | |")
            continue
        m = json.loads(path.read_text())
        print(f"| {name} | {' '.join(f'{k}={v}' for k, v in overrides.items()) or '-'} | {m['n_parameters'] / 1e6:.2f}M "
              f"| {m.get('train_steps', 0)} | {m.get('final_loss', float('nan')):.3f} | {m['heldout_success_rate']:.3f} "
              f"| {m['heldout_greedy_success_rate']:.3f} | {m['heldout_mean_score']:.3f} | {m['seconds']:.0f} |")


if __name__ == "__main__":
    main()
