"""The labels of a fixed seed, pinned: a stored fixture made before any refactor of the labeling
path must keep matching what `label_snapshots` + `finalize` write today.

The fixture is `tests/fixtures/labels_seed11.json`: 16 failure snapshots mined from a random
student's play on the 300-product test catalogue (seed 11), labelled with the random student,
the expert and the offline teacher. A deliberate change of the labels regenerates it:

    TEACHABLE_WRITE_FIXTURES=1 .venv/bin/python -m pytest tests/test_label_fixture.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from teachable.label.labeling import LabelConfig, finalize, label_snapshots
from teachable.mining import mine_failures
from teachable.policy import RandomPolicy
from teachable.policy.expert import ExpertPolicy
from teachable.policy.teacher.offline import OfflineTeacher
from teachable.rollouts import goal_specs, run_episodes

FIXTURE = Path(__file__).parent / "fixtures" / "labels_seed11.json"


def labels_now(shop, work: Path) -> dict:
    trajs = run_episodes(shop, RandomPolicy(), goal_specs(range(0, 60, 3), seed=11), batch_size=16)
    snaps, _ = mine_failures(trajs, offsets=(1, 2, 4))
    config = LabelConfig(n_min=4, n_max=8, ci_halfwidth=0.3, rollout_batch=4)
    records, _ = label_snapshots(snaps[:16], shop=shop, student=RandomPolicy(), expert=ExpertPolicy(shop),
                                 teacher=OfflineTeacher(shop), config=config, work_file=work, show_progress=False)
    final, thresholds = finalize(records, config)
    return {"thresholds": thresholds, "records": [r.to_dict() for r in final]}


def close(a: object, b: object, path: str = "") -> list[str]:
    """Where `a` and `b` differ (floats to 1e-9 relative), as paths into the structure."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def test_labels_of_a_fixed_seed_match_the_stored_fixture(small_shop, tmp_path: Path) -> None:
    now = json.loads(json.dumps(labels_now(small_shop, tmp_path / "work.jsonl")))
    if os.environ.get("TEACHABLE_WRITE_FIXTURES") == "1":
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} is missing: make it with TEACHABLE_WRITE_FIXTURES=1")
    stored = json.loads(FIXTURE.read_text())
    assert len(stored["records"]) == 16
    # the fixture must hold labels that say something: some leverage, more than one quadrant
    assert len({r["quadrant"] for r in stored["records"]}) > 1
    diffs = close(now, stored)
    assert not diffs, f"{len(diffs)} label fields changed, e.g. {diffs[:5]}"
