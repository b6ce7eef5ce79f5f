"""The student: the embedded tiny model trained from scratch, or a pretrained causal LM, behaviour-
cloned on expert play.

The expert plays train goals with some noise (with probability `noise` a uniformly random valid
action is taken instead, so the demonstrations visit off-course states too); every visited state
is labelled with the expert's action there. The model learns `prompt -> " " + action` with the
loss on the action tokens only (clicks are what `LMPolicy` scores, search queries what it
writes), through the one training path, TRL's `SFTTrainer` (`teachable.training.sft.fit`):

- `tiny` (the CPU default): a byte-level BPE tokenizer and a small Llama trained from scratch,
  every weight. Product ids are drawn afresh in every demonstration (`anonymize_products`), so
  the model cannot learn which id answers which goal and must read the page instead: copy the
  instruction into the query, open a result that matches, pick the options the instruction
  names, buy. That is what carries over to goals and catalogues it has not seen.
- a pretrained model (`smollm2`, a local folder, a cached hub id): a LoRA adapter is cloned
  onto it with the adapters' recipe; the student folder holds the adapter and a *reference* to
  the base (kind, id, revision, fingerprint), never a copy of it. With `epochs=0` the base is
  used as it is and the folder holds the reference alone.
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

from teachable.policy.base import RngLike, check_batch, rng_for
from teachable.policy.expert import ExpertPolicy
from teachable.policy.lm import LMPolicy
from teachable.prompting import (
    Context,
    action_text,
    completion_text,
    context_from_env,
    render_prompt,
)
from teachable.rollouts import (
    EpisodeSpec,
    goal_specs,
    run_episodes,
    sample_goals,
    step_context,
    summarize,
)
from teachable.seeding import derive_seed, seeded_rng
from webshop_env.env import Shop, WebShopEnv

log = logging.getLogger(__name__)
TINY = "tiny"
MAX_ID_TOKENS = 50_000  # catalogues up to this size get one token per product id


@dataclass
class StudentConfig:
    """The `student` phase: build and behaviour-clone the base student."""

    base_model: str = field(default=TINY, metadata={"help": "tiny (a new small Llama), smollm2, a local HF model folder, or a hub id in the local HF cache"})
    n_train_goals: int = field(default=700, metadata={"help": "train goals the expert demonstrates (all of them when the split has fewer; a warning says so)"})
    demonstrator: str = field(default="reader", metadata={"help": "whom the student clones: reader (sees only the page, as the student does) or expert (the oracle, which knows the goal's product; its student memorises ids)"})
    noise: float = field(default=0.3, metadata={"help": "probability of a random action in the demonstrations (labels stay the demonstrator's)"})
    synthetic_goals: int = field(default=0, metadata={"help": "also demonstrate this many synthetic goals (from the catalogue's attributes) with the same noise"})
    search_goals: int = field(default=3000, metadata={"help": "extra start-page search examples: the expert's query for train goals, then synthetic goals, then instructions made from product titles"})
    epochs: float = field(default=5.0, metadata={"help": "passes over the demonstrations (0: use the base model as it is)"})
    train_steps: int = field(default=-1, metadata={"help": "optimiser steps (overrides epochs when > 0)"})
    learning_rate: float = field(default=3e-3, metadata={"help": "learning rate of the tiny model (linear warm-up and decay)"})
    train_batch_size: int = field(default=16, metadata={"help": "demonstrations per optimiser step"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank when cloning onto a pretrained base (the adapters' recipe)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha when cloning onto a pretrained base"})
    lora_learning_rate: float = field(default=2e-3, metadata={"help": "learning rate of the LoRA clone of a pretrained base"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations when cloning a pretrained base (less GPU memory, slower)"})
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary of the tiny model"})
    hidden_size: int = field(default=128, metadata={"help": "width of the tiny model"})
    num_layers: int = field(default=4, metadata={"help": "layers of the tiny model"})
    num_heads: int = field(default=4, metadata={"help": "attention heads of the tiny model"})
    max_history: int = field(default=2, metadata={"help": "recent actions shown in the prompt"})
    anonymize_products: bool = field(default=False, metadata={"help": "swap product ids in each demonstration for random ones, so the student reads the page instead of memorising which id answers which goal"})
    list_actions: bool = field(default=True, metadata={"help": "list the valid actions in the prompt (a small model copies one)"})
    list_titles: bool = field(default=True, metadata={"help": "in the action list, show each product click after its title (choosing a product reads its title, not a memorised id)"})
    copy_queries: bool = field(default=True, metadata={"help": "write search queries from the task's own words: tokens outside the instruction are masked while the query is written"})
    alias_products: bool = field(default=True, metadata={"help": "name the products of a results page by their place (#1, #2, ...) in the prompt and the actions instead of their ids, so the student cannot memorise ids (teachable.prompting.product_aliases)"})
    few_shot: int = field(default=2, metadata={"help": "solved expert episodes shown in the prompt of a pretrained base (0: none; the tiny model never gets any)"})
    max_observation_chars: int = field(default=600, metadata={"help": "observations are cut to this many characters in the prompt (the action list carries the titles)"})
    eval_goals: int = field(default=64, metadata={"help": "held-out goals to measure the student (and the expert) on (0: none)"})
    eval_split: str = field(default="dev", metadata={"help": "split of the held-out goals: dev (default; test stays for the evaluation phase) or test"})
    max_steps: int = field(default=15, metadata={"help": "actions per episode"})
    device: str = field(default="", metadata={"help": "cpu, cuda, ... (empty: cuda when available)"})
    dtype: str = field(default="auto", metadata={"help": "weights of a pretrained base: auto (float32 on CPU, bfloat16 on CUDA), bfloat16, float16, float32"})
    device_map: str = field(default="auto", metadata={"help": "placement of a pretrained base on CUDA: auto (accelerate places it, sharded when needed), none, or a device"})
    attn_implementation: str = field(default="", metadata={"help": "attention of a pretrained base: sdpa, eager, flash_attention_2 (needs flash-attn); empty: the library's default"})
    seed: int = field(default=0, metadata={"help": "seed of goals, noise, initialisation and data order"})
    min_success: float = field(default=0.05, metadata={"help": "competence band: the least held-out success at which teachable moments can be measured (the student must succeed sometimes)"})
    max_success: float = field(default=0.95, metadata={"help": "competence band: the most held-out success at which teachable moments can be measured (the student must also fail)"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_success <= self.max_success <= 1.0:
            raise ValueError(f"the competence band needs 0 <= min_success ({self.min_success}) <= max_success "
                             f"({self.max_success}) <= 1.")
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must be in [0, 1), got {self.noise}.")
        if self.epochs < 0 or self.learning_rate <= 0 or self.lora_learning_rate <= 0:
            raise ValueError(f"epochs ({self.epochs}) must be >= 0 and the learning rates ({self.learning_rate}, "
                             f"{self.lora_learning_rate}) > 0.")
        if self.train_steps == 0 or self.train_steps < -1:
            raise ValueError(f"train_steps must be -1 (train for `epochs`) or >= 1, got {self.train_steps}.")
        if self.search_goals < 0 or self.few_shot < 0:
            raise ValueError(f"search_goals ({self.search_goals}) and few_shot ({self.few_shot}) must be >= 0.")
        for name in ("n_train_goals", "train_batch_size", "vocab_size", "hidden_size", "num_layers", "num_heads", "max_steps",
                     "lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.demonstrator not in DEMONSTRATORS:
            raise ValueError(f"demonstrator must be one of {', '.join(DEMONSTRATORS)}, got {self.demonstrator!r}.")
        if self.eval_split not in ("dev", "test"):
            raise ValueError(f"eval_split must be dev or test, got {self.eval_split!r}.")
        if self.eval_goals < 0 or self.max_history < 0:
            raise ValueError("eval_goals and max_history must be >= 0.")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}.")

    @property
    def trains(self) -> bool:
        """Whether the student is trained at all (a pretrained base with epochs=0 is used as it is)."""
        return self.base_model == TINY or self.epochs > 0 or self.train_steps > 0

    def loading(self) -> dict[str, Any]:
        """How a pretrained base is loaded (`teachable.models.load_model` arguments)."""
        return {"dtype": self.dtype, "device_map": self.device_map, "attn_implementation": self.attn_implementation or None}


DEMONSTRATORS = ("reader", "expert")


def demonstrator(name: str, shop: Shop) -> Any:
    """The policy the student clones: `reader` (sees only the page, `teachable.policy.reader`) or
    `expert` (the oracle, which knows the goal's product)."""
    if name == "reader":
        from teachable.policy.reader import PageReader

        return PageReader()
    if name == "expert":
        return ExpertPolicy(shop)
    raise ValueError(f"demonstrator must be one of {', '.join(DEMONSTRATORS)}, got {name!r}.")


class NoisyExpert:
    """A demonstrator (the expert by default), except that with probability `noise` it takes a
    uniformly random action."""

    def __init__(self, expert: Any, noise: float) -> None:
        self.expert, self.noise, self.name = expert, noise, f"{expert.name}+noise{noise:g}"

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
                   max_steps: int = 15, extra_goals: Sequence[dict] = (), by: str = "expert"
                   ) -> list[tuple[Context, str]]:
    """(context, demonstrator action) pairs from the demonstrator's noisy play on `goal_indices`
    (and on the goal dicts `extra_goals`), one per visited state; `by` names the demonstrator
    (`demonstrator`)."""
    expert = demonstrator(by, shop)
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
    order = seeded_rng(seed, 29).permutation(len(goals))[:n]
    return [goals[i] for i in sorted(order.tolist())]


