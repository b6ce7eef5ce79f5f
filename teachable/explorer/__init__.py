"""The teachable-moments explorer: browse a label run's snapshots and replay them in the shop."""

from teachable.explorer.app import create_explorer_app
from teachable.explorer.data import QueryError, Row, SnapshotTable

__all__ = ["QueryError", "Row", "SnapshotTable", "create_explorer_app"]
