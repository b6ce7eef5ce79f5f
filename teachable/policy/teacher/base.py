"""What a teacher returns for a student's step, shared by every teacher back end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from teachable.prompting import Context

ERROR_TYPES: tuple[str, ...] = ("affordance_miss", "attribute_confusion", "planning_error", "exploration_failure")


@dataclass(frozen=True)
class TeacherAdvice:
    """A teacher's reading of one decision.

    Attributes:
        action: the action the teacher suggests (a valid click, or `search[...]` on a search page).
        hint: a short hint that does not give the action away verbatim.
        contrast: why the student's action is wrong and what is right instead.
        error_type: one of `ERROR_TYPES`.
        source: which teacher produced it (e.g. `offline`, `openai:gpt-4.1-mini`).
    """

    action: str
    hint: str
    contrast: str
    error_type: str
    source: str = ""

    def __post_init__(self) -> None:
        if self.error_type not in ERROR_TYPES:
            raise ValueError(f"error_type {self.error_type!r} is not one of {', '.join(ERROR_TYPES)}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Teacher(Protocol):
    """Advice for a batch of decisions: the contexts and what the student did in each."""

    name: str

    def advise(self, contexts: Sequence[Context], student_actions: Sequence[str]) -> list[TeacherAdvice]: ...