def search_demonstrations(shop: Shop, n: int, seed: int, exclude: set[int] | frozenset[int] = frozenset(),
                          by: str = "expert") -> tuple[list[tuple[Context, str]], dict[str, int]]:
    """(start page, demonstrator's query) pairs: train goals not in `exclude`, then synthetic goals,
    then instructions made from product titles, `n` in all.

    Search is where a small model must learn to copy (the query is the instruction's words);
    start pages are short, so many of them cost little. A catalogue whose attribute file has no
    synthetic instructions (WebShop's real files for most products) gets instructions written
    from its product titles instead, with a warning.

    Returns:
        (the pairs, how many came from each source: `train`, `synthetic`, `titles`).
    """
    from webshop_env.catalog import CatalogError
    from webshop_env.goals import build_goals

    if n <= 0:
        return [], {"train": 0, "synthetic": 0, "titles": 0}
    goals = [shop.goals[i] for i in shop.split_goal_indices("train") if i not in exclude]
    sources = {"train": len(goals), "synthetic": 0, "titles": 0}
    if len(goals) < n:
        try:
            extra = build_goals(shop.catalog, human=False, goal_seed=seed)
        except CatalogError as e:
            extra = []
            log.warning("search_goals=%d: the catalogue has no synthetic goals (%s)", n, e)
        sources["synthetic"] = len(extra)
        goals += extra
    if len(goals) < n:
        titled = title_goals(shop, n - len(goals), seed)
        sources["titles"] = len(titled)
        log.warning("search_goals=%d: %d train and %d synthetic goals are available; %d more start pages get "
                    "instructions made from product titles", n, sources["train"], sources["synthetic"], len(titled))
        goals += titled
    order = seeded_rng(seed, 17).permutation(len(goals))[:n]
    picked = sorted(order.tolist())
    counts = {"train": sum(i < sources["train"] for i in picked),
              "synthetic": sum(sources["train"] <= i < sources["train"] + sources["synthetic"] for i in picked)}
    counts["titles"] = len(picked) - counts["train"] - counts["synthetic"]
    expert, env = demonstrator(by, shop), WebShopEnv(shop=shop)
    contexts = []
    for i in picked:
        obs, info = env.reset(options={"goal": goals[i]})
        contexts.append(context_from_env(env, obs, info))
    return list(zip(contexts, expert.act(contexts, np.random.default_rng(seed), greedy=True), strict=True)), counts


