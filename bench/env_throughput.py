"""Environment benchmark: `Shop.load` time and peak RSS on a built catalogue store, search
latency, env steps/s and state save/restore at several catalogue sizes, and the memory of two
processes sharing one store. Prints Markdown tables.

    python bench/env_throughput.py                 # 1k, 10k, 100k generated products
    python bench/env_throughput.py --sizes 1000    # just the embedded default size
    python bench/env_throughput.py --full          # adds WebShop's full size (1.18M products)
    python bench/env_throughput.py --sizes 1000 --full --full-dir /data/fullcat  # full files kept there

Each size is measured in a fresh process (spawned), after a first process has built the store
and the search index (once per content hash, as on a user's first run), so load time and peak
RSS are those of a worker starting on a node where both already exist. The sharing row starts
two such processes at once and reads each one's RSS and PSS (its proportional share of pages
mapped by several processes) from /proc while both hold the shop.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

FULL_SIZE = 1_181_436
GIB = 1 << 30


def catalog_dir(n: int, seed: int = 0, full_dir: Path | None = None) -> Path:
    from webshop_env.generate import generate_catalog
    from webshop_env.paths import default_catalog_dir

    out = full_dir if (full_dir is not None and n == FULL_SIZE) else default_catalog_dir(n, seed)
    if not (out / "catalog_meta.json").is_file():
        generate_catalog(out, n_products=n, seed=seed)
    return out


def episode_script(env, goal_idx: int) -> int:
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


def bench_steps(shop, episodes: int) -> tuple[float, float]:
    """(steps/s with every episode's search new, steps/s on the same episodes again).

    The second pass finds its searches in the engine's result cache and its products decoded,
    so it measures the environment itself; the first adds one uncached search per episode.
    """
    from webshop_env.env import WebShopEnv
    from webshop_env.reward import default_tagger

    default_tagger()  # loaded once per process (spaCy's model: about a second), not counted as steps
    env = WebShopEnv(shop=shop, max_steps=100)
    goals = [i % len(shop.goals) for i in range(episodes)]
    rates = []
    for _ in range(2):
        start, steps = time.perf_counter(), 0
        for g in goals:
            steps += episode_script(env, g)
        rates.append(steps / (time.perf_counter() - start))
    return rates[0], rates[1]


def bench_state(shop, reps: int = 5000) -> tuple[float, float, int]:
    from webshop_env.env import WebShopEnv

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


def bench_search(shop, n_queries: int = 300) -> tuple[float, float]:
    """p50 and p99 (ms) over distinct instruction queries, none of them in the result cache."""
    goals = shop.goals[: 4 * n_queries]  # goals are built on access: look at no more than needed
    queries = list(dict.fromkeys(g["instruction_text"].split(", and price")[0] for g in goals))
    queries = queries[:n_queries]  # distinct, and the shop is fresh: no result-cache hits
    shop.search_engine.search("warm up the compiled scorer", k=50)
    times = []
    for q in queries:
        t = time.perf_counter()
        shop.search_engine.search(q, k=50)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def memory() -> dict[str, float]:
    """This process's peak RSS, and RSS / PSS / shared now (GiB), from /proc."""
    out = {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}
    fields = {"Rss": "rss", "Pss": "pss", "Shared_Clean": "shared_clean", "Shared_Dirty": "shared_dirty"}
    with open("/proc/self/smaps_rollup", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                out[fields[name]] = int(rest.split()[0]) * 1024 / GIB
    return out


def worker(data_dir: str, episodes: int, with_env: bool, barrier=None) -> dict[str, Any]:
    """Load the shop (store and index already built) and measure; runs in a fresh process."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from webshop_env.env import Shop

    start = time.perf_counter()
    shop = Shop.load(data_dir)
    result: dict[str, Any] = {"products": len(shop.catalog), "load_s": time.perf_counter() - start}
    result["load_peak_rss"] = memory()["peak_rss"]
    result["search_p50_ms"], result["search_p99_ms"] = bench_search(shop)
    if with_env:
        result["steps_cold"], result["steps_warm"] = bench_steps(shop, episodes)
        result["get_state_us"], result["set_state_us"], result["state_bytes"] = bench_state(shop)
    if barrier is not None:
        barrier.wait()  # every process holds its shop now: measure while pages are shared
    result.update(memory())
    if barrier is not None:
        barrier.wait()
    return result


def _worker_entry(args: tuple, queue, barrier=None) -> None:
    queue.put(worker(*args, barrier=barrier))


def in_fresh_processes(data_dir: Path, episodes: int, with_env: bool, n: int = 1) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(n) if n > 1 else None
    procs = [ctx.Process(target=_worker_entry, args=((str(data_dir), episodes, with_env), queue, barrier))
             for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"benchmark process failed with exit code {p.exitcode}")
    return results


def prepare(data_dir: Path) -> float:
    """Build the store and the search index once (in its own process); return the seconds."""
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    p = ctx.Process(target=_load_once, args=(str(data_dir),))
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"building the store and index of {data_dir} failed (exit code {p.exitcode})")
    return time.perf_counter() - start


def _load_once(data_dir: str) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from webshop_env.env import Shop

    Shop.load(data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated catalogue sizes")
    parser.add_argument("--full", action="store_true", help="also WebShop's full size (1.18M products)")
    parser.add_argument("--full-dir", type=Path, default=None,
                        help="folder for the full-size files (generated there when missing)")
    parser.add_argument("--episodes", type=int, default=300, help="episodes of the step benchmark")
    parser.add_argument("--no-sharing", action="store_true", help="skip the two-process sharing row")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([FULL_SIZE] if args.full else [])
    rows = []
    for i, n in enumerate(sizes):
        t = time.perf_counter()
        data_dir = catalog_dir(n, full_dir=args.full_dir)
        gen = time.perf_counter() - t
        prep = prepare(data_dir)
        (r,) = in_fresh_processes(data_dir, args.episodes, with_env=(i == 0 or n == FULL_SIZE))
        rows.append({**r, "generate_s": gen, "prepare_s": prep, "data_dir": data_dir})
    cpu = platform.processor() or platform.machine()
    print(f"\nmachine: {platform.system()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| products | generate (s) | store + index, first use (s) | Shop.load (s) | load peak RSS (GiB) | "
          "search p50 (ms) | search p99 (ms) | env steps/s, new searches | env steps/s, repeated | "
          "get_state (µs) | set_state (µs) | state (bytes) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        env_cols = (f"{r['steps_cold']:,.0f} | {r['steps_warm']:,.0f} | {r['get_state_us']:.1f} | "
                    f"{r['set_state_us']:.1f} | {r['state_bytes']}" if "steps_cold" in r else "- | - | - | - | -")
        print(f"| {r['products']:,} | {r['generate_s']:.1f} | {r['prepare_s']:.1f} | {r['load_s']:.2f} | "
              f"{r['load_peak_rss']:.2f} | {r['search_p50_ms']:.2f} | {r['search_p99_ms']:.2f} | {env_cols} |")
    if args.no_sharing:
        return
    largest = rows[-1]
    (alone,) = in_fresh_processes(largest["data_dir"], args.episodes, with_env=False, n=1)
    pair = in_fresh_processes(largest["data_dir"], args.episodes, with_env=False, n=2)
    print(f"\nSharing one store and index ({largest['products']:,} products; plain processes, "
          "each loading the shop and running the search benchmark; GiB):\n")
    print("| processes | RSS per process | PSS per process | shared pages per process | total PSS |")
    print("|---:|---:|---:|---:|---:|")
    for label, group in (("1", [alone]), ("2", pair)):
        rss = statistics.mean(g["rss"] for g in group)
        pss = statistics.mean(g["pss"] for g in group)
        shared = statistics.mean(g["shared_clean"] + g["shared_dirty"] for g in group)
        print(f"| {label} | {rss:.2f} | {pss:.2f} | {shared:.2f} | {sum(g['pss'] for g in group):.2f} |")


if __name__ == "__main__":
    main()
