"""Fault injection for `label`: runs killed with SIGKILL at random moments and started again with
the same parameters until they finish, against one uninterrupted run of the same parameters.

Builds its own store: a tiny untrained LM student logged as a `student` run, random-policy
rollouts and their failure snapshots on a generated catalogue; then every label run uses the
default upstream references (`mine_run=latest`, `student=latest`), so each restart downloads the
student to a new folder, as a user's would. Each of `--runs` trials has its own work folder; a
trial is killed after a random delay and restarted, `--kills` times, then run to the end. The
delays are drawn uniformly from 10% to 95% of the uninterrupted run's wall time, so kills land
in start-up, in labeling and in the final logging alike. Prints a Markdown table: per trial, the kills
it survived, the planned snapshots missing from its artifact (lost), the snapshots its work
file or artifact holds more than once (doubled) and the labels that differ from the
uninterrupted run's; all three must be 0.

    python bench/label_kill_resume.py                    # 3 trials x 3 kills, 8 snapshots
    python bench/label_kill_resume.py --runs 5 --kills 4 --snapshots 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Attempts:
    """What happened to one command run under fault injection."""

    kills: int = 0
    exit_codes: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.exit_codes) and self.exit_codes[-1] == 0


def run_with_kills(cmd: Sequence[str], env: dict[str, str], triggers: Sequence[Callable[[float], bool]],
                   log_dir: Path, timeout_s: float = 600.0, poll_s: float = 0.05) -> Attempts:
    """Run `cmd`, SIGKILL it when each trigger fires (called with the seconds since that start),
    start it again each time, and finally let it run to the end.

    A start that ends by itself before its trigger fires ends the sequence (it finished or failed).

    Returns:
        The kills and the exit code of every start (-9 for a kill).
    """
    out = Attempts()
    for trigger in [*triggers, None]:
        log = log_dir / f"attempt{len(out.exit_codes)}.log"
        out.logs.append(log)
        with log.open("w") as f:
            proc = subprocess.Popen(list(cmd), env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
            start = time.monotonic()
            while proc.poll() is None:
                elapsed = time.monotonic() - start
                if elapsed > timeout_s:
                    proc.kill()
                    proc.wait()
                    raise TimeoutError(f"{' '.join(cmd)} ran past {timeout_s} s; see {log}")
                if trigger is not None and trigger(elapsed):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    out.kills += 1
                    break
                time.sleep(poll_s)
        out.exit_codes.append(proc.returncode)
        if proc.returncode != -signal.SIGKILL:
            break
    return out


def work_lines(work_dir: Path, phase: str, name: str) -> list[str]:
    """The lines of a phase's work file(s) under `work_dir` (all keys), complete lines only."""
    lines: list[str] = []
    for path in sorted(work_dir.glob(f"{phase}-*/{name}")):
        text = path.read_text(encoding="utf-8")
        lines += text.splitlines()[: text.count("\n")]
    return lines


def doubled_ids(ids: Sequence[str]) -> int:
    """How many ids appear more than once (each extra appearance counts)."""
    return sum(n - 1 for n in Counter(ids).values() if n > 1)


# ---------------------------------------------------------------------- the benchmark
def build_store(root: Path, n_goals: int, seed: int) -> dict[str, str]:
    """A tracking store with a student run (tiny untrained LM), rollouts and mine runs; the env to use it."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
           "TEACHABLE_WORK_DIR": str(root / "work-setup")}
    data_dir = root / "catalog"
    script = f"""
import mlflow
from entry_points import mine, rollouts
from entry_points.runs import PHASE_TAG, setup_tracking
from teachable.models import build_tiny_llama, train_bpe_tokenizer
from teachable.policy.lm import LMPolicy
from webshop_env.env import Shop
from webshop_env.generate import generate_catalog

