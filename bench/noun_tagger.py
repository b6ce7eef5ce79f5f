"""How far the heuristic noun tagger departs from spaCy's on the embedded goals. Prints a table.

    pip install -e .[spacy]            # spaCy and an English model
    python bench/noun_tagger.py        # the embedded default catalogue (1,000 products)
    python bench/noun_tagger.py --data-dir DIR --top 10

The type reward (r_type) reads the nouns of the goal's product title and of the bought product's
title. For every goal this compares the two taggers on the goal title (its noun list) and on
purchases an agent could make: the goal's own product and the `--top` search results of the
goal's instruction, with r_type and the whole reward (the goal's options and price assumed
met, so r_type is what differs).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from webshop_env.env import Shop
from webshop_env.reward import NounTagger, get_reward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None, help="WebShop files; default: the embedded catalogue")
    ap.add_argument("--top", type=int, default=10, help="search results per goal taken as purchases")
    args = ap.parse_args()
    shop = Shop.load(args.data_dir, tagger_backend="heuristic")
    spacy_tagger, heuristic = NounTagger("spacy"), NounTagger("heuristic")
    products, goals = shop.catalog.products, shop.goals
    titles_differ = tokens = tokens_differ = 0
    pairs = type_differ = reward_differ = 0
    for goal in goals:
        a, b = heuristic.nouns(goal["name"]), spacy_tagger.nouns(goal["name"])
        titles_differ += a != b
        words = set(a) | set(b)
        tokens += len(words)
        tokens_differ += len(set(a) ^ set(b))
        candidates = dict.fromkeys([shop.catalog.asin_to_index[goal["asin"]], *shop.search(goal["instruction_text"])[: args.top]])
        for i in candidates:
            product = products[i]
            options = dict(zip(product["options"], (v[0] for v in product["options"].values()), strict=False))
            price = min(shop.catalog.prices[i], goal["price_upper"])
            r_h, info_h = get_reward(product, goal, price, options, verbose=True, tagger=heuristic)
            r_s, info_s = get_reward(product, goal, price, options, verbose=True, tagger=spacy_tagger)
            pairs += 1
            type_differ += info_h["r_type"] != info_s["r_type"]
            reward_differ += r_h != r_s
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, spaCy model {spacy_tagger.model_name}, "
          f"{len(products):,} products, {len(goals):,} goals\n")
    print("| measure | compared | differ | rate |")
    print("|---|---:|---:|---:|")
    print(f"| goal titles with another noun list | {len(goals):,} | {titles_differ:,} | {titles_differ / len(goals):.1%} |")
    print(f"| words tagged noun by one tagger only (per goal title) | {tokens:,} | {tokens_differ:,} | {tokens_differ / max(tokens, 1):.1%} |")
    print(f"| purchases (goal, product) with another r_type | {pairs:,} | {type_differ:,} | {type_differ / pairs:.1%} |")
    print(f"| purchases with another reward | {pairs:,} | {reward_differ:,} | {reward_differ / pairs:.1%} |")


if __name__ == "__main__":
    main()
