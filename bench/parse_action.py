"""Action parsing benchmark: `parse_action` against WebShop's regex on adversarial and ordinary
actions of growing length. Prints a Markdown table.

    python bench/parse_action.py                       # lengths 1k, 10k, 40k, 1M characters
    python bench/parse_action.py --regex-max 20000     # time the regex only up to 20k characters

The regex `(.+)\\[(.+)\\]` backtracks quadratically on text with many "[" and no "]" after
them; `parse_action` is linear. The regex is timed only up to `--regex-max` characters, since
at 1 MB it would run for hours.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from webshop_env.env import ACTION_RE, parse_action

INPUTS: dict[str, Callable[[int], str]] = {
    "x[ repeated": lambda n: "x[" * (n // 2),
    "x[ repeated, then ]": lambda n: "x[" * (n // 2 - 1) + "y]",
    "search[word word ...]": lambda n: "search[" + ("word " * n)[: n - 8] + "]",
}


def _regex(action: str) -> object:
    return ACTION_RE.match(action)


def best_seconds(fn: Callable[[str], object], action: str, repeat: int) -> float:
    """The fastest of `repeat` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(action)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="1000,10000,40000,1000000", help="action lengths in characters")
    ap.add_argument("--regex-max", type=int, default=40_000, help="longest action the regex is timed on")
    ap.add_argument("--repeat", type=int, default=3, help="calls per cell (the fastest is shown)")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    print(f"machine: {platform.machine()}, Python {platform.python_version()}\n")
    print("| input | length (chars) | parse_action (ms) | WebShop regex (ms) | results equal |")
    print("|---|---:|---:|---:|---|")
    for name, make in INPUTS.items():
        for n in lengths:
            action = make(n)
            ours = best_seconds(parse_action, action, args.repeat)
            if len(action) <= args.regex_max:
                theirs = best_seconds(_regex, action, 1)
                m = ACTION_RE.match(action)
                expected = (action, None) if m is None else (m.group(1), m.group(2).lower())
                regex_ms, equal = f"{theirs * 1e3:,.2f}", str(parse_action(action) == expected)
            else:
                regex_ms, equal = "(not run)", "-"
            print(f"| {name} | {len(action):,} | {ours * 1e3:,.3f} | {regex_ms} | {equal} |")


if __name__ == "__main__":
    main()