generate_catalog({str(data_dir)!r}, n_products=300, seed=7)
shop = Shop.load({str(data_dir)!r})
texts = [p["Title"] for p in shop.catalog.products] + [g["instruction_text"] for g in shop.goals]
tok = train_bpe_tokenizer(texts, vocab_size=400)
model = build_tiny_llama(tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
LMPolicy(model, tok, max_observation_chars=400, max_history=2).save_pretrained({str(root / 'student')!r})
setup_tracking()
with mlflow.start_run(run_name="student"):
    mlflow.set_tag(PHASE_TAG, "student")
    mlflow.log_artifacts({str(root / 'student')!r}, "model")
rollouts.main(["--data_dir", {str(data_dir)!r}, "--student", "random", "--n_goals", "{n_goals}", "--max_steps", "8",
               "--seed", "{seed}"])
mine.main(["--offsets", "1,2"])
"""
    subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, capture_output=True)
    return {**env, "DATA_DIR": str(data_dir)}


def label_command(data_dir: str, snapshots: int, n_min: int = 4, n_max: int = 8) -> list[str]:
    """`label` on the default upstream references (mine_run=latest, student=latest)."""
    return [sys.executable, "-m", "entry_points.label", "--data_dir", data_dir, "--max_snapshots", str(snapshots),
            "--snapshot_batch", "2", "--n_min", str(n_min), "--n_max", str(n_max), "--rollout_batch", str(n_min),
            "--max_steps", "8"]


def artifact_labels(env: dict[str, str], run_id: str) -> list[dict]:
    code = ("import mlflow, sys; print(open(mlflow.artifacts.download_artifacts(run_id=sys.argv[1], "
            "artifact_path='labeled_snapshots.jsonl')).read(), end='')")
    text = subprocess.run([sys.executable, "-c", code, run_id], env=env, cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def finished_label_runs(env: dict[str, str]) -> list[str]:
    code = ("import mlflow; from entry_points.runs import setup_tracking; "
            "print(' '.join(r.info.run_id for r in mlflow.search_runs([setup_tracking()], output_format='list', "
            "filter_string=\"tags.`teachable.phase` = 'label' and attributes.status = 'FINISHED'\", "
            "order_by=['attributes.start_time ASC'])))")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.split()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="trials, each killed --kills times")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per trial before it may finish")
    parser.add_argument("--snapshots", type=int, default=8, help="snapshots each label run labels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = build_store(root, n_goals=24, seed=args.seed)
        cmd = label_command(env["DATA_DIR"], args.snapshots)
        started = time.perf_counter()
        whole = run_with_kills(cmd, {**env, "TEACHABLE_WORK_DIR": str(root / "work-whole")}, [], root)
        if not whole.finished:
            raise SystemExit(f"the uninterrupted run failed:\n{whole.logs[-1].read_text()[-3000:]}")
        uninterrupted_s = time.perf_counter() - started
        reference = {r["snapshot_id"]: r for r in artifact_labels(env, finished_label_runs(env)[-1])}
        rows = []
        for trial in range(args.runs):
            work = root / f"work-{trial}"
            delays = rng.uniform(0.1 * uninterrupted_s, 0.95 * uninterrupted_s, size=args.kills)
            triggers = [lambda t, d=d: t >= d for d in delays]
            log_dir = root / f"logs-{trial}"
            log_dir.mkdir()
            started = time.perf_counter()
            attempts = run_with_kills(cmd, {**env, "TEACHABLE_WORK_DIR": str(work)}, triggers, log_dir)
            seconds = time.perf_counter() - started
            if not attempts.finished:  # the log goes with the temporary folder: show its end
                raise SystemExit(f"trial {trial} failed (exit {attempts.exit_codes[-1]}):\n"
                                 f"{attempts.logs[-1].read_text()[-3000:]}")
            labels = artifact_labels(env, finished_label_runs(env)[-1])
            ids = [r["snapshot_id"] for r in labels]
            lines = [json.loads(line)["snapshot_id"] for line in work_lines(work, "label", "labeled_snapshots.partial.jsonl")]
            rows.append({"trial": trial, "kills": attempts.kills, "kill moments (s)": ", ".join(f"{d:.1f}" for d in delays),
                         "lost": len(set(reference) - set(ids)), "doubled": doubled_ids(ids) + doubled_ids(lines),
                         "differ": sum(reference.get(r["snapshot_id"]) != r for r in labels), "seconds": seconds})
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.snapshots} snapshots, uninterrupted run {uninterrupted_s:.1f} s\n")
    print("| trial | kills survived | kill moments (s after each start) | snapshots lost | snapshots doubled "
          "| labels that differ | seconds (all starts) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['trial']} | {r['kills']} | {r['kill moments (s)']} | {r['lost']} | {r['doubled']} | "
              f"{r['differ']} | {r['seconds']:.1f} |")
    total = {k: sum(r[k] for r in rows) for k in ("kills", "lost", "doubled", "differ")}
    print(f"| all | {total['kills']} | | {total['lost']} | {total['doubled']} | {total['differ']} | |")


if __name__ == "__main__":
    main()
