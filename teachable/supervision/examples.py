"""Supervision examples: a labeled snapshot turned into a (context, completion action) pair in
one of the three formats. The context is rendered into a prompt by the model's own policy
(`LMPolicy.prompt`, i.e. `teachable.prompting`), so training and acting see the same prompt.

- DEMO: the snapshot as the student saw it; the completion is the teacher's action.
- CONTRAST: the same, with a note naming the student's wrong action (never the right one, which
  would make the completion a copy); the completion is the teacher's action.
- HINT: the same, with the teacher's hint; the completion is the teacher's action.
"""

from __future__ import annotations

from teachable.prompting import Context
from teachable.records import LabeledSnapshot
from teachable.rollouts import snapshot_context
from teachable.supervision.formats import FORMATS


class SupervisionError(ValueError):
    """A labeled snapshot cannot be turned into supervision (e.g. the teacher failed on it)."""


def contrast_note(student_action: str) -> str:
    """The CONTRAST format's note: what not to do here."""
    return f"Last time you chose {student_action} here, and that was wrong. Do something better."


def routed_format(record: LabeledSnapshot, force: str | None = None) -> str:
    """The format a snapshot is taught in: `force` when given, else its label's route (DEMO when
    the route is `none`: no format beat the placebo, so the plain demonstration is used)."""
    if force is not None:
        if force not in FORMATS:
            raise ValueError(f"unknown format {force!r}; use one of {', '.join(FORMATS)}.")
        return force
    return record.route if record.route in FORMATS else "demo"


def supervision_pair(record: LabeledSnapshot, fmt: str) -> tuple[Context, str]:
    """The (context, teacher action) pair of `record` in format `fmt`.

    Raises:
        SupervisionError: the record has no teacher advice.
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not record.teacher:
        raise SupervisionError(f"snapshot {record.snapshot_id} has no teacher advice ({record.teacher_error}); "
                               "it cannot be used as supervision.")
    patch = {"demo": None, "contrast": contrast_note(record.student_action), "hint": record.teacher["hint"]}[fmt]
    return snapshot_context(record, patch=patch), record.teacher["action"]
