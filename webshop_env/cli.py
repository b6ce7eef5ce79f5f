"""Command line: `python -m webshop_env generate | realistic | index | play | serve`."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from webshop_env.catalog import DEFAULT_GENERATOR_SEED, DEFAULT_N_PRODUCTS, load_catalog
from webshop_env.paths import default_catalog_dir, index_cache_dir

DATA_DIR_HELP = "Folder with WebShop's files; empty for the generated default catalogue."


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress.")
def main(verbose: bool) -> None:
    """A fast WebShop text environment with state save/restore."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: the embedded default's cache folder).")
@click.option("--products", "n_products", type=click.IntRange(min=1), default=DEFAULT_N_PRODUCTS, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_GENERATOR_SEED, show_default=True)
@click.option("--categories", default="", help="Comma-separated category mix, e.g. beauty,food,toys "
              "(default: all categories).")
def generate(out: Path | None, n_products: int, seed: int, categories: str) -> None:
    """Write a synthetic catalogue in WebShop's file format."""
    from webshop_env.generate import category_mix, generate_catalog

    try:
        mix = category_mix(categories.split(",")) if categories.strip() else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--categories") from e
    out = out or default_catalog_dir(n_products, seed, mix)
    start = time.perf_counter()
    paths = generate_catalog(out, n_products=n_products, seed=seed, categories=mix)
    which = ", ".join(mix) if mix else "all categories"
    click.echo(f"wrote {n_products} products (seed {seed}, {which}) to {out} in {time.perf_counter() - start:.1f}s")
    for kind, path in paths.items():
        click.echo(f"  {kind}: {path}")


@main.command()
@click.option("--attributes", "attributes_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="WebShop's attribute file (items_ins_v2*.json); its records with an instruction become products.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--distractors", type=click.IntRange(min=0), default=2, show_default=True,
              help="Products of the same type per target that share only some of its attributes.")
def realistic(attributes_file: Path, out: Path, seed: int, distractors: int) -> None:
    """Write a catalogue in WebShop's real schema (products, attributes, human instructions)."""
    from webshop_env.catalog import CatalogError
    from webshop_env.realistic import build_real_schema_catalog

    start = time.perf_counter()
    try:
        paths = build_real_schema_catalog(attributes_file, out, seed=seed, distractors=distractors)
    except CatalogError as e:
        raise click.UsageError(str(e)) from e
    meta = json.loads((out / "catalog_meta.json").read_text())
    click.echo(f"wrote {meta['n_products']} products ({meta['n_targets']} with {meta['n_human_instructions']} human "
               f"instructions, seed {seed}) to {out} in {time.perf_counter() - start:.1f}s")
    for kind, path in paths.items():
        click.echo(f"  {kind}: {path}")


@main.command()
@click.option("--data-dir", default="", help=DATA_DIR_HELP)
@click.option("--backend", type=click.Choice(["bm25s", "pyserini"]), default="bm25s", show_default=True)
def index(data_dir: str, backend: str) -> None:
    """Build (or reuse) the search index of a catalogue."""
    from webshop_env.catalog import ensure_default_catalog
    from webshop_env.search import open_search_engine

    catalog = load_catalog(data_dir or ensure_default_catalog())
    start = time.perf_counter()
    open_search_engine(catalog.products, catalog.content_hash, backend=backend, cache_dir=index_cache_dir())
    click.echo(
        f"index ready for {len(catalog)} products (catalogue {catalog.content_hash}) in "
        f"{time.perf_counter() - start:.2f}s under {index_cache_dir()}"
    )


PLAY_HELP = """Commands: an action such as search[red shoes] or click[buy now]; 'actions' lists the
clickables; 'state' prints the saved state; 'reset' starts a new goal; 'quit' ends."""


@main.command()
@click.option("--data-dir", default="", help=DATA_DIR_HELP)
@click.option("--goal-idx", type=int, default=None, help="Goal to shop (default: drawn from --split).")
@click.option("--split", type=click.Choice(["test", "dev", "train"]), default="test", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for drawing goals.")
@click.option("--mode", type=click.Choice(["text", "text_rich"]), default="text", show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=15, show_default=True)
def play(data_dir: str, goal_idx: int | None, split: str, seed: int, mode: str, max_steps: int) -> None:
    """Shop a goal in the terminal, one action per line."""
    from webshop_env.env import WebShopEnv

    env = WebShopEnv(data_dir=data_dir or None, observation_mode=mode, max_steps=max_steps)
    options = {"goal_idx": goal_idx} if goal_idx is not None else {"split": split}
    obs, info = env.reset(seed=seed, options=options)
    click.echo(PLAY_HELP)
    _show(obs, info)
    while True:
        click.echo("> ", nl=False)
        line = sys.stdin.readline()
        cmd = line.strip()
        if not line or cmd in ("quit", "exit"):
            return
        if cmd == "actions":
            click.echo("\n".join(info["valid_actions"]) + ("\nsearch[...]" if info["search_allowed"] else ""))
        elif cmd == "state":
            click.echo(env.get_state().decode())
        elif cmd == "reset":
            obs, info = env.reset(options={"split": split})
            _show(obs, info)
        elif cmd:
            obs, info = _play_step(env, cmd, split)


def _play_step(env, cmd: str, split: str) -> tuple[str, dict]:
    obs, reward, terminated, truncated, info = env.step(cmd)
    _show(obs, info)
    if info["invalid_action"]:
        click.echo("(nothing happened: not a valid action here; type 'actions')")
    if terminated or truncated:
        detail = info["reward_info"] if terminated else "(step limit reached)"
        click.echo(f"episode over: reward {reward!r} {detail}")
        obs, info = env.reset(options={"split": split})
        click.echo("--- new goal ---")
        _show(obs, info)
    return obs, info


def _show(obs: str, info: dict) -> None:
    click.echo(f"\n[step {info['steps']}] {obs}\n")


@main.command()
@click.option("--data-dir", default="", help=DATA_DIR_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback exposes the shop to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--max-sessions", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most browser sessions (each holds one env) at once; the least recently used is dropped.")
@click.option("--session-ttl", type=click.FloatRange(min=1), default=1800.0, show_default=True,
              help="Seconds of inactivity after which a session expires.")
@click.option("--seed", type=int, default=None, help="Seed for random goals (default: fresh).")
def serve(data_dir: str, host: str, port: int, max_steps: int, max_sessions: int, session_ttl: float,
          seed: int | None) -> None:
    """Shop in a browser: serve the web UI (debug off)."""
    from werkzeug.serving import run_simple

    from webshop_env.web import LOOPBACK, create_app

    if host not in LOOPBACK:
        click.echo(f"warning: binding {host}: anyone who can reach this machine can use the shop.", err=True)
    app = create_app(data_dir=data_dir or None, max_steps=max_steps, max_sessions=max_sessions,
                     session_ttl_s=session_ttl, seed=seed)
    click.echo(f"shop at http://{host}:{port}/ (Ctrl-C to stop)")
    run_simple(host, port, app, threaded=True, use_debugger=False, use_reloader=False)


if __name__ == "__main__":
    main()
