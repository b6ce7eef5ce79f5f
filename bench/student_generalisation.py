"""Does the default student shop on catalogues it was not built for? Train it on each catalogue
and print its held-out success beside the expert's, as a Markdown table.

    python bench/student_generalisation.py --attributes ../shared/webshop_real/items_ins_v2_1000.json \
        --catalogues a,b,c --jobs 3 --out /tmp/generalisation
    python bench/student_generalisation.py --heuristic --attributes ...   # no training: a page reader

Catalogues:

- `a`: the embedded default (generated, 1000 products, seed 0, all categories);
- `b`: the generator with another seed and another category mix (`--b-seed`, `--b-categories`,
  `--b-products`);
- `c`: a small catalogue in WebShop's real schema with human instructions, built from WebShop's
  attribute file (`--attributes`, see `webshop_env.realistic`).

Each catalogue is generated or built once into its cache folder. The default student
(`teachable.student.train_student` on each catalogue's shop, `--epochs` passes) is
trained in its own process (`--jobs` at once) and saved under `--out/<catalogue>`; the table
gives its success on dev goals sampled at temperature 1 and greedy, each with a 95% Wilson
interval, the expert's success on the same goals and the seconds the student phase took.

`--heuristic` trains nothing: on every dev goal it plays the page-reading demonstrator the
student clones (`teachable.policy.reader`: "search the instruction without its price clause,
click the first result, click the option values that appear in the instruction, buy") and the
expert. What the reader solves is a cheap
estimate of how much of a catalogue a student that reads pages, rather than memorising product
ids, could solve.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from teachable.policy.reader import PageReader
from teachable.stats import rate

CATALOGUES = ("a", "b", "c")
DEFAULT_B_CATEGORIES = "beauty,electronics,garden,pet,toys"


# ------------------------------------------------------------------ catalogues
def catalogue_dir(name: str, args: argparse.Namespace) -> str:
    """The data folder of catalogue `name` ("" for the embedded default), built on first use."""
    if name == "a":
        return ""
    if name == "b":
        from webshop_env.catalog import ensure_default_catalog

        return str(ensure_default_catalog(args.b_products, args.b_seed, categories=args.b_categories.split(",")))
    if not args.attributes:
        raise SystemExit("student_generalisation: error: catalogue c needs --attributes FILE "
                         "(WebShop's items_ins_v2*.json, e.g. ../shared/webshop_real/items_ins_v2_1000.json)")
    from webshop_env.realistic import ensure_real_schema_catalog

    return str(ensure_real_schema_catalog(args.attributes, seed=args.c_seed))


def describe(name: str, args: argparse.Namespace) -> str:
    if name == "a":
        return "a: embedded default"
    if name == "b":
        return f"b: generated, seed {args.b_seed}, {args.b_categories.replace(',', '+')}"
    return f"c: real schema ({Path(args.attributes).name})"


def load_shop(data_dir: str):
    from webshop_env.env import Shop

    return Shop.load(data_dir or None)


# ------------------------------------------------------------------ student mode
def overrides(text: str) -> dict[str, object]:
    """`field=value,...` as StudentConfig keyword arguments, each value parsed as its field's type."""
    from dataclasses import fields

    from teachable.student import StudentConfig

    types = {f.name: type(f.default) for f in fields(StudentConfig)}
    out: dict[str, object] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"student_generalisation: error: --set {key}: StudentConfig has no such field")
        kind = types[key]
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def worker(name: str, data_dir: str, out: Path, epochs: float, eval_goals: int, settings: str = "") -> None:
    """Train the default student on one catalogue; write its metrics beside it."""
    from teachable.student import StudentConfig, train_student

    shop = load_shop(data_dir)
    config = StudentConfig(epochs=epochs, eval_goals=eval_goals, **overrides(settings))
    start = time.perf_counter()
    metrics = train_student(config, shop, out / name)
    metrics.pop("losses", None)
    metrics.update(seconds=time.perf_counter() - start, n_products=len(shop.catalog),
                   n_train=len(shop.split_goal_indices("train")), n_dev=len(shop.split_goal_indices("dev")),
                   n_eval=min(eval_goals, len(shop.split_goal_indices(config.eval_split))))
    (out / name / "generalisation_metrics.json").write_text(json.dumps(metrics, indent=1))


def interval(p: float | None, n: int) -> str:
    if p is None or not n:
        return "no data"
    r = rate(round(p * n), n)
    return f"{r.p:.2f} [{r.low:.2f}, {r.high:.2f}]"


