"""The labeled snapshots of one label run as a table to filter, sort and look up.

Filters keep the snapshots whose quadrant, route or profile equals the one asked for; sorting is
by `ELP_net`, `L_local` (its point value) or `U` (the label run's U measure, as the quadrants
use it), largest first by default; a snapshot without the value sorts last either way. Every
filter and sort value is checked against the known names, and snapshot ids are looked up in the
table, never used to build a path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from teachable.label.leverage import PROFILES
from teachable.label.patch_gain import NO_ROUTE
from teachable.label.quadrant import QUADRANTS, U_MEASURES, u_value
from teachable.records import LabeledSnapshot, read_jsonl
from teachable.supervision.formats import FORMATS

ROUTES: tuple[str, ...] = (NO_ROUTE, *FORMATS)
SORT_KEYS: tuple[str, ...] = ("elp_net", "L_local", "U")
ORDERS: tuple[str, ...] = ("desc", "asc")
FILTERS: dict[str, tuple[str, ...]] = {"quadrant": QUADRANTS, "route": ROUTES, "profile": PROFILES}
SNAPSHOT_ID_RE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,200}$")
CONDITION_ORDER: tuple[str, ...] = ("policy", "force", "expert", "placebo", "demo", "contrast", "hint")


class QueryError(ValueError):
    """A filter, sort or snapshot id that the table does not know."""


@dataclass(frozen=True)
class Row:
    """One labeled snapshot with the values the list shows and sorts by."""

    record: LabeledSnapshot
    u: float | None
    l_local: float | None
    elp_net: float | None

    def sort_value(self, key: str) -> float | None:
        return {"elp_net": self.elp_net, "L_local": self.l_local, "U": self.u}[key]


def row_of(record: LabeledSnapshot, u_measure: str) -> Row:
    l_local = record.leverage.get("L_local")
    u = u_value(record.uncertainty, u_measure) if u_measure in record.uncertainty else None
    return Row(record=record, u=u, l_local=None if l_local is None else float(l_local["value"]),
               elp_net=record.elp_net)


class SnapshotTable:
    """Labeled snapshots by id, with filtering and sorting.

    Args:
        records: the labeled snapshots of one label run.
        u_measure: the U measure the run's quadrants used (its `u_measure` parameter).

    Raises:
        ValueError: an unknown U measure, a snapshot id unfit for a URL, or two records with the same id.
    """

    def __init__(self, records: Sequence[LabeledSnapshot], u_measure: str = "entropy") -> None:
        if u_measure not in U_MEASURES:
            raise ValueError(f"u_measure {u_measure!r} is unknown; use one of {', '.join(U_MEASURES)}.")
        self.u_measure = u_measure
        self.rows = [row_of(r, u_measure) for r in records]
        self._by_id: dict[str, Row] = {}
        for row in self.rows:
            if not SNAPSHOT_ID_RE.match(row.record.snapshot_id):
                raise ValueError(f"snapshot id {row.record.snapshot_id[:80]!r} has characters other than letters, digits "
                                 "and _ . : @ + -; the explorer cannot link to it. Re-mine with plain trajectory ids.")
            if row.record.snapshot_id in self._by_id:
                raise ValueError(f"snapshot id {row.record.snapshot_id!r} appears twice; is this one label run's file?")
            self._by_id[row.record.snapshot_id] = row

    @classmethod
    def from_jsonl(cls, path: str | Path, u_measure: str = "entropy") -> SnapshotTable:
        """Read a label run's `labeled_snapshots.jsonl`."""
        return cls(read_jsonl(path, LabeledSnapshot), u_measure)

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, snapshot_id: str) -> Row:
        """The row of a snapshot id.

        Raises:
            QueryError: a malformed id.
            KeyError: no snapshot with this id.
        """
        if not SNAPSHOT_ID_RE.match(snapshot_id):
            raise QueryError(f"{snapshot_id[:80]!r} is not a snapshot id (letters, digits and _ . : @ + - only).")
        if snapshot_id not in self._by_id:
            raise KeyError(f"no snapshot {snapshot_id!r} in this label run.")
        return self._by_id[snapshot_id]

    def query(self, *, quadrant: str = "", route: str = "", profile: str = "", sort: str = "elp_net",
              order: str = "desc") -> list[Row]:
        """The rows that pass every given filter (empty: any), sorted.

        Raises:
            QueryError: an unknown filter value, sort key or order.
        """
        wanted = {"quadrant": quadrant, "route": route, "profile": profile}
        for name, value in wanted.items():
            if value and value not in FILTERS[name]:
                raise QueryError(f"{name} {value[:40]!r} is unknown; use one of {', '.join(FILTERS[name])}.")
        if sort not in SORT_KEYS:
            raise QueryError(f"sort {sort[:40]!r} is unknown; use one of {', '.join(SORT_KEYS)}.")
        if order not in ORDERS:
            raise QueryError(f"order {order[:40]!r} is unknown; use asc or desc.")
        rows = [r for r in self.rows if all(not v or getattr(r.record, k) == v for k, v in wanted.items())]
        sign = -1.0 if order == "desc" else 1.0
        present = sorted((r for r in rows if r.sort_value(sort) is not None), key=lambda r: sign * r.sort_value(sort))
        return present + [r for r in rows if r.sort_value(sort) is None]

    def counts(self, name: str) -> dict[str, int]:
        """How many snapshots have each value of filter `name` (quadrant, route or profile)."""
        return {v: sum(getattr(r.record, name) == v for r in self.rows) for v in FILTERS[name]}
