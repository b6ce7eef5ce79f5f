"""The teachable-moments explorer: a Flask app over one label run's labeled snapshots.

`/` lists the snapshots with filters (quadrant, route, profile) and sorting (ELP_net, L_local,
U); `/snapshot/<id>` shows one: the instruction, the observation the student saw, the student's
action distribution as bars, the teacher's action, hint and contrast, each condition's success
rate with its interval, the branch outcomes (leverage, patch gains) and a link to the label run
in MLflow; a POST to `/snapshot/<id>/replay` (the page's replay button) restores the snapshot's
state into a fresh env (`set_state`, nothing re-played) and opens the shop (`webshop_env.web`,
mounted at `/shop`) at that state, replacing the browser's earlier shop session. GETs never
create or evict a shop session (a GET on the replay URL is a 405).

The app reads what it is given (records, a shop, a link); it never looks anything up in MLflow
(`entry_points/explore.py` does) and nothing from a request reaches the file system.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound

from teachable.explorer.data import (
    CONDITION_ORDER,
    FILTERS,
    ORDERS,
    SORT_KEYS,
    QueryError,
    SnapshotTable,
)
from webshop_env.env import Shop
from webshop_env.web import ShopWeb, install_error_pages, install_security_headers


def explorer_blueprint(table: SnapshotTable, web: ShopWeb, run_id: str | None, run_url: str | None) -> Blueprint:
    bp = Blueprint("explorer", __name__, template_folder="templates")

    def row_or_error(snapshot_id: str):
        try:
            return table.get(snapshot_id)
        except QueryError as e:
            raise BadRequest(str(e)) from None
        except KeyError:
            raise NotFound(f"No snapshot {snapshot_id[:80]!r} in this label run; pick one from the list.") from None

    @bp.get("/")
    def snapshots() -> str:
        args = {name: request.args.get(name, "") for name in FILTERS}
        sort, order = request.args.get("sort", "elp_net"), request.args.get("order", "desc")
        try:
            rows = table.query(**args, sort=sort, order=order)
        except QueryError as e:
            raise BadRequest(str(e)) from None
        return render_template("explorer/list.html", rows=rows, total=len(table), filters=FILTERS, chosen=args,
                               sort=sort, order=order, sort_keys=SORT_KEYS, orders=ORDERS,
                               counts={name: table.counts(name) for name in FILTERS},
                               u_measure=table.u_measure, run_id=run_id, run_url=run_url)

    @bp.get("/snapshot/<snapshot_id>")
    def snapshot(snapshot_id: str) -> str:
        row = row_or_error(snapshot_id)
        r = row.record
        dist = sorted(r.student_dist.items(), key=lambda kv: -kv[1])
        conditions = [(c, r.conditions[c]) for c in CONDITION_ORDER if c in r.conditions]
        conditions += [(c, v) for c, v in r.conditions.items() if c not in CONDITION_ORDER]
        return render_template("explorer/snapshot.html", row=row, r=r, dist=dist, conditions=conditions,
                               u_measure=table.u_measure, run_id=run_id, run_url=run_url)

    @bp.post("/snapshot/<snapshot_id>/replay")
    def replay(snapshot_id: str) -> Response:
        r = row_or_error(snapshot_id).record
        sid = web.start_from_state(r.state, origin=f"snapshot {r.snapshot_id}", history=r.history,
                                   back_url=url_for("explorer.snapshot", snapshot_id=r.snapshot_id))
        return web.replace_session(sid)

    return bp


def create_explorer_app(table: SnapshotTable, shop: Shop, *, run_id: str | None = None, run_url: str | None = None,
                        max_steps: int = 15, max_sessions: int = 64, session_ttl_s: float = 1800.0) -> Flask:
    """The explorer as a Flask app (debug off), with the shop mounted at `/shop` for replays.

    Args:
        table: the label run's labeled snapshots.
        shop: the catalogue the snapshots' states were saved on (replays restore into it).
        run_id, run_url: the label run's id and a link to it in the MLflow UI (shown when given).
        max_steps: the episode step limit of replayed envs (the label run's).
        max_sessions, session_ttl_s: the shop's browser-session cap and idle expiry.
    """
    web = ShopWeb(shop, max_steps=max_steps, max_sessions=max_sessions, session_ttl_s=session_ttl_s, seed=0)
    app = Flask(__name__)
    app.config.update(DEBUG=False, MAX_CONTENT_LENGTH=64 * 1024)
    app.extensions["webshop"] = web
    app.register_blueprint(web.blueprint(), url_prefix="/shop")
    app.register_blueprint(explorer_blueprint(table, web, run_id, run_url))
    install_error_pages(app)
    install_security_headers(app)
    return app
