"""Tables as files: one DataFrame written as CSV (full precision), Markdown and LaTeX (rounded).

Markdown is rendered here (GitHub pipe tables, numbers right-aligned) so that no extra package
is needed; LaTeX comes from pandas (booktabs rules, special characters escaped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

TABLE_FORMATS: tuple[str, ...] = ("csv", "md", "tex")
NO_DATA = "no data"


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the columns `what` (e.g. a phase's CSV artifact) lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it needs {', '.join(columns)}.")


def format_value(value: Any, digits: int = 3) -> str:
    """A cell as text: floats rounded to `digits`, NaN and None as `no data`, whole floats without
    decimals when they are counts (e.g. 24.0 -> 24)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_DATA
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """The frame as a GitHub Markdown table (no index); numeric columns are right-aligned."""
    columns = [str(c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    rows = [[format_value(v, digits).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_latex(frame: pd.DataFrame, digits: int = 3, caption: str | None = None) -> str:
    """The frame as a LaTeX tabular (booktabs; no index; special characters escaped)."""
    shown = frame.map(lambda v: format_value(v, digits))
    return shown.to_latex(index=False, escape=True, caption=caption)


def write_table(frame: pd.DataFrame, out_dir: str | Path, name: str, *, digits: int = 3,
                formats: Sequence[str] = TABLE_FORMATS, caption: str | None = None) -> list[Path]:
    """Write `frame` as `<out_dir>/<name>.csv|md|tex`; return the written paths.

    Raises:
        ValueError: an unknown format.
    """
    unknown = [f for f in formats if f not in TABLE_FORMATS]
    if unknown:
        raise ValueError(f"unknown table formats {unknown}; use any of {', '.join(TABLE_FORMATS)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "md":
            path.write_text(to_markdown(frame, digits), encoding="utf-8")
        else:
            path.write_text(to_latex(frame, digits, caption), encoding="utf-8")
        paths.append(path)
    return paths
