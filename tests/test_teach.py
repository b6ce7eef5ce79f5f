"""The resumable cell loop of the phases that teach (train_matrix, select): a cell done is read
back, a cell not kept runs again, and a JSON file appears whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teachable.teach import DONE_FILE, cached_json, run_cells


def test_run_cells_reads_back_what_was_done_and_reruns_the_rest(tmp_path: Path) -> None:
    calls: list[str] = []

    def run_one(cell: str, folder: Path) -> dict:
        calls.append(cell)
        assert folder == tmp_path / f"cell-{cell}" and folder.is_dir()
        return {"cell": cell, "status": "failed" if cell == "b" else "finished"}

    keep = lambda entry: entry["status"] == "finished"  # noqa: E731
    first = run_cells(["a", "b", "c"], tmp_path, run_one, name=lambda c: f"cell-{c}", keep=keep)
    assert calls == ["a", "b", "c"] and [reused for *_, reused in first] == [False, False, False]
    assert not (tmp_path / "cell-b" / DONE_FILE).exists()
    assert json.loads((tmp_path / "cell-a" / DONE_FILE).read_text()) == {"cell": "a", "status": "finished"}

    again = run_cells(["a", "b", "c"], tmp_path, run_one, name=lambda c: f"cell-{c}", keep=keep)
    assert calls == ["a", "b", "c", "b"]  # only the cell not kept ran again
    assert [(cell, reused) for cell, _, reused in again] == [("a", True), ("b", False), ("c", True)]
    assert [entry for _, entry, _ in again] == [entry for _, entry, _ in first]


def test_cached_json_writes_whole_files_only(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "rows.json"
    assert cached_json(path, lambda: [1, 2]) == ([1, 2], False)
    assert cached_json(path, lambda: pytest.fail("computed again")) == ([1, 2], True)

    def crash() -> list:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_json(tmp_path / "other.json", crash)
    assert not list(tmp_path.glob("other.json*"))
