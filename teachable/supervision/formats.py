"""The teaching texts of the three supervision formats, and the placebo they are measured against.

One template per format, used both as the CPT patch (shown in the prompt while the student
continues from a snapshot) and, by the training formats, as the supervision shown with the
snapshot's prompt:

- DEMO: the teacher's action, shown as the right move.
- CONTRAST: the student's action, why it is wrong, and the right one (the teacher's contrast).
- HINT: the teacher's hint, which points at the right move without naming it.
- placebo: a neutral text of similar length that teaches nothing; `ELP_<fmt>` is measured
  against it, so a gain from merely having more text in the prompt is not counted.
"""

from __future__ import annotations

from teachable.policy.teacher.base import TeacherAdvice

FORMATS: tuple[str, ...] = ("demo", "contrast", "hint")
PLACEBO = "placebo"
_NEUTRAL = (
    "Shopping online is a common activity. Web shops list many products with titles, prices and "
    "options. Pages can be read from top to bottom. Some pages have buttons and some have links. "
    "A page may show several products at once, each with its own price. "
)


def patch_text(fmt: str, advice: TeacherAdvice) -> str:
    """The teaching text of format `fmt` for one piece of advice.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "demo":
        return f"The right move here is {advice.action}."
    if fmt == "contrast":
        return advice.contrast
    if fmt == "hint":
        return f"Hint: {advice.hint}"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")


def placebo_text(length: int) -> str:
    """A neutral text of about `length` characters (whole words, at least one sentence)."""
    text = _NEUTRAL * (max(length, 1) // len(_NEUTRAL) + 1)
    cut = text[: max(length, 40)]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > 0 else cut.rsplit(" ", 1)[0] + "."


def condition_patches(advice: TeacherAdvice) -> dict[str, str]:
    """The patch of every CPT condition: each format, and a placebo as long as their mean."""
    patches = {fmt: patch_text(fmt, advice) for fmt in FORMATS}
    patches[PLACEBO] = placebo_text(round(sum(map(len, patches.values())) / len(patches)))
    return patches
