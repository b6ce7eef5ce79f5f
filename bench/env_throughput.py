"""Environment benchmark: env steps/s, state save/restore latency and size, search latency and
index build time at several catalogue sizes. Prints a Markdown table.

    python bench/env_throughput.py                 # 1k, 10k, 100k generated products
    python bench/env_throughput.py --sizes 1000    # just the embedded default size
    python bench/env_throughput.py --full          # adds WebShop's full size (1.18M products)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from webshop_env.catalog import load_catalog
from webshop_env.env import Shop, WebShopEnv
from webshop_env.generate import generate_catalog
from webshop_env.goals import build_goals
from webshop_env.paths import default_catalog_dir
from webshop_env.reward import NounTagger
from webshop_env.search import open_search_engine

FULL_SIZE = 1_181_436


def catalog_dir(n: int, seed: int = 0) -> Path:
    out = default_catalog_dir(n, seed)
    if not (out / "catalog_meta.json").is_file():
        generate_catalog(out, n_products=n, seed=seed)
    return out


def episode_script(env: WebShopEnv, goal_idx: int) -> int:
    """A fixed mixed script (search, paging, item, sub-pages, option, buy); returns steps taken."""
    _, info = env.reset(options={"goal_idx": goal_idx})
    words = env.instruction_text.split(",")[0].split()[:6]
    steps = 0
    for action in (f"search[{' '.join(words)}]", "click[next >]", "click[< prev]"):
        _, _, _, _, info = env.step(action)
        steps += 1
    asins = [p["asin"].lower() for p in env.page().products]
    if not asins:
        return steps
    script = [f"click[{asins[0]}]", "click[description]", "click[< prev]", "click[features]", "click[< prev]"]
    for action in script:
        _, _, _, _, info = env.step(action)
        steps += 1
    values = info["available_actions"]["clickables"][6:]
    for action in ([f"click[{values[0]}]"] if values else []) + ["click[buy now]"]:
        env.step(action)
        steps += 1
    return steps


def bench_steps(shop: Shop, episodes: int) -> float:
    env = WebShopEnv(shop=shop, max_steps=100)
    goals = [i % len(shop.goals) for i in range(episodes)]
    for g in goals[:20]:  # warm the search cache and the noun tagger as a long run would
        episode_script(env, g)
    start, steps = time.perf_counter(), 0
    for g in goals:
        steps += episode_script(env, g)
    return steps / (time.perf_counter() - start)


def bench_state(shop: Shop, reps: int = 5000) -> tuple[float, float, int]:
    env = WebShopEnv(shop=shop, max_steps=100)
    env.reset(options={"goal_idx": 0})
    env.step(f"search[{' '.join(env.instruction_text.split()[:6])}]")
    asin = next((p["asin"].lower() for p in env.page().products), None)
    if asin:  # the largest state: an item page with an option chosen
        _, _, _, _, info = env.step(f"click[{asin}]")
        values = info["available_actions"]["clickables"][6:]
        if values:
            env.step(f"click[{values[0]}]")
    state = env.get_state()
    fresh = WebShopEnv(shop=shop, max_steps=100)
    t0 = time.perf_counter()
    for _ in range(reps):
        env.get_state()
    t1 = time.perf_counter()
    for _ in range(reps):
        fresh.set_state(state)
    t2 = time.perf_counter()
    return (t1 - t0) / reps * 1e6, (t2 - t1) / reps * 1e6, len(state)


def bench_search(products: list[dict], content_hash: str, queries: list[str]) -> tuple[float, float, float]:
    open_search_engine(products[:50], "warm-up", cache_dir=None)  # imports and first-call set-up off the clock
    start = time.perf_counter()
    engine = open_search_engine(products, content_hash, cache_dir=None)
    build = time.perf_counter() - start
    times = []
    for q in queries:  # distinct queries: no result-cache hits
        t = time.perf_counter()
        engine.search(q, k=50)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return build, statistics.median(times), times[int(0.99 * (len(times) - 1))]


def row(n: int, episodes: int, with_env: bool) -> dict:
    t = time.perf_counter()
    data_dir = catalog_dir(n)
    gen = time.perf_counter() - t
    catalog = load_catalog(data_dir)
    goals = build_goals(catalog)
    queries = list(dict.fromkeys(g["instruction_text"].split(", and price")[0] for g in goals))[:300]
    build, p50, p99 = bench_search(catalog.products, catalog.content_hash, queries)
    result = {"products": len(catalog), "generate_s": gen, "index_build_s": build, "search_p50_ms": p50, "search_p99_ms": p99}
    if with_env:
        engine = open_search_engine(catalog.products, catalog.content_hash, cache_dir=None)
        shop = Shop(catalog=catalog, goals=goals, search_engine=engine, tagger=NounTagger("auto"))
        result["steps_per_s"] = bench_steps(shop, episodes)
        result["get_state_us"], result["set_state_us"], result["state_bytes"] = bench_state(shop)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated catalogue sizes")
    parser.add_argument("--full", action="store_true", help="also WebShop's full size (1.18M products)")
    parser.add_argument("--episodes", type=int, default=300, help="episodes of the step benchmark")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([FULL_SIZE] if args.full else [])
    rows = [row(n, args.episodes, with_env=(i == 0)) for i, n in enumerate(sizes)]
    cpu = platform.processor() or platform.machine()
    print(f"\nmachine: {platform.system()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| products | generate (s) | index build (s) | search p50 (ms) | search p99 (ms) | env steps/s | get_state (µs) | set_state (µs) | state (bytes) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        env_cols = (f"{r['steps_per_s']:,.0f} | {r['get_state_us']:.1f} | {r['set_state_us']:.1f} | {r['state_bytes']}"
                    if "steps_per_s" in r else "- | - | - | -")
        print(f"| {r['products']:,} | {r['generate_s']:.1f} | {r['index_build_s']:.2f} | {r['search_p50_ms']:.2f} | "
              f"{r['search_p99_ms']:.2f} | {env_cols} |")


if __name__ == "__main__":
    main()
