"""Supervision: the DEMO / CONTRAST / HINT teaching texts (and the CPT placebo)."""

from teachable.supervision.formats import (
    FORMATS,
    PLACEBO,
    condition_patches,
    patch_text,
    placebo_text,
)

__all__ = ["FORMATS", "PLACEBO", "condition_patches", "patch_text", "placebo_text"]
