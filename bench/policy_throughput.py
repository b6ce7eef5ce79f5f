"""LM policy benchmark: valid actions scored per second, batched with the shared-prefix KV cache
(`LMPolicy.action_scores`, both candidate layouts: packed and expand) against the unbatched reference (`LMPolicy.score_unbatched`, one full
forward per action), on results and item pages of the embedded 1k catalogue reached by searching
each goal's instruction. Also greedy search queries written per second (batched). Prints a
Markdown table and the machine it ran on.

    python bench/policy_throughput.py                          # tiny Llama + SmolLM2 if installed
    python bench/policy_throughput.py --model PATH             # a trained student folder instead of the tiny Llama
    python bench/policy_throughput.py --contexts 64 --batch-size 8 --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from teachable.models import build_tiny_llama, load_model, train_bpe_tokenizer
from teachable.policy.lm import LMPolicy, instruction_query
from teachable.prompting import Context, context_from_env

if TYPE_CHECKING:
    from webshop_env.env import WebShopEnv


def collect_contexts(env: WebShopEnv, n: int) -> tuple[list[Context], list[Context]]:
    """`n` click contexts (results and item pages, alternating) and the search pages they came from."""
    clicks: list[Context] = []
    searches: list[Context] = []
    goal = 0
    while len(clicks) < n and goal < len(env.shop.goals):
        obs, info = env.reset(options={"goal_idx": goal})
        goal += 1
        searches.append(context_from_env(env, obs, info))
        search = f"search[{instruction_query(env.instruction_text)}]"
        obs, _, _, _, info = env.step(search)
        clicks.append(context_from_env(env, obs, info, history=(search,)))
        products = [a for a in info["valid_actions"] if a.startswith("click[b0")]
        if products and len(clicks) < n:
            obs, _, _, _, info = env.step(products[0])
            clicks.append(context_from_env(env, obs, info, history=(search, products[0])))
    return clicks, searches


def catalogue_texts(env: WebShopEnv) -> list[str]:
    texts = [f"{p['Title']} {' '.join(p.get('BulletPoints') or [])}" for p in env.shop.catalog.products]
    return texts + [g["instruction_text"] for g in env.shop.goals]


def tiny_policy(env: WebShopEnv, batch_size: int, device: str | None) -> tuple[str, LMPolicy]:
    tokenizer = train_bpe_tokenizer(catalogue_texts(env), vocab_size=4096)
    model = build_tiny_llama(tokenizer).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return "tiny Llama (untrained)", LMPolicy(model, tokenizer, batch_size=batch_size)


def timed(policy: LMPolicy, fn: Any, *args: Any) -> tuple[Any, float]:
    sync = torch.cuda.synchronize if policy.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    result = fn(*args)
    sync()
    return result, time.perf_counter() - start


def measure(label: str, policy: LMPolicy, clicks: list[Context], searches: list[Context],
            unbatched_contexts: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for layout in ("packed", "expand"):
        policy.candidate_layout = layout
        policy.action_scores(clicks[: policy.batch_size])  # warm-up: kernels, allocator
        scores, seconds = timed(policy, policy.action_scores, clicks)
        row[layout] = sum(len(s) for s in scores) / seconds
        row[f"{layout}_scores"] = scores
    policy.candidate_layout = "packed"
    subset = clicks[:unbatched_contexts]
    reference, seconds = timed(policy, lambda: [policy.score_unbatched(c) for c in subset])
    row["unbatched"] = sum(len(s) for s in reference) / seconds
    row["max_diff"] = max(abs(scores[a] - ref[a]) for layout in ("packed", "expand")
                          for scores, ref in zip(row[f"{layout}_scores"], reference, strict=False) for a in ref)
    _, seconds = timed(policy, policy.generate_queries, searches, None, True)
    row["queries"] = len(searches) / seconds

    prompt_tokens = [len(ids) for ids in policy.encode_prompts([policy.prompt(c) for c in clicks])]
    model = policy.model
    row.update({
        "model": label, "params": sum(p.numel() for p in model.parameters()), "device": str(policy.device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "contexts": len(clicks),
        "actions": sum(len(s) for s in row["packed_scores"]), "prompt_tokens": float(np.mean(prompt_tokens)),
    })
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=64, help="click contexts to score")
    parser.add_argument("--batch-size", type=int, default=16, help="contexts per forward pass")
    parser.add_argument("--unbatched-contexts", type=int, default=8, help="contexts scored by the slow reference")
    parser.add_argument("--model", default=None, help="a trained student folder (default: an untrained tiny Llama)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--no-smollm2", action="store_true", help="skip the SmolLM2-135M-Instruct row")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from webshop_env.env import WebShopEnv

    env = WebShopEnv()
    clicks, searches = collect_contexts(env, args.contexts)
    policies: list[tuple[str, LMPolicy]] = []
    if args.model:
        policies.append((args.model, LMPolicy.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)))
    else:
        policies.append(tiny_policy(env, args.batch_size, args.device))
    notes = []
    if not args.no_smollm2:
        try:
            model, tokenizer = load_model("smollm2", device=args.device)
            policies.append(("SmolLM2-135M-Instruct", LMPolicy(model, tokenizer, batch_size=args.batch_size)))
        except ModuleNotFoundError as err:
            notes.append(f"SmolLM2 skipped: {err}")
    rows = [measure(label, pol, clicks, searches, args.unbatched_contexts) for label, pol in policies]

    cpu = platform.processor() or platform.machine()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    print(f"\nmachine: {platform.system()} {cpu}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, torch threads {torch.get_num_threads()}; batch size {args.batch_size}\n")
    print("| model | params | device | dtype | contexts | actions | prompt tokens (mean) | batched, packed (actions/s) "
          "| batched, expand (actions/s) | unbatched (actions/s) | packed / unbatched | greedy queries/s | max abs diff |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.1f}M | {r['device']} | {r['dtype']} | {r['contexts']} | "
              f"{r['actions']} | {r['prompt_tokens']:.0f} | {r['packed']:,.0f} | {r['expand']:,.0f} | "
              f"{r['unbatched']:,.1f} | {r['packed'] / r['unbatched']:.1f}x | {r['queries']:,.1f} | {r['max_diff']:.1e} |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
