"""The embedded default student: a byte-level BPE tokenizer and a small Llama, trained from
scratch by behaviour cloning on expert play.

The expert plays train goals with some noise (with probability `noise` a uniformly random valid
action is taken instead, so the demonstrations visit off-course states too); every visited state
is labelled with the expert's action there. The model learns `prompt -> " " + action` with the
loss on the action tokens only: clicks are what `LMPolicy` scores, search queries what it writes.
Few goals and few epochs keep the student imperfect: it should succeed on roughly a third to
a half of held-out goals, so that both failures and successes exist.

Other base models (a local Hugging Face folder, or the `smollm2` preset) are cloned the same way
when `epochs > 0`, or used as they are with `epochs = 0`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from teachable.policy.base import RngLike, check_batch, rng_for
from teachable.policy.expert import ExpertPolicy
from teachable.policy.lm import LMPolicy
from teachable.prompting import Context, completion_text, context_from_env, render_prompt
from teachable.rollouts import (
    EpisodeSpec,
    derive_seed,
    goal_specs,
    run_episodes,
    sample_goals,
    step_context,
    summarize,
)
from webshop_env.env import Shop, WebShopEnv

log = logging.getLogger(__name__)
TINY = "tiny"


@dataclass
class StudentConfig:
    """The `student` phase: build and behaviour-clone the base student."""

    data_dir: str = field(default="", metadata={"help": "folder with WebShop's files; empty: the embedded generated catalogue"})
    base_model: str = field(default=TINY, metadata={"help": "tiny (a new small Llama), a local HF model folder, or smollm2"})
    n_train_goals: int = field(default=700, metadata={"help": "train goals the expert demonstrates"})
    noise: float = field(default=0.3, metadata={"help": "probability of a random action in the demonstrations (labels stay the expert's)"})
    synthetic_goals: int = field(default=0, metadata={"help": "also demonstrate this many synthetic goals (from the catalogue's attributes) with the same noise"})
    search_goals: int = field(default=3000, metadata={"help": "extra start-page search examples: the expert's query for train goals, then synthetic goals"})
    epochs: float = field(default=8.0, metadata={"help": "passes over the demonstrations (0: use the base model as it is)"})
    learning_rate: float = field(default=3e-3, metadata={"help": "AdamW learning rate (linear warm-up and decay)"})
    batch_size: int = field(default=16, metadata={"help": "examples per optimiser step"})
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary of the tiny model"})
    hidden_size: int = field(default=128, metadata={"help": "width of the tiny model"})
    num_layers: int = field(default=4, metadata={"help": "layers of the tiny model"})
    num_heads: int = field(default=4, metadata={"help": "attention heads of the tiny model"})
    max_history: int = field(default=2, metadata={"help": "recent actions shown in the prompt"})
    anonymize_products: bool = field(default=False, metadata={"help": "swap product ids in each demonstration for random ones (against memorising ids)"})
    list_actions: bool = field(default=True, metadata={"help": "list the valid actions in the prompt (a small model copies one)"})
    max_observation_chars: int = field(default=1000, metadata={"help": "observations are cut to this many characters in the prompt"})
    eval_goals: int = field(default=64, metadata={"help": "held-out goals to measure the student (and the expert) on (0: none)"})
    eval_split: str = field(default="dev", metadata={"help": "split of the held-out goals: dev (default; test stays for the evaluation phase) or test"})
    max_steps: int = field(default=15, metadata={"help": "actions per episode"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})
    seed: int = field(default=0, metadata={"help": "seed of goals, noise, initialisation and data order"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must be in [0, 1), got {self.noise}.")
        if self.epochs < 0 or self.learning_rate <= 0:
            raise ValueError(f"epochs ({self.epochs}) must be >= 0 and learning_rate ({self.learning_rate}) > 0.")
        if self.search_goals < 0:
            raise ValueError(f"search_goals must be >= 0, got {self.search_goals}.")
        for name in ("n_train_goals", "batch_size", "vocab_size", "hidden_size", "num_layers", "num_heads", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.eval_split not in ("dev", "test"):
            raise ValueError(f"eval_split must be dev or test, got {self.eval_split!r}.")
        if self.eval_goals < 0 or self.max_history < 0:
            raise ValueError("eval_goals and max_history must be >= 0.")


class NoisyExpert:
    """The expert, except that with probability `noise` it takes a uniformly random action."""

    def __init__(self, expert: ExpertPolicy, noise: float) -> None:
        self.expert, self.noise, self.name = expert, noise, f"expert+noise{noise:g}"

    def action_distribution(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        return self.expert.action_distribution(contexts)

    def act(self, contexts: Sequence[Context], rng: RngLike, greedy: bool = False) -> list[str]:
        check_batch(contexts, rng)
        planned = self.expert.act(contexts, rng, greedy=True)
        out = []
        for i, (ctx, action) in enumerate(zip(contexts, planned, strict=True)):
            r = rng_for(rng, i)
            if not greedy and ctx.valid_actions and not ctx.has_search_bar and r.random() < self.noise:
                action = ctx.valid_actions[int(r.integers(len(ctx.valid_actions)))]
            out.append(action)
        return out


def demonstrations(shop: Shop, goal_indices: Sequence[int], *, noise: float, seed: int,
                   max_steps: int = 15, extra_goals: Sequence[dict] = ()) -> list[tuple[Context, str]]:
    """(context, expert action) pairs from noisy expert play on `goal_indices` (and on the goal
    dicts `extra_goals`), one per visited state."""
    expert = ExpertPolicy(shop)
    specs = goal_specs(goal_indices, seed=seed, split="train") + [
        EpisodeSpec(traj_id=f"extra-{i}", seed=derive_seed(seed, 31, i), goal=dict(g)) for i, g in enumerate(extra_goals)]
    trajs = run_episodes(shop, NoisyExpert(expert, noise), specs, max_steps=max_steps, batch_size=64)
    contexts = [step_context(t, i) for t in trajs for i in range(t.n_steps)]
    labels = expert.act(contexts, np.random.default_rng(seed), greedy=True)
    log.info("%d demonstrations from %d episodes (%s)", len(contexts), len(trajs), summarize(trajs))
    return list(zip(contexts, labels, strict=True))


def synthetic_goals(shop: Shop, n: int, seed: int) -> list[dict]:
    """`n` synthetic goals of the catalogue (WebShop's attribute-based goals), drawn with `seed`."""
    from webshop_env.goals import build_goals

    if n <= 0:
        return []
    goals = build_goals(shop.catalog, human=False, goal_seed=seed)
    order = np.random.default_rng(derive_seed(seed, 29)).permutation(len(goals))[:n]
    return [goals[i] for i in sorted(order.tolist())]


def search_demonstrations(shop: Shop, n: int, seed: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[tuple[Context, str]]:
    """(start page, expert query) pairs: train goals not in `exclude`, then synthetic goals, `n` in all.

    Search is where a small model must learn to copy (the query is the instruction's words);
    start pages are short, so many of them cost little.
    """
    from webshop_env.goals import build_goals

    if n <= 0:
        return []
    goals = [shop.goals[i] for i in shop.split_goal_indices("train") if i not in exclude]
    try:
        goals += build_goals(shop.catalog, human=False, goal_seed=seed)
    except ValueError:  # a catalogue without the attribute file has no synthetic goals
        pass
    order = np.random.default_rng(derive_seed(seed, 17)).permutation(len(goals))[:n]
    expert, env = ExpertPolicy(shop), WebShopEnv(shop=shop)
    contexts = []
    for i in sorted(order.tolist()):
        obs, info = env.reset(options={"goal": goals[i]})
        contexts.append(context_from_env(env, obs, info))
    return list(zip(contexts, expert.act(contexts, np.random.default_rng(seed), greedy=True), strict=True))


def tokenizer_texts(shop: Shop, prompts: Sequence[str]) -> list[str]:
    """What the tiny model's tokenizer is trained on: the prompts it will read and the catalogue."""
    products = [f"{p.get('name', '')} {' '.join(v for vs in p.get('options', {}).values() for v in vs)}"
                for p in shop.catalog.products]
    return [*prompts, *products, *(g["instruction_text"] for g in shop.goals)]


def anonymize_products(pairs: Sequence[tuple[Context, str]], asins: Sequence[str],
                       rng: np.random.Generator) -> list[tuple[Context, str]]:
    """Each example with its product ids swapped for random other ids of the catalogue, consistently
    within the example (observation, valid actions, history and label).

    Behaviour cloning otherwise lets a small model memorise which id answers which goal; with ids
    drawn afresh it must copy the id of the product that matches from the page instead.
    """
    known = {a.upper() for a in asins}
    pattern = re.compile(r"\b[A-Za-z0-9]{10}\b")
    pool = sorted(known)
    out = []
    for ctx, action in pairs:
        texts = [ctx.observation, *ctx.valid_actions, *ctx.history, action]
        found = sorted({hit.upper() for t in texts for hit in pattern.findall(t) if hit.upper() in known})
        if not found:
            out.append((ctx, action))
            continue
        new = [pool[i] for i in rng.choice(len(pool), size=len(found), replace=False)]
        mapping = {**dict(zip(found, new, strict=True)), **{a.lower(): b.lower() for a, b in zip(found, new, strict=True)}}
        def swap(text: str, table: dict[str, str] = mapping) -> str:
            return pattern.sub(lambda match: table.get(match.group(0), match.group(0)), text)

        out.append((replace(ctx, observation=swap(ctx.observation), valid_actions=tuple(map(swap, ctx.valid_actions)),
                            history=tuple(map(swap, ctx.history))), swap(action)))
    return out


def encode_examples(policy: LMPolicy, pairs: Sequence[tuple[Context, str]]) -> list[tuple[list[int], int]]:
    """Token ids of `prompt + completion` and where the completion starts, tokenized as the policy scores them."""
    prompts = policy.encode_prompts([policy.prompt(ctx) for ctx, _ in pairs])
    completions = policy.encode_completions([completion_text(action) for _, action in pairs])
    return [(p + c, len(p)) for p, c in zip(prompts, completions, strict=True)]


def train_causal_lm(model: Any, examples: Sequence[tuple[list[int], int]], *, epochs: float, learning_rate: float,
                    batch_size: int, pad_id: int, seed: int) -> list[float]:
    """Train `model` on completion tokens only (AdamW, linear warm-up and decay); return the loss per step.

    Batches group examples of similar length (shuffled buckets) so padding stays small.
    """
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    n_steps = max(1, math.ceil(len(examples) * epochs / batch_size))
    warmup = max(1, n_steps // 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (n_steps - s) / max(1, n_steps - warmup))))
    model.train()
    losses: list[float] = []
    batches: list[np.ndarray] = []
    while len(losses) < n_steps:
        if not batches:
            batches = _length_batches([len(ids) for ids, _ in examples], batch_size, rng)
        batch = [examples[i] for i in batches.pop()]
        ids, labels, mask = _collate(batch, pad_id, device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if len(losses) % 50 == 0:
            log.info("step %d/%d loss %.4f", len(losses), n_steps, np.mean(losses[-50:]))
    model.eval()
    return losses


def _length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(len(lengths))
    chunks = [order[i:i + batch_size * 8] for i in range(0, len(order), batch_size * 8)]
    batches = []
    for chunk in chunks:
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _collate(batch: Sequence[tuple[list[int], int]], pad_id: int, device: torch.device):
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (seq, start) in enumerate(batch):
        ids[row, :len(seq)] = torch.tensor(seq)
        labels[row, start:len(seq)] = torch.tensor(seq[start:])
        mask[row, :len(seq)] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def build_student(config: StudentConfig, shop: Shop, pairs: Sequence[tuple[Context, str]]) -> LMPolicy:
    """The untrained student policy: a new tiny Llama (tokenizer trained on the prompts) or a loaded model."""
    settings = {"max_history": config.max_history, "max_observation_chars": config.max_observation_chars,
                "list_actions": config.list_actions}
    if config.base_model != TINY:
        return LMPolicy.from_pretrained(config.base_model, device=config.device or None, **settings)
    from teachable.models import build_tiny_llama, resolve_device, train_bpe_tokenizer

    # a plain LM: the prompt needs no tokenizer, so the tokenizer can learn from the prompts
    prompts = [render_prompt(ctx, None, **settings) + completion_text(action) for ctx, action in pairs]
    tokenizer = train_bpe_tokenizer(tokenizer_texts(shop, prompts), vocab_size=config.vocab_size)
    # one token per product id, as shown (upper case) and as clicked (lower case): a small model
    # then copies an id with one attention step instead of spelling it out piece by piece
    asins = sorted({p["asin"] for p in shop.catalog.products})
    tokenizer.add_tokens([*asins, *(a.lower() for a in asins)])
    longest = max((len(x) for x in tokenizer(prompts[:2000])["input_ids"]), default=256)
    model = build_tiny_llama(tokenizer, hidden_size=config.hidden_size, num_layers=config.num_layers,
                             num_heads=config.num_heads, intermediate_size=config.hidden_size * 3,
                             max_positions=max(1024, 2 ** math.ceil(math.log2(longest + 64))), seed=config.seed)
    model.to(resolve_device(config.device or None))
    return LMPolicy(model, tokenizer, **settings)


def train_student(config: StudentConfig, shop: Shop, out_dir: str | Path) -> dict[str, Any]:
    """Build the student, clone the expert, evaluate both on held-out goals, save to `out_dir`.

    Returns:
        Metrics: demonstrations, parameters, final loss, held-out success and score of the
        student (sampled at temperature 1 and greedy) and of the expert; `losses` is the
        loss of every training step.
    """
    train_goals = sample_goals(shop, "train", config.n_train_goals, config.seed)
    pairs = demonstrations(shop, train_goals, noise=config.noise, seed=config.seed, max_steps=config.max_steps,
                           extra_goals=synthetic_goals(shop, config.synthetic_goals, config.seed))
    pairs += search_demonstrations(shop, config.search_goals, config.seed, exclude=set(train_goals))
    policy = build_student(config, shop, pairs)
    metrics: dict[str, Any] = {"n_demonstrations": len(pairs), "n_train_goals": len(train_goals),
                                 "n_parameters": sum(p.numel() for p in policy.model.parameters())}
    if config.epochs > 0:
        if config.anonymize_products:
            asins = [p["asin"] for p in shop.catalog.products]
            pairs = anonymize_products(pairs, asins, np.random.default_rng(derive_seed(config.seed, 23)))
        examples = encode_examples(policy, pairs)
        losses = train_causal_lm(policy.model, examples, epochs=config.epochs, learning_rate=config.learning_rate,
                                 batch_size=config.batch_size, pad_id=policy._pad_id, seed=config.seed)
        metrics.update(final_loss=float(np.mean(losses[-20:])), train_steps=len(losses), losses=losses)
    metrics.update(evaluate_on_goals(shop, policy, config))
    policy.save_pretrained(out_dir)
    return metrics


def evaluate_on_goals(shop: Shop, policy: LMPolicy, config: StudentConfig) -> dict[str, float]:
    """Success and score of the student (sampled and greedy) and the expert on held-out goals."""
    if not config.eval_goals:
        return {}
    goals = sample_goals(shop, config.eval_split, config.eval_goals, config.seed)
    specs = goal_specs(goals, seed=config.seed, split=config.eval_split)
    out: dict[str, float] = {}
    for prefix, pol, greedy in (("heldout_", policy, False), ("heldout_greedy_", policy, True),
                                ("expert_", ExpertPolicy(shop), True)):
        s = summarize(run_episodes(shop, pol, specs, max_steps=config.max_steps, batch_size=32, greedy=greedy))
        out.update({prefix + k: v for k, v in s.items() if k != "n_episodes"})
    return out
