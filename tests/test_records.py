from __future__ import annotations

import json
from pathlib import Path

import pytest

from teachable.records import (
    SCHEMA_VERSION,
    JsonlAppender,
    RecordError,
    Snapshot,
    Step,
    Trajectory,
    read_jsonl,
    write_jsonl,
)


def trajectory(i: int = 0) -> Trajectory:
    step = Step(observation="WebShop [SEP] Instruction: [SEP] x [SEP] Search", action="search[x]", reward=0.0,
                valid_actions=[], has_search_bar=True, state='{"v":1}')
    return Trajectory(traj_id=f"t{i}", goal_idx=i, goal={"asin": "B0"}, policy="random", seed=i, steps=[step],
                      reward=0.5, success=False, terminated=True, split="train")


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    assert write_jsonl(path, [trajectory(0), trajectory(1)]) == 2
    back = read_jsonl(path, Trajectory)
    assert back == [trajectory(0), trajectory(1)]
    assert isinstance(back[0].steps[0], Step)
    assert json.loads(path.read_text().splitlines()[0])["schema_version"] == SCHEMA_VERSION


def test_wrong_kind_and_wrong_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [trajectory()])
    with pytest.raises(RecordError, match="expected Snapshot records, found 'Trajectory'"):
        read_jsonl(path, Snapshot)
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(RecordError, match="re-run the phase that wrote it"):
        read_jsonl(path, Trajectory)


def test_missing_file_and_missing_fields(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run the phase that writes it"):
        read_jsonl(tmp_path / "nope.jsonl", Trajectory)
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"kind": "Trajectory", "schema_version": SCHEMA_VERSION, "traj_id": "x"}) + "\n")
    with pytest.raises(RecordError, match="lacks fields"):
        read_jsonl(path, Trajectory)


def test_a_partial_last_line_is_ignored_and_cut_by_the_appender(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with JsonlAppender(path) as out:
        out.append(trajectory(0))
    with path.open("a") as f:
        f.write('{"kind": "Trajectory", "schema_ver')  # a crash mid-write
    assert [t.traj_id for t in read_jsonl(path, Trajectory)] == ["t0"]
    with JsonlAppender(path) as out:
        out.append(trajectory(1))
    assert [t.traj_id for t in read_jsonl(path, Trajectory)] == ["t0", "t1"]


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [trajectory(0)])
    path.write_text("not json\n" + path.read_text())
    with pytest.raises(RecordError, match=":1: not valid JSON"):
        read_jsonl(path, Trajectory)
