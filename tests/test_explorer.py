"""The teachable-moments explorer over labels made by the real labeling code: filtering and
sorting, snapshot pages, replay by restoring state, bad ids, and the `explore` entry point."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path

import pytest

from teachable.explorer import QueryError, SnapshotTable, create_explorer_app
from teachable.records import LabeledSnapshot, read_jsonl
from tests.webtools import label_run_records
from webshop_env.web.app import COOKIE


@pytest.fixture(scope="module")
def labeled_path(small_shop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return label_run_records(small_shop, tmp_path_factory.mktemp("labels"))


@pytest.fixture(scope="module")
def records(labeled_path: Path) -> list[LabeledSnapshot]:
    return read_jsonl(labeled_path, LabeledSnapshot)


@pytest.fixture(scope="module")
def table(labeled_path: Path) -> SnapshotTable:
    return SnapshotTable.from_jsonl(labeled_path)


@pytest.fixture
def client(table, small_shop):
    app = create_explorer_app(table, small_shop, run_id="0" * 32, run_url="http://127.0.0.1:5000/#/experiments/1/runs/x")
    return app.test_client()


def listed_ids(body: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<tr class="snapshot-row" data-id="([^"]+)"', body)]


def assert_error_page(r, code: int) -> None:
    body = r.get_data(as_text=True)
    assert r.status_code == code and f'data-code="{code}"' in body
    assert "Traceback" not in body and 'File "' not in body


def test_fixture_labels_are_varied_enough(records) -> None:
    assert len(records) >= 8 and all(r.quadrant for r in records)
    assert len({r.quadrant for r in records}) >= 2 and len({r.profile for r in records}) >= 2


def test_filters_keep_exactly_the_matching_snapshots(table, records) -> None:
    for name in ("quadrant", "route", "profile"):
        for value in {getattr(r, name) for r in records}:
            got = [row.record.snapshot_id for row in table.query(**{name: value})]
            want = [r.snapshot_id for r in records if getattr(r, name) == value]
            assert sorted(got) == sorted(want) and table.counts(name)[value] == len(want)
    q = records[0].quadrant
    both = table.query(quadrant=q, profile=records[0].profile)
    assert both and all(r.record.quadrant == q and r.record.profile == records[0].profile for r in both)


@pytest.mark.parametrize("key", ["elp_net", "L_local", "U"])
def test_sorting_orders_by_the_value_with_missing_last(records, key: str) -> None:
    gapped = [replace(records[0], snapshot_id="no-elp", elp_net=None, leverage={}, uncertainty={}), *records]
    table = SnapshotTable(gapped)
    for order in ("desc", "asc"):
        rows = table.query(sort=key, order=order)
        values = [r.sort_value(key) for r in rows]
        assert values[-1] is None and None not in values[:-1]
        assert values[:-1] == sorted(values[:-1], reverse=order == "desc")
    u = [r.u for r in table.query(sort="U") if r.u is not None]
    assert u[0] == max(r.uncertainty["entropy"] for r in records)


def test_bad_queries_and_records_are_refused(table, records) -> None:
    with pytest.raises(QueryError, match="quadrant 'Q9' is unknown"):
        table.query(quadrant="Q9")
    with pytest.raises(QueryError, match="sort"):
        table.query(sort="__class__")
    with pytest.raises(QueryError, match="not a snapshot id"):
        table.get("../../etc/passwd")
    with pytest.raises(KeyError):
        table.get("no-such-id")
    with pytest.raises(ValueError, match="cannot link to it"):
        SnapshotTable([replace(records[0], snapshot_id="a/b")])
    with pytest.raises(ValueError, match="appears twice"):
        SnapshotTable([records[0], records[0]])
    with pytest.raises(ValueError, match="u_measure"):
        SnapshotTable(records, u_measure="vibes")


def test_list_page_filters_and_sorts(client, records) -> None:
    body = client.get("/").get_data(as_text=True)
    assert sorted(listed_ids(body)) == sorted(r.snapshot_id for r in records)
    quadrant = records[0].quadrant
    body = client.get(f"/?quadrant={quadrant}&sort=U&order=asc").get_data(as_text=True)
    assert sorted(listed_ids(body)) == sorted(r.snapshot_id for r in records if r.quadrant == quadrant)
    assert f'<option value="{quadrant}" selected>' in body


@pytest.mark.parametrize("query", ["quadrant=Q9", "route=../../etc", "profile=x", "sort=__init__", "order=sideways"])
def test_bad_filters_are_400_pages(client, query: str) -> None:
    assert_error_page(client.get(f"/?{query}"), 400)


def test_snapshot_page_shows_the_labels(client, records) -> None:
    r = next(x for x in records if x.teacher)
    body = html.unescape(client.get(f"/snapshot/{r.snapshot_id}").get_data(as_text=True))
    assert r.goal["instruction_text"] in body and f'<pre id="observation">{r.observation}</pre>' in body
    assert f'<code id="teacher-action">{r.teacher["action"]}</code>' in body
    assert r.teacher["hint"] in body and r.teacher["contrast"] in body
    for name, c in r.conditions.items():
        row = re.search(rf'<tr class="condition" data-condition="{name}" data-p="([^"]+)">(.*?)</tr>', body, re.S)
        assert float(row.group(1)) == c["p"]
        assert f"{c['p']:.3f}" in row.group(2) and f"[{c['low']:.3f}, {c['high']:.3f}]" in row.group(2)
        assert f"{int(c['k'])} / {int(c['n'])}" in row.group(2)
    for action in r.student_dist:
        assert f'<tr data-action="{action}">' in body
    assert 'href="http://127.0.0.1:5000/#/experiments/1/runs/x"' in body


@pytest.mark.parametrize("path", ["/snapshot/no-such-snapshot", "/snapshot/..%2F..%2Fetc%2Fpasswd",
                                  "/snapshot/../../etc/passwd", "/snapshot/%2e%2e/replay",
                                  "/snapshot/a%00b", "/snapshot/" + "a" * 300])
def test_unknown_and_path_like_ids_are_4xx_pages(client, path: str) -> None:
    r = client.get(path)
    assert 400 <= r.status_code < 500
    assert_error_page(r, r.status_code)


def test_replay_restores_the_state_and_continues(client, records, small_shop) -> None:
    r = records[-1]
    resp = client.post(f"/snapshot/{r.snapshot_id}/replay")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/shop/play")
    body = client.get("/shop/play").get_data(as_text=True)
    shown = html.unescape(re.search(r'<pre id="text-observation">(.*?)</pre>', body, re.S).group(1))
    assert shown == r.observation and f"snapshot {r.snapshot_id}" in body
    assert f'<a id="back-link" href="/snapshot/{r.snapshot_id}">' in body
    visit = client.application.extensions["webshop"].sessions.get(client.get_cookie(COOKIE).value)
    assert visit.env.get_state() == r.state.encode() and visit.history == r.history
    action = r.valid_actions[0]
    assert client.post("/shop/play", data={"action": action}).status_code == 303
    assert visit.history[-1] == action


def test_gets_never_create_or_evict_shop_sessions(records, small_shop) -> None:
    app = create_explorer_app(SnapshotTable(records), small_shop, max_sessions=3)
    user, visitor = app.test_client(), app.test_client()
    assert user.post(f"/snapshot/{records[0].snapshot_id}/replay").status_code == 303
    sessions = app.extensions["webshop"].sessions
    mine = user.get_cookie(COOKIE).value
    for i in range(100):  # e.g. a crawler following every link of the list
        r = visitor.get(f"/snapshot/{records[i % len(records)].snapshot_id}/replay")
        assert r.status_code == 405 and "POST" in r.headers["Allow"].split(", ")
        visitor.get(f"/snapshot/{records[i % len(records)].snapshot_id}")
        visitor.get("/shop/play")
    assert len(sessions) == 1 and sessions.get(mine) is not None
    for r in records[:5]:  # replaying again and again holds one session per browser
        user.post(f"/snapshot/{r.snapshot_id}/replay")
    assert len(sessions) == 1 and sessions.get(mine) is None
    page = user.get(f"/snapshot/{records[0].snapshot_id}").get_data(as_text=True)
    assert f'<form method="post" action="/snapshot/{records[0].snapshot_id}/replay">' in page


def test_a_state_from_another_catalogue_is_a_409_page(records, tiny_shop) -> None:
    client = create_explorer_app(SnapshotTable(records), tiny_shop).test_client()
    assert_error_page(client.post(f"/snapshot/{records[0].snapshot_id}/replay"), 409)


def test_explore_entry_point_serves_a_label_run(mlflow_store: str, small_data_dir: Path, monkeypatch) -> None:
    from entry_points import explore, label, mine, rollouts

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "8", "--max_steps", "8"])
    mine.main(["--offsets", "1,2", "--include_search_steps", "false"])
    label.main(["--data_dir", str(small_data_dir), "--student", "random", "--max_snapshots", "6",
                "--n_min", "4", "--n_max", "4", "--rollout_batch", "4", "--max_steps", "8"])
    served = []
    monkeypatch.setattr("werkzeug.serving.run_simple", lambda *a, **k: served.append((a, k)))
    explore.main(["--label-run", "latest", "--port", "0"])
    (host, port, app), kwargs = served[0]
    assert (host, port, kwargs["use_debugger"]) == ("127.0.0.1", 0, False) and app.debug is False
    client = app.test_client()
    ids = listed_ids(client.get("/").get_data(as_text=True))
    assert len(ids) == 6
    import mlflow

    run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`teachable.phase` = 'label'",
                             output_format="list")[0]
    link = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert link in client.get(f"/snapshot/{ids[0]}").get_data(as_text=True)
    assert client.post(f"/snapshot/{ids[0]}/replay").status_code == 303  # replays on the run's own catalogue
    with pytest.raises(SystemExit):
        explore.main(["--label_run", "latest", "--mlflow_ui", "file:///etc"])
    from entry_points.cli import UpstreamError

    with pytest.raises(UpstreamError, match="not a label run"):
        explore.main(["--label_run", run.data.tags["upstream.mine"]])
