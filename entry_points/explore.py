"""Phase `explore`: browse a label run's teachable moments in a browser.

    mlflow run . -e explore --env-manager local
    python -m entry_points.explore --label_run latest --port 5001

Resolves the label run (`latest` or a run id), downloads its `labeled_snapshots.jsonl`, loads
the catalogue its states were saved on (the run's own `data_dir` unless one is given) and serves
the explorer (`teachable.explorer`) on `host:port` (loopback by default) until interrupted.
Each snapshot page links to the label run in the MLflow UI. A viewer, not a phase that
produces anything: it starts no MLflow run of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from entry_points.cli import parse_configs, run_cli
from entry_points.runs import DEFAULT_MLFLOW_UI, setup_tracking, ui_url
from entry_points.upstream import download_artifact, resolve_upstream
from teachable.explorer import SnapshotTable, create_explorer_app
from teachable.names import LABELED_SNAPSHOTS
from webshop_env.env import Shop
from webshop_env.web import LOOPBACK

PHASE = "explore"
log = logging.getLogger(__name__)


@dataclass
class ExploreConfig:
    """The `explore` viewer: a label run's labeled snapshots in a browser."""

    label_run: str = field(default="latest", metadata={"help": "label run: latest or a run id"})
    data_dir: str = field(default="", metadata={"help": "folder with WebShop's files for replays; empty: the label run's own data_dir"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind; anything but loopback exposes the explorer to the network"})
    port: int = field(default=5001, metadata={"help": "port to serve on"})
    mlflow_ui: str = field(default="", metadata={"help": "base URL of the MLflow UI for run links; empty: the tracking server when it is http(s), else " + DEFAULT_MLFLOW_UI + " (`mlflow ui`)"})
    max_sessions: int = field(default=64, metadata={"help": "most replay/shop browser sessions held at once"})
    session_ttl: float = field(default=1800.0, metadata={"help": "seconds of inactivity after which a browser session expires"})

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}.")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}.")
        if self.session_ttl <= 0:
            raise ValueError(f"session_ttl must be > 0 seconds, got {self.session_ttl}.")
        if self.mlflow_ui and not self.mlflow_ui.startswith(("http://", "https://")):
            raise ValueError(f"mlflow_ui must be an http(s) URL, got {self.mlflow_ui!r}.")


CONFIG = (ExploreConfig,)


def build_app(config: ExploreConfig):
    """Resolve the label run, read its snapshots and build the explorer app (without serving it)."""
    setup_tracking()
    label = resolve_upstream("label", config.label_run, "label_run")
    run = MlflowClient().get_run(label.run_id)
    path = download_artifact(label.run_id, LABELED_SNAPSHOTS, f"label_run={config.label_run!r}")
    params = run.data.params
    table = SnapshotTable.from_jsonl(path, u_measure=params.get("u_measure", "entropy"))
    data_dir = config.data_dir or params.get("data_dir", "")
    shop = Shop.load(data_dir or None)
    max_steps = int(float(params.get("max_steps", 15)))
    log.info("label run %s: %d labeled snapshots; replays on %s", label.run_id, len(table),
             data_dir or "the embedded catalogue")
    return create_explorer_app(table, shop, run_id=label.run_id,
                               run_url=ui_url(run.info.experiment_id, label.run_id, config.mlflow_ui),
                               max_steps=max_steps, max_sessions=config.max_sessions,
                               session_ttl_s=config.session_ttl)


def main(argv: Sequence[str] | None = None) -> None:
    from werkzeug.serving import run_simple

    (config,) = parse_configs(CONFIG, argv, __doc__)
    app = build_app(config)
    if config.host not in LOOPBACK:
        log.warning("binding %s: anyone who can reach this machine can browse the labels", config.host)
    log.info("explorer at http://%s:%d/ (Ctrl-C to stop)", config.host, config.port)
    run_simple(config.host, config.port, app, threaded=True, use_debugger=False, use_reloader=False)


if __name__ == "__main__":
    run_cli(main)