TITLE_LEADS = ("i am looking for", "i need", "find me", "i want to buy", "i would like", "show me", "get me", "looking for")


def title_goals(shop: Shop, n: int, seed: int) -> list[dict]:
    """`n` goals whose instructions are written from product titles (a lead, some title words and a
    price cap), on the structure of the shop's own goals: start pages to learn query writing on a
    catalogue without synthetic instructions. Only the instruction is read (the expert's query is
    the instruction without its price clause)."""
    products = shop.catalog.products
    if n <= 0 or not products or not shop.goals:
        return []
    rng = seeded_rng(seed, 37)
    out = []
    for k in range(n):
        product = products[int(rng.integers(len(products)))]
        words = re.sub(r"[^\w\s&'-]", " ", str(product.get("name", ""))).lower().split()
        if len(words) > 3:
            start = int(rng.integers(0, max(1, len(words) - 3)))
            words = words[start:start + int(rng.integers(3, 9))]
        lead = TITLE_LEADS[int(rng.integers(len(TITLE_LEADS)))]
        price = f", and price lower than {int(rng.integers(10, 200))}.00 dollars" if rng.random() < 0.8 else ""
        goal = dict(shop.goals[k % len(shop.goals)])
        goal["instruction_text"] = f"{lead} {' '.join(words)}{price}"
        out.append(goal)
    return out


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
        draw = rng.choice(len(pool), size=len(found), replace=False) if len(pool) <= MAX_ID_TOKENS else \
            _distinct(rng, len(pool), len(found))
        new = [pool[i] for i in draw]
        mapping = {**dict(zip(found, new, strict=True)), **{a.lower(): b.lower() for a, b in zip(found, new, strict=True)}}
        def swap(text: str, table: dict[str, str] = mapping) -> str:
            return pattern.sub(lambda match: table.get(match.group(0), match.group(0)), text)

        out.append((replace(ctx, observation=swap(ctx.observation), valid_actions=tuple(map(swap, ctx.valid_actions)),
                            history=tuple(map(swap, ctx.history))), swap(action)))
    return out


