"""Records exchanged between phases, written as JSONL with a schema version.

Every line is one record: a JSON object with `kind` (the record class) and `schema_version`.
Readers refuse a file of another kind or version with a message that says what to do.
Writers are append-only and flush per record, so a crashed phase leaves every finished record
on disk and can resume after the last one; `write_jsonl` writes a whole file atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 1

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A records file is of the wrong kind or version, or malformed."""


@dataclass
class Record:
    """Base of all records: JSON round trip with kind and schema version."""

    schema_version: int = field(default=SCHEMA_VERSION, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"kind": type(self).__name__, **data}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any], where: str = "") -> R:
        kind, version = data.get("kind"), data.get("schema_version")
        if kind != cls.__name__:
            raise RecordError(f"{where}: expected {cls.__name__} records, found {kind!r}; is this the right file?")
        if version != SCHEMA_VERSION:
            raise RecordError(
                f"{where}: {kind} schema_version {version!r}, this version of teachable reads {SCHEMA_VERSION}; "
                "re-run the phase that wrote it."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise RecordError(f"{where}: {kind} record lacks fields {missing}.")
        return cls._build({k: v for k, v in data.items() if k in names})

    @classmethod
    def _build(cls: type[R], values: dict[str, Any]) -> R:
        return cls(**values)


@dataclass
class Step(Record):
    """One action taken in an episode.

    Attributes:
        observation: the observation the action was chosen on.
        action: the action taken.
        reward: reward returned by the step.
        valid_actions: the page's click actions when the action was chosen.
        has_search_bar: whether the page asked for a search query.
        state: the env state before the action (`WebShopEnv.get_state()`, UTF-8 text).
        invalid: whether the action was a no-op.
    """

    observation: str
    action: str
    reward: float
    valid_actions: list[str]
    has_search_bar: bool
    state: str
    invalid: bool = False


@dataclass
class Trajectory(Record):
    """One episode of a policy on one goal."""

    traj_id: str
    goal_idx: int | None
    goal: dict[str, Any]
    policy: str
    seed: int
    steps: list[Step]
    reward: float
    success: bool
    terminated: bool
    split: str | None = None
    start_state: str | None = None

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Trajectory:
        values["steps"] = [s if isinstance(s, Step) else Step(**{k: v for k, v in s.items() if k != "kind"})
                           for s in values["steps"]]
        return cls(**values)

    @property
    def n_steps(self) -> int:
        return len(self.steps)


@dataclass
class Snapshot(Record):
    """A state inside a failed episode, with everything needed to restore and branch from it.

    Attributes:
        snapshot_id: stable id (trajectory id and step index).
        traj_id, goal_idx, goal: where it comes from.
        step_index: index of the step in its trajectory (0 = the first action).
        state: the env state at that step (restores to `observation`).
        observation, valid_actions, has_search_bar: what the student saw.
        history: the actions taken before this step.
        student_action: what the student did here.
        final_reward: the episode's final reward.
        steps_to_end: actions left in the episode after this one.
    """

    snapshot_id: str
    traj_id: str
    goal_idx: int | None
    goal: dict[str, Any]
    step_index: int
    state: str
    observation: str
    valid_actions: list[str]
    has_search_bar: bool
    history: list[str]
    student_action: str
    final_reward: float
    steps_to_end: int


def record_line(record: Record) -> str:
    return json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":"))


def read_jsonl(path: str | Path, cls: type[R]) -> list[R]:
    """Read all records of `cls` from a JSONL file.

    Raises:
        FileNotFoundError: the file does not exist.
        RecordError: a line is not JSON, or of another kind or schema version.
    """
    return list(iter_jsonl(path, cls))


def iter_jsonl(path: str | Path, cls: type[R]) -> Iterator[R]:
    """Iterate the records of a JSONL file; a trailing partial line (a crash) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the phase that writes it first.")
    with path.open(encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) and not line.endswith("\n"):
                return  # a record cut short by a crash: resumable writers rewrite it
            raise RecordError(f"{path}:{i}: not valid JSON ({e}).") from e
        yield cls.from_dict(data, where=f"{path}:{i}")


def write_jsonl(path: str | Path, records: Iterable[Record]) -> int:
    """Write records to `path` atomically (temp file, then rename); return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(record_line(record) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


class JsonlAppender:
    """Append records one at a time, flushed and fsynced, for resumable phases.

    On open, a trailing partial line left by a crash is cut off so the file ends on a record.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_partial_tail()
        self._f = self.path.open("a", encoding="utf-8")

    def _truncate_partial_tail(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, record: Record) -> None:
        self._f.write(record_line(record) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LabeledSnapshot(Snapshot):
    """A failure snapshot with its labels (see `teachable.label`).

    Attributes:
        uncertainty: U(s) (`teachable.label.uncertainty.Uncertainty.to_dict()`).
        student_dist: the student's distribution at s (its 10 most likely actions).
        teacher: the teacher's advice (`TeacherAdvice.to_dict()`), None when the teacher failed.
        teacher_error: why the teacher failed, if it did.
        patches: the CPT patch text of each condition.
        conditions: per condition (policy, force, expert, placebo, demo, contrast, hint) the
            branch outcomes as a rate: p, n, k, low, high.
        leverage: p_policy, p_force, p_expert, L_local and L_upper (each difference with its
            interval: value, low, high).
        elp: per format, ELP = p_fmt - p_placebo with its interval and the test's p-value / verdict.
        elp_net: the largest ELP over the formats.
        route: the format that beats the placebo significantly with the largest ELP, or `none`.
        profile: dead_end, bottleneck, trajectory or low_leverage (thresholds in the config).
        quadrant: Q1_highU_highL, Q2_highU_lowL, Q3_lowU_lowL or Q4_lowU_highL (set once the whole
            set is labeled, from its quantiles).
        d_expert, d_force: the intervention depth of its trajectory (see `teachable.label.depth`).
        rollouts: branch episodes spent on this snapshot.
    """

    uncertainty: dict[str, Any] = field(default_factory=dict)
    student_dist: dict[str, float] = field(default_factory=dict)
    teacher: dict[str, Any] | None = None
    teacher_error: str | None = None
    patches: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, dict[str, float]] = field(default_factory=dict)
    leverage: dict[str, Any] = field(default_factory=dict)
    elp: dict[str, dict[str, Any]] = field(default_factory=dict)
    elp_net: float | None = None
    route: str = "none"
    profile: str = "low_leverage"
    quadrant: str | None = None
    d_expert: int | None = None
    d_force: int | None = None
    rollouts: int = 0