def student_table(names: Sequence[str], dirs: dict[str, str], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def launch(name: str) -> int:
        cmd = [sys.executable, __file__, "--worker", name, "--data-dir", dirs[name], "--out", str(out),
               "--epochs", str(args.epochs), "--eval-goals", str(args.eval_goals), "--set", args.set]
        with open(out / f"{name}.log", "w") as logf:
            return subprocess.call(cmd, stdout=logf, stderr=subprocess.STDOUT)

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(launch, names))
    print(f"\nstudent generalisation on {machine()}, {args.jobs} at once, {args.epochs:g} epochs, "
          f"up to {args.eval_goals} dev goals{', ' + args.set if args.set else ''}\n")
    print("| catalogue | products | train / dev goals | student sampled (T=1) | student greedy | expert | student s |")
    print("|---|---|---|---|---|---|---|")
    for name, code in zip(names, codes, strict=True):
        path = out / name / "generalisation_metrics.json"
        if code or not path.exists():
            print(f"| {describe(name, args)} | failed (exit {code}), see {out / (name + '.log')} | | | | | |")
            continue
        m = json.loads(path.read_text())
        n = m["n_eval"]
        print(f"| {describe(name, args)} | {m['n_products']} | {m['n_train']} / {m['n_dev']} "
              f"| {interval(m.get('heldout_success_rate'), n)} | {interval(m.get('heldout_greedy_success_rate'), n)} "
              f"| {interval(m.get('expert_success_rate'), n)} | {m['seconds']:.0f} |")


# ------------------------------------------------------------------ heuristic mode
def heuristic_table(names: Sequence[str], dirs: dict[str, str], args: argparse.Namespace) -> None:
    from teachable.policy.expert import ExpertPolicy
    from teachable.rollouts import goal_specs, run_episodes

    print(f"\npage reader vs expert on every dev goal, {machine()}\n")
    print("| catalogue | products | train / dev goals | page reader | expert | s |")
    print("|---|---|---|---|---|---|")
    for name in names:
        start = time.perf_counter()
        shop = load_shop(dirs[name])
        dev = list(shop.split_goal_indices("dev"))
        specs = goal_specs(dev, seed=0, split="dev")
        cells = []
        for policy in (PageReader(), ExpertPolicy(shop)):
            trajectories = run_episodes(shop, policy, specs, max_steps=15, batch_size=32, greedy=True)
            k = int(np.sum([t.success for t in trajectories]))
            cells.append(interval(k / len(trajectories), len(trajectories)) if trajectories else "no data")
        print(f"| {describe(name, args)} | {len(shop.catalog)} | {len(shop.split_goal_indices('train'))} / {len(dev)} "
              f"| {cells[0]} | {cells[1]} | {time.perf_counter() - start:.0f} |")


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.machine() or "cpu"
    return f"{device}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogues", default="a,b,c", help="comma-separated: a (embedded), b (generated, "
                        "other seed and mix), c (real schema)")
    parser.add_argument("--epochs", type=float, default=None, help="student epochs (default: StudentConfig's)")
    parser.add_argument("--eval-goals", type=int, default=None, help="dev goals per student (default: StudentConfig's)")
    parser.add_argument("--out", default="student_generalisation", help="folder for the trained students")
    parser.add_argument("--jobs", type=int, default=1, help="students trained at once (one process each)")
    parser.add_argument("--heuristic", action="store_true", help="no training: page reader and expert on dev goals")
    parser.add_argument("--attributes", default="", help="WebShop's items_ins_v2*.json, for catalogue c")
    parser.add_argument("--b-seed", type=int, default=7)
    parser.add_argument("--b-categories", default=DEFAULT_B_CATEGORIES)
    parser.add_argument("--b-products", type=int, default=1000)
    parser.add_argument("--c-seed", type=int, default=0)
    parser.add_argument("--set", default="", help="StudentConfig fields for every student, e.g. "
                        "anonymize_products=true,n_train_goals=500")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from teachable.student import StudentConfig

    args.epochs = StudentConfig.epochs if args.epochs is None else args.epochs
    args.eval_goals = StudentConfig.eval_goals if args.eval_goals is None else args.eval_goals
    if args.worker:
        worker(args.worker, args.data_dir, Path(args.out), args.epochs, args.eval_goals, args.set)
        return
    names = [n.strip() for n in args.catalogues.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CATALOGUES))
    if unknown or not names:
        parser.error(f"--catalogues: unknown {', '.join(unknown) or '(none given)'}; use some of {', '.join(CATALOGUES)}")
    if args.jobs < 1 or args.epochs < 0:
        parser.error("--jobs must be >= 1 and --epochs >= 0")
    try:
        # built here, before the workers share the cache folders (and their search indexes)
        dirs = {name: catalogue_dir(name, args) for name in names}
        for name in names:
            load_shop(dirs[name])
    except ValueError as e:  # CatalogError and an unknown category mix
        raise SystemExit(f"student_generalisation: error: {e}") from e
    (heuristic_table if args.heuristic else student_table)(names, dirs, args)


if __name__ == "__main__":
    main()