def _distinct(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """`k` distinct indices below `n`, drawn without a permutation of all `n` (catalogues reach 1.18M products)."""
    picked: dict[int, None] = {}
    while len(picked) < k:
        picked.setdefault(int(rng.integers(n)), None)
    return list(picked)


def build_student(config: StudentConfig, shop: Shop, pairs: Sequence[tuple[Context, str]]) -> LMPolicy:
    """The untrained student policy: a new tiny Llama (tokenizer trained on the prompts) or a loaded model."""
    settings = {"max_history": config.max_history, "max_observation_chars": config.max_observation_chars,
                "list_actions": config.list_actions, "list_titles": config.list_titles,
                "alias_products": config.alias_products, "copy_queries": config.copy_queries}
    if config.base_model != TINY:
        few_shot = few_shot_examples(shop, sample_goals(shop, "train", 8 * config.few_shot, config.seed + 1),
                                     config.few_shot, config.seed, by=config.demonstrator,
                                     alias_products=config.alias_products)
        return LMPolicy.from_pretrained(config.base_model, device=config.device or None, **config.loading(),
                                        few_shot=few_shot, **settings)
    from teachable.models import build_tiny_llama, resolve_device, train_bpe_tokenizer

    # a plain LM: the prompt needs no tokenizer, so the tokenizer can learn from the prompts
    rendering = {k: v for k, v in settings.items() if k != "copy_queries"}  # a decoding setting, not the prompt's
    prompts = [render_prompt(ctx, None, **rendering) + completion_text(action_text(ctx, action, config.alias_products))
               for ctx, action in pairs]
    # lower-cased text: a product id is the same token on the page (`B0XYZ`) and in its click
    # (`click[b0xyz]`), a title's words the same tokens as the instruction's
    tokenizer = train_bpe_tokenizer(tokenizer_texts(shop, prompts), vocab_size=config.vocab_size, lowercase=True)
    # one token per product id: a small model then copies an id with one attention step (its own
    # embedding, tied to the output) instead of spelling it out piece by piece
    asins = sorted({p["asin"].lower() for p in shop.catalog.products})
    if len(asins) <= MAX_ID_TOKENS:
        tokenizer.add_tokens(asins)
    else:  # an embedding per product would outgrow the model itself (1.18M products: 150M parameters)
        log.warning("the catalogue has %d products, more than %d: product ids are spelled in BPE pieces, not one "
                    "token each", len(asins), MAX_ID_TOKENS)
    longest = max((len(x) for x in tokenizer(prompts[:2000])["input_ids"]), default=256)
    model = build_tiny_llama(tokenizer, hidden_size=config.hidden_size, num_layers=config.num_layers,
                             num_heads=config.num_heads, intermediate_size=config.hidden_size * 3,
                             max_positions=max(1024, 2 ** math.ceil(math.log2(longest + 64))), seed=config.seed)
    model.to(resolve_device(config.device or None))
    return LMPolicy(model, tokenizer, **settings)


def few_shot_examples(shop: Shop, goal_indices: Sequence[int], n: int, seed: int, by: str = "expert",
                      alias_products: bool = False) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The first `n` episodes the demonstrator `by` solved on `goal_indices` (train goals; pass a few
    times `n`, as some fail), as (instruction, actions) pairs for a chat model's prompt (`few_shot`).
    Each action is written as the student writes it: a product click as its alias on its page with
    `alias_products`."""
    if n <= 0:
        return ()
    trajs = run_episodes(shop, demonstrator(by, shop), goal_specs(list(goal_indices), seed=seed, split="train"),
                         greedy=True)
    solved = [t for t in trajs if t.success][:n]
    return tuple((t.goal["instruction_text"],
                  tuple(action_text(step_context(t, i), s.action, alias_products) for i, s in enumerate(t.steps)))
                 for t in solved)


def clone_recipe(config: StudentConfig) -> Any:
    """The `LoraRecipe` of the LoRA clone of a pretrained base: the adapters' recipe, with the
    student's rank, alpha, learning rate (`lora_learning_rate`), epochs, steps and batch size."""
    from teachable.training.sft import LoraRecipe

    return LoraRecipe(lora_r=config.lora_r, lora_alpha=config.lora_alpha, learning_rate=config.lora_learning_rate,
                      epochs=config.epochs if config.epochs > 0 else 1.0, train_steps=config.train_steps,
                      train_batch_size=config.train_batch_size)


def sft_settings(config: StudentConfig) -> Any:
    """The `SFTSettings` of the student's behaviour cloning: every weight of the tiny model, or a
    LoRA adapter on a pretrained base (`clone_recipe`); both with warm-up, length grouping and
    long prompts."""
    from teachable.training.sft import SFTSettings

    trainer = {"seed": config.seed, "logging_steps": 10, "warmup": 0.05, "group_by_length": True, "max_length": 4096,
               "disable_tqdm": False}
    if config.base_model == TINY:
        return SFTSettings(method="full", learning_rate=config.learning_rate, weight_decay=0.01,
                           epochs=config.epochs if config.epochs > 0 else 1.0, max_steps=config.train_steps,
                           batch_size=config.train_batch_size, **trainer)
    return clone_recipe(config).sft_settings(**trainer, gradient_checkpointing=config.gradient_checkpointing)


def effective_sizes(config: StudentConfig, shop: Shop) -> dict[str, int]:
    """The sizes actually used where the catalogue offers less than asked (each one warned about)."""
    out = {}
    for name, split, asked in (("n_train_goals", "train", config.n_train_goals),
                               ("eval_goals", config.eval_split, config.eval_goals)):
        available = len(shop.split_goal_indices(split))
        if asked > available:
            log.warning("%s=%d: the %s split of this catalogue has only %d goals; using %d", name, asked, split,
                        available, available)
        out[name] = min(asked, available)
    return out


def train_student(config: StudentConfig, shop: Shop, out_dir: str | Path) -> dict[str, Any]:
    """Build the student, clone the expert, evaluate both on held-out goals, save to `out_dir`.

    Returns:
        Metrics: demonstrations, parameters, final loss, held-out success and score of the
        student (sampled at temperature 1 and greedy) and of the expert, `effective.<size>` for
        every size the catalogue cut down; `losses` is the logged training loss.
    """
    import time

    start = time.perf_counter()
    sizes = effective_sizes(config, shop)
    train_goals = sample_goals(shop, "train", config.n_train_goals, config.seed)
    pairs = demonstrations(shop, train_goals, noise=config.noise, seed=config.seed, max_steps=config.max_steps,
                           extra_goals=synthetic_goals(shop, config.synthetic_goals, config.seed), by=config.demonstrator)
    search_pairs, sources = search_demonstrations(shop, config.search_goals, config.seed, exclude=set(train_goals),
                                                  by=config.demonstrator)
    pairs += search_pairs
    policy = build_student(config, shop, pairs)
    metrics: dict[str, Any] = {"n_demonstrations": len(pairs), "n_train_goals": len(train_goals),
                               **{f"effective.{k}": v for k, v in sizes.items()},
                               **{f"search_examples.{k}": v for k, v in sources.items()},
                               "n_parameters": sum(p.numel() for p in policy.model.parameters())}
    out = Path(out_dir)
    if config.trains:
        if config.anonymize_products:
            asins = [p["asin"] for p in shop.catalog.products]
            pairs = anonymize_products(pairs, asins, seeded_rng(config.seed, 23))
        policy, fitted = clone_expert(config, policy, pairs, out)
        metrics.update(final_loss=fitted["train_loss"], train_steps=fitted["steps"], losses=fitted["losses"])
    elif config.base_model != TINY:
        save_reference(config, policy, out)
    metrics["train_seconds"] = time.perf_counter() - start
    metrics.update(evaluate_on_goals(shop, policy, config))
    return metrics


def clone_expert(config: StudentConfig, policy: LMPolicy, pairs: Sequence[tuple[Context, str]],
                 out: Path) -> tuple[LMPolicy, dict[str, Any]]:
    """Behaviour-clone `pairs` into the student through the one training path; save it to `out`.

    The tiny model is saved whole; a pretrained base gets a LoRA adapter saved beside a reference
    to the base (merged on load), so the student folder never holds a copy of the base.
    """
    from teachable.training.sft import fit

    examples = [(policy.prompt(ctx), policy.completion(ctx, action)) for ctx, action in pairs]
    model, fitted = fit(policy.model, policy.tokenizer, examples, out / "trainer", sft_settings(config))
    trained = replace_model(policy, model)
    if config.base_model == TINY:
        trained.save_pretrained(out)
    else:
        save_reference(config, trained, out)
        model.save_pretrained(out)  # the adapter alone
        trained = replace_model(trained, model.merge_and_unload())
    import shutil

    shutil.rmtree(out / "trainer", ignore_errors=True)
    return trained, fitted


def replace_model(policy: LMPolicy, model: Any) -> LMPolicy:
    """The same policy settings around another model."""
    return LMPolicy(model, policy.tokenizer, name=policy.name, temperature=policy.temperature,
                    batch_size=policy.batch_size, **policy.prompt_settings())


def save_reference(config: StudentConfig, policy: LMPolicy, out: Path) -> None:
    """A student folder that refers to its pretrained base: the reference, the tokenizer and the prompt settings."""
    from teachable.models import write_reference
    from teachable.policy.lm import save_prompt_settings

    write_reference(out, config.base_model)
    policy.tokenizer.save_pretrained(out)
    save_prompt_settings(out, **policy.prompt_settings())


def evaluate_on_goals(shop: Shop, policy: LMPolicy, config: StudentConfig) -> dict[str, float]:
    """Success and score of the student (sampled and greedy) and the expert on held-out goals."""
    if not config.eval_goals:
        return {}
    goals = sample_goals(shop, config.eval_split, config.eval_goals, config.seed)
    specs = goal_specs(goals, seed=config.seed, split=config.eval_split)
    out: dict[str, float] = {}
    for prefix, pol, greedy in (("heldout_", policy, False), ("heldout_greedy_", policy, True),
                                ("expert_", ExpertPolicy(shop), True)):
        s = summarize(run_episodes(shop, pol, specs, max_steps=config.max_steps, batch_size=32, greedy=greedy,
                                   progress=True))
        out.update({prefix + k: v for k, v in s.items() if k != "n_episodes"})
    out["n_eval_goals"] = len(goals)
    return out


def competence(rate: float | None, n_goals: int, min_success: float, max_success: float) -> dict[str, Any]:
    """Whether a held-out success rate lies in the band where teachable moments can be measured.

    Returns:
        `status` (in_band, too_weak, too_strong or unmeasured), the rate, its goals, the band,
        and `advice`, what to do when it is outside.
    """
    band = {"rate": rate, "n_goals": n_goals, "min_success": min_success, "max_success": max_success}
    if rate is None or n_goals == 0:
        return {**band, "status": "unmeasured", "advice": "measure the student on held-out goals (eval_goals > 0)"}
    if rate < min_success:
        return {**band, "status": "too_weak", "advice": (
            "a student that never succeeds has no leverage to measure: train longer (epochs), use a stronger base "
            "(base_model=smollm2 or a pretrained model), or more demonstrations (n_train_goals, search_goals)")}
    if rate > max_success:
        return {**band, "status": "too_strong", "advice": (
            "a student that never fails has no failures to learn from: use harder goals (another data_dir or split), "
            "fewer epochs, or a weaker base")}
    return {**band, "status": "in_band", "advice": ""}
