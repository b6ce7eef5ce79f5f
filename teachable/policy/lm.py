"""`LMPolicy`: a Hugging Face causal LM (optionally with a LoRA adapter) as a WebShop policy.

Clicks are chosen by scoring: the score of an action is the log-probability of its completion
text (`LMPolicy.completion(ctx, action)`: ` click[...]`, a product by its alias under `alias_products`) given the prompt, summed over its tokens,
and the distribution is the softmax of the scores over the page's valid clicks at the policy's
temperature. Scoring is batched: one forward pass over the (deduplicated, left-padded) prompts of
a chunk of contexts fills a KV cache, then one forward pass over every candidate completion of
every context in the chunk reuses that cache: either all of a prompt's candidates packed into its
row under a block-diagonal causal mask (`candidate_layout="packed"`, the default: no copy of the
cache) or one row per candidate after repeating the prompt's cache rows (`"expand"`).
`score_unbatched` is the slow reference both are tested against.

On a page with a search bar the policy writes the query: incremental decoding after the forced
completion prefix ` search[`, stopping at `]`, a newline, the end-of-sequence token or
`max_query_tokens`. The text is parsed with a regex, never executed.

Prompt and completion are tokenized separately and their ids concatenated, so the token boundary
is the same in every path (scoring, generation and, for training code that follows this
module's `encode_prompts` / `encode_completions`, supervision).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from teachable.policy.base import RngLike, check_batch, instruction_query, rng_for, sample_action
from teachable.prompting import (
    DEFAULT_HISTORY,
    Context,
    action_text,
    completion_text,
    product_aliases,
    render_prompt,
)

logger = logging.getLogger(__name__)

SETTINGS_FILE = "teachable_policy.json"
SETTINGS_SCHEMA_VERSION = 1
PROMPT_SETTINGS = ("max_history", "list_actions", "max_observation_chars", "few_shot", "list_titles", "alias_products",
                   "copy_queries")
QUERY_PREFIX = "search["
QUERY_RE = re.compile(r"search\[([^\]\n]*)")
CANDIDATE_LAYOUTS = ("packed", "expand")
HEAD_CHUNK_TOKENS = 512  # rows of the output projection computed at once (bounds the logits' memory)
PROMPT_RESERVE_TOKENS = 64  # positions kept free after a prompt for the action scored or written


def save_prompt_settings(path: str | Path, *, max_history: int = DEFAULT_HISTORY, list_actions: bool = False,
                         max_observation_chars: int | None = None,
                         few_shot: Sequence[tuple[str, Sequence[str]]] = (), list_titles: bool = False,
                         alias_products: bool = False, copy_queries: bool = False) -> Path:
    """Write the prompt settings a model was trained with into `path/teachable_policy.json`.

    `LMPolicy.from_pretrained` reads them back, so a model is prompted the way it was trained.

    Returns:
        The path of the written file.
    """
    out = Path(path) / SETTINGS_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"schema_version": SETTINGS_SCHEMA_VERSION, "max_history": int(max_history),
                "list_actions": bool(list_actions), "max_observation_chars": max_observation_chars,
                "few_shot": [[instruction, list(actions)] for instruction, actions in few_shot],
                "list_titles": bool(list_titles), "alias_products": bool(alias_products),
                "copy_queries": bool(copy_queries)}
    out.write_text(json.dumps(settings, indent=2) + "\n")
    return out


def load_prompt_settings(path: str | Path) -> dict[str, Any]:
    """The prompt settings saved in folder `path` (empty when it has none).

    Raises:
        ValueError: when the file was written by a newer version of this code.
    """
    file = Path(path).expanduser() / SETTINGS_FILE
    if not file.is_file():
        return {}
    data = json.loads(file.read_text())
    version = data.get("schema_version", SETTINGS_SCHEMA_VERSION)
    if version > SETTINGS_SCHEMA_VERSION:
        raise ValueError(f"{file} has schema_version {version}, newer than this code reads "
                         f"({SETTINGS_SCHEMA_VERSION}); update teachable.")
    out = {k: data[k] for k in PROMPT_SETTINGS if k in data}
    if "few_shot" in out:
        out["few_shot"] = tuple((str(instruction), tuple(actions)) for instruction, actions in out["few_shot"])
    return out


def saved_settings(name_or_path: str, adapter: str | None = None) -> dict[str, Any]:
    """The prompt settings saved with a model folder, updated by its adapter's (none for a hub id)."""
    saved = load_prompt_settings(name_or_path) if Path(name_or_path).expanduser().is_dir() else {}
    if adapter is not None:
        saved.update(load_prompt_settings(adapter))
    return saved


PLACEHOLDER_RE = re.compile(r"^\s*<[^<>]*>\s*$|^\W*$|^(?:your |the |a )?(?:query|search query|keywords?|words?|"
                            r"search terms?|words to look for|\.\.\.|…)$", re.IGNORECASE)


# words of the page's own markup: a query of nothing else was copied from the page's layout
MARKUP_WORDS = frozenset({"sep", "search", "instruction", "instruction:", "webshop", "action", "action:", "query"})


def is_placeholder(query: str) -> bool:
    """Whether a written query is empty, a placeholder (`<query>`, `...`, `keywords`) or the page's
    markup (`SEP`) rather than words to look for."""
    if PLACEHOLDER_RE.match(query) or ("<" in query and ">" in query):
        return True
    return all(word.strip("[]():") in MARKUP_WORDS for word in query.lower().split())


def parse_query(generated: str) -> str:
    """The query in `search[` + `generated`: cut at the first `]` or newline, with `[` and
    unprintable characters turned into spaces (the env reads `search[<query>]` with a regex that a
    `[` inside the query would confuse) and whitespace collapsed."""
    match = QUERY_RE.match(QUERY_PREFIX + generated)
    if not match:
        return ""
    return " ".join("".join(ch if ch.isprintable() and ch != "[" else " " for ch in match.group(1)).split())


def _context_key(prompt: str, actions: Sequence[str]) -> bytes:
    """A 16-byte digest of a prompt and its valid actions: the memo holds digests, not prompts."""
    return hashlib.blake2b("\x00".join((prompt, *actions)).encode(), digest_size=16).digest()


class PromptRenderer:
    """How a model is prompted and what it completes: its prompt settings, its tokenizer and its
    number of positions, without its weights (`from_pretrained` reads the tokenizer and the config
    only), so supervision can be rendered for a base model as `LMPolicy` would, at no load cost.

    Args:
        tokenizer: the model's tokenizer; with a chat template, prompts go through it.
        max_positions: the model's positions (`max_position_embeddings`); a longer prompt is cut.
        max_history, list_actions, max_observation_chars, few_shot, list_titles, alias_products,
            copy_queries: the prompt settings (see `LMPolicy`).
    """

    def __init__(self, tokenizer: Any, *, max_positions: int | None = None, max_history: int = DEFAULT_HISTORY,
                 list_actions: bool = False, max_observation_chars: int | None = None,
                 few_shot: Sequence[tuple[str, Sequence[str]]] = (), list_titles: bool = False,
                 alias_products: bool = False, copy_queries: bool = False) -> None:
        self.tokenizer = tokenizer
        self.max_history = max_history
        self.list_actions = list_actions
        self.list_titles = list_titles
        self.alias_products = alias_products
        self.copy_queries = copy_queries
        self.max_observation_chars = max_observation_chars
        self.few_shot = tuple((str(i), tuple(a)) for i, a in few_shot)
        self._is_chat = bool(getattr(tokenizer, "chat_template", None))
        self._max_positions = max_positions
        self.prompt_stats = {"cut": 0}

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, adapter: str | None = None, **settings: Any) -> PromptRenderer:
        """The renderer of a model reference (see `teachable.models.model_folder`): its tokenizer,
        its positions and its saved prompt settings (then the adapter's, then `settings`), as
        `LMPolicy.from_pretrained` would prompt it."""
        from teachable.models import load_tokenizer

        tokenizer, max_positions = load_tokenizer(name_or_path)
        saved = saved_settings(name_or_path, adapter)
        return cls(tokenizer, max_positions=max_positions,
                   **{k: v for k, v in {**saved, **settings}.items() if k in PROMPT_SETTINGS})

    def prompt(self, ctx: Context) -> str:
        """The prompt this policy shows the model for `ctx`.

        A prompt that would not fit the model's positions (with room for the action) is rendered
        again with the observation cut shorter, never passed on too long; each cut is counted in
        `prompt_stats["cut"]` and the first one logged.
        """
        text = self._render(ctx, self.max_observation_chars)
        limit = (self._max_positions or 0) - PROMPT_RESERVE_TOKENS
        # a token is at least one character except for multi-byte text, so short prompts need no count
        if limit <= 0 or len(text) <= limit:
            return text
        n_tokens = len(self.encode_prompts([text])[0])
        if n_tokens <= limit:
            return text
        chars = min(len(ctx.observation), self.max_observation_chars or len(ctx.observation))
        while n_tokens > limit and chars > 0:
            chars = int(chars * limit / n_tokens * 0.95)
            text = self._render(ctx, chars)
            n_tokens = len(self.encode_prompts([text])[0])
        self.prompt_stats["cut"] += 1
        if self.prompt_stats["cut"] == 1:
            logger.warning("a prompt exceeded the model's %d positions; its observation was cut to %d characters "
                           "(counted in prompt_stats['cut']; lower max_observation_chars or max_history to avoid it)",
                           self._max_positions, chars)
        return text

    def _render(self, ctx: Context, max_observation_chars: int | None) -> str:
        return render_prompt(ctx, self.tokenizer, max_history=self.max_history, list_actions=self.list_actions,
                             max_observation_chars=max_observation_chars, few_shot=self.few_shot,
                             list_titles=self.list_titles, alias_products=self.alias_products)

    def completion(self, ctx: Context, action: str) -> str:
        """The completion this policy is scored for, and trained on, when it takes `action` at `ctx`
        (` <action>`, with the product's alias in place of its id under `alias_products`)."""
        return completion_text(action_text(ctx, action, self.alias_products))

    def completions(self, ctx: Context) -> dict[str, str]:
        """`completion(ctx, a)` of every valid action of `ctx` (the page's aliases found once)."""
        aliases = product_aliases(ctx) if self.alias_products else {}
        return {a: completion_text(aliases.get(a, a)) for a in ctx.valid_actions}

    def prompt_settings(self) -> dict[str, Any]:
        """How this policy renders prompts (`save_prompt_settings`' keywords)."""
        return {"max_history": self.max_history, "list_actions": self.list_actions,
                "max_observation_chars": self.max_observation_chars, "few_shot": self.few_shot,
                "list_titles": self.list_titles, "alias_products": self.alias_products,
                "copy_queries": self.copy_queries}

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of prompts (`<bos>` added by a plain tokenizer; chat templates carry their own)."""
        return self._encode(prompts, add_special_tokens=not self._is_chat)

    def encode_completions(self, completions: Sequence[str]) -> list[list[int]]:
        """Token ids of completions (no special tokens), to be appended to the prompt's ids."""
        return self._encode(completions, add_special_tokens=False)

    def _encode(self, texts: Sequence[str], add_special_tokens: bool) -> list[list[int]]:
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]]


class LMPolicy(PromptRenderer):
    """A causal LM that clicks by scoring the valid actions and writes search queries.

    Args:
        model: a Hugging Face causal LM (or a `peft.PeftModel` around one), on any device.
        tokenizer: its tokenizer; with a chat template, prompts go through it.
        name: the policy's name in records.
        temperature: softmax temperature of the click distribution and of query sampling;
            0 means greedy (argmax).
        max_history: how many recent actions the prompt shows.
        list_actions: list the valid actions in the prompt.
        max_observation_chars: cut longer observations in the prompt.
        max_query_tokens: the most tokens of a generated query.
        batch_size: contexts per forward pass (at most).
        max_padding: a forward pass of prompts is cut short before its padding would exceed this
            fraction of its real tokens (prompts go in by length). None: 0.25 on a CPU, where
            the cost follows the padded tokens, and no limit elsewhere, where fuller passes pay.
        memoize: let `memoized_scores` blocks (rollouts, labeling) reuse the scores of contexts
            seen before; False scores every context afresh (a baseline for benchmarks).
        candidate_layout: how the candidate pass reuses the prompts' KV cache. "packed" (default):
            one row per prompt with all its candidates back to back under a block-diagonal
            causal mask; the cache is used as is (needs "sdpa" or "eager" attention).
            "expand": one row per candidate after a copy of its prompt's cache rows; works with
            any attention, but memory grows with batch_size x candidates x prompt length and
            the copies dominate on CPU (see bench/policy_throughput.py).

    Raises:
        ValueError: for a negative temperature, a non-positive batch_size / max_query_tokens, an
            unknown candidate_layout, or "packed" with an attention that takes no custom mask.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "student", temperature: float = 1.0,
                 max_history: int = DEFAULT_HISTORY, list_actions: bool = False,
                 max_observation_chars: int | None = None, max_query_tokens: int = 24,
                 batch_size: int = 16, candidate_layout: str = "packed", max_padding: float | None = None,
                 memoize: bool = True, few_shot: Sequence[tuple[str, Sequence[str]]] = (),
                 query_attempts: int = 3, list_titles: bool = False, alias_products: bool = False,
                 copy_queries: bool = False) -> None:
        if temperature < 0:
            raise ValueError(f"temperature={temperature} must be >= 0 (0 is greedy).")
        if max_padding is not None and max_padding < 0:
            raise ValueError(f"max_padding={max_padding} must be >= 0 (or None: chosen by device).")
        if batch_size < 1 or max_query_tokens < 1 or query_attempts < 1:
            raise ValueError(f"batch_size={batch_size}, max_query_tokens={max_query_tokens} and "
                             f"query_attempts={query_attempts} must be >= 1.")
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        super().__init__(tokenizer, max_positions=getattr(base.config, "max_position_embeddings", None),
                         max_history=max_history, list_actions=list_actions,
                         max_observation_chars=max_observation_chars, few_shot=few_shot, list_titles=list_titles,
                         alias_products=alias_products, copy_queries=copy_queries)
        self.model = model.eval()
        self.name = name
        self.temperature = float(temperature)
        self.max_query_tokens = max_query_tokens
        self.batch_size = batch_size
        self.max_padding = max_padding
        self.memoize = memoize
        self.query_attempts = query_attempts
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = int(pad) if pad is not None else 0
        self._eos_id = tokenizer.eos_token_id
        self._decoder = base.get_decoder()
        # the KV-cache argument is `cache` in recent transformers and `past_key_values` before
        self._cache_kw = "cache" if "cache" in inspect.signature(self._decoder.forward).parameters else "past_key_values"
        self._head = base.get_output_embeddings()
        self._softcap = getattr(base.config, "final_logit_softcapping", None)
        if candidate_layout not in CANDIDATE_LAYOUTS:
            raise ValueError(f"candidate_layout={candidate_layout!r}; use one of {CANDIDATE_LAYOUTS}.")
        attention = getattr(base.config, "_attn_implementation", None) or "eager"
        if candidate_layout == "packed" and attention not in ("sdpa", "eager"):
            raise ValueError(f"candidate_layout='packed' needs 'sdpa' or 'eager' attention, the model uses "
                             f"{attention!r}; pass candidate_layout='expand'.")
        self.candidate_layout = candidate_layout
        self._warned_long = False
        self._memo: dict[bytes, dict[str, float]] | None = None
        self._memo_limit = 0
        # contexts asked to score and contexts actually scored (the rest were identical or memoized)
        self.score_stats = {"asked": 0, "scored": 0}
        # queries written; rewritten because the first was empty or a placeholder; replaced by the
        # instruction's first words after `query_attempts`; prompts cut to fit the model's positions
        self.query_stats = {"written": 0, "rewritten": 0, "fallback": 0}

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, adapter: str | None = None, device: str | None = None,
                        dtype: str | None = None, device_map: str | None = None,
                        attn_implementation: str | None = None, **settings: Any) -> LMPolicy:
        """Load a model (see `teachable.models.load_model`) as a policy.

        Prompt settings come from `teachable_policy.json` in the model folder, then from the
        adapter folder, then from `settings` (each later one wins).

        Args:
            name_or_path: a model reference (see `teachable.models.model_folder`).
            adapter: a LoRA adapter folder.
            device: the device (default: cuda when available, else cpu).
            dtype: "auto", "float32", "bfloat16" or "float16" (default: float32 on CPU, bfloat16 on CUDA).
            device_map, attn_implementation: as in `teachable.models.load_model`. With
                flash_attention_2 the candidates are scored in the "expand" layout.
            **settings: any `LMPolicy` keyword argument.
        """
        from teachable.models import load_model

        model, tokenizer = load_model(name_or_path, device=device, dtype=dtype, adapter=adapter,
                                      device_map=device_map, attn_implementation=attn_implementation)
        saved = saved_settings(name_or_path, adapter)
        if attn_implementation == "flash_attention_2":
            saved.setdefault("candidate_layout", "expand")
        return cls(model, tokenizer, **{**saved, **settings})

    def save_pretrained(self, path: str | Path) -> Path:
        """Save the model (only the adapter for a `PeftModel`), the tokenizer and the prompt settings."""
        out = Path(path)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        save_prompt_settings(out, **self.prompt_settings())
        return out

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- model calls -------------------------------------------------------------------------

    def _log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-softmax over the vocabulary of the model's head applied to hidden states (float32)."""
        logits = self._head(hidden).float()
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return torch.log_softmax(logits, dim=-1)

    def _check_length(self, n_tokens: int) -> None:
        if self._max_positions and n_tokens > self._max_positions and not self._warned_long:
            self._warned_long = True
            logger.warning("a prompt of %d tokens exceeds the model's %d positions; consider max_observation_chars "
                           "or max_history", n_tokens, self._max_positions)

    def _prefill(self, sequences: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run left-padded `sequences` through the decoder with a fresh KV cache.

        Returns:
            (cache, log-probs of the next token after each sequence (B, V), the attention mask
            (B, L), each sequence's length (B,)).
        """
        dev = self.device
        width = max(len(s) for s in sequences)
        self._check_length(width)
        ids = torch.full((len(sequences), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for r, seq in enumerate(sequences):
            ids[r, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[r, width - len(seq):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self._decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        return getattr(out, self._cache_kw), self._log_probs(out.last_hidden_state[:, -1]), mask, mask.sum(-1)

    # ---- scoring -----------------------------------------------------------------------------

    @contextmanager
    def memoized_scores(self, max_entries: int = 200_000) -> Iterator[None]:
        """Within this block, action scores are computed once per distinct (prompt, valid actions).

        Branches of one snapshot keep meeting the same pages with the same history (every
        branch of a condition starts from the same prompt, every adaptive round again), so a
        labeling batch scores far fewer distinct contexts than it asks for. Use it only while
        the weights stay fixed: rollouts and labeling hold it for one call. Nested blocks share
        the outer memo; past `max_entries` it starts over.
        """
        if self._memo is not None or not self.memoize:
            yield
            return
        self._memo, self._memo_limit = {}, max_entries
        try:
            yield
        finally:
            self._memo = None

    def action_scores(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        """For each context, the summed log-probability of each valid action's completion.

        Identical contexts in the call (and, inside `memoized_scores`, contexts scored before)
        are computed once.

        Returns:
            One dict per context, `{action: log p(completion_text(action) | prompt)}` in the
            order of `valid_actions` (empty for a context without valid actions).
        """
        prompts = [self.prompt(ctx) for ctx in contexts]
        # the key holds each action's completion: under aliases equal prompts may name other ids
        completion_of = [self.completions(ctx) for ctx in contexts]
        keys = [_context_key(p, [f"{a}\t{text}" for a, text in texts.items()])
                for p, texts in zip(prompts, completion_of, strict=True)]
        memo = self._memo if self._memo is not None else {}
        if self._memo is not None and len(memo) > self._memo_limit:
            memo.clear()
        todo: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in memo:
                todo.setdefault(key, i)
        # chunks of prompts of similar length pad less (a batch mixing many snapshots' branches
        # has prompts of many lengths), and a prompt with several action sets shares one row
        first = list(todo.values())
        ids = dict(zip(first, self.encode_prompts([prompts[i] for i in first]), strict=True))
        order = sorted(first, key=lambda i: (len(ids[i]), prompts[i]))
        self.score_stats["asked"] += len(contexts)
        self.score_stats["scored"] += len(order)
        with torch.inference_mode():
            for chunk in self._chunks(order, [len(ids[i]) for i in order]):
                scores = self._score_chunk([completion_of[i] for i in chunk], [prompts[i] for i in chunk],
                                           [ids[i] for i in chunk])
                for i, score in zip(chunk, scores, strict=True):
                    memo[keys[i]] = score
        return [dict(memo[key]) for key in keys]

    def _chunks(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut `order` (sorted by prompt length, `lengths` in tokens) into forward passes of
        at most `batch_size` prompts whose padding stays within `max_padding`."""
        limit = self.max_padding if self.max_padding is not None else (0.25 if self.device.type == "cpu" else math.inf)
        chunks: list[list[int]] = []
        chunk: list[int] = []
        real = 0
        for i, n in zip(order, lengths, strict=True):
            if chunk and (len(chunk) >= self.batch_size or n * (len(chunk) + 1) > (1 + limit) * (real + n)):
                chunks.append(chunk)
                chunk, real = [], 0
            chunk.append(i)
            real += n
        return chunks + [chunk] if chunk else chunks

    def _score_chunk(self, completion_of: Sequence[dict[str, str]], prompts: Sequence[str],
                     prompt_ids: Sequence[list[int]]) -> list[dict[str, float]]:
        """Scores of each context's actions; `completion_of[i]` maps context i's valid actions to
        their completions (`completions`)."""
        if not any(completion_of):
            return [{} for _ in completion_of]
        unique: dict[str, int] = {}
        prompt_row = [unique.setdefault(prompt, len(unique)) for prompt in prompts]
        ids_of_prompt = dict(zip(prompts, prompt_ids, strict=True))
        # candidates are completions: contexts with one prompt share a row and score each text once
        row_texts: list[dict[str, None]] = [{} for _ in unique]
        for row, texts in zip(prompt_row, completion_of, strict=True):
            row_texts[row].update(dict.fromkeys(texts.values()))
        cands = [(row, text) for row, texts in enumerate(row_texts) for text in texts]
        distinct = list(dict.fromkeys(text for _, text in cands))
        ids_of = dict(zip(distinct, self.encode_completions(distinct), strict=True))
        comps = [ids_of[a] for _, a in cands]
        if any(not c for c in comps):
            raise ValueError("an action tokenized to no tokens; the tokenizer cannot score it.")

        cache, first_lp, prompt_mask, prompt_len = self._prefill([ids_of_prompt[p] for p in unique])
        rows = torch.tensor([row for row, _ in cands], dtype=torch.long, device=self.device)
        score_fn = self._score_packed if self.candidate_layout == "packed" else self._score_expanded
        states, targets, cand_idx = score_fn(rows, comps, cache, prompt_mask, prompt_len)

        first = torch.tensor([c[0] for c in comps], dtype=torch.long, device=self.device)
        scores = first_lp[rows].gather(1, first[:, None]).squeeze(1)
        if len(targets):
            token_lp = torch.cat([
                self._log_probs(states[s:s + HEAD_CHUNK_TOKENS]).gather(1, targets[s:s + HEAD_CHUNK_TOKENS, None]).squeeze(1)
                for s in range(0, len(targets), HEAD_CHUNK_TOKENS)])
            scores = scores.index_add(0, cand_idx, token_lp)
        by_cand = dict(zip(cands, scores.tolist(), strict=True))
        return [{a: by_cand[(row, text)] for a, text in texts.items()}
                for row, texts in zip(prompt_row, completion_of, strict=True)]

    def _score_expanded(self, rows: torch.Tensor, comps: list[list[int]], cache: Any, prompt_mask: torch.Tensor,
                        prompt_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One row per candidate, after that many copies of its prompt's KV cache rows.

        Returns:
            (the hidden state before each non-first completion token (M, H), that token (M,),
            the candidate it belongs to (M,)).
        """
        dev = self.device
        width = max(len(c) for c in comps)
        ids = torch.full((len(comps), width), self._pad_id, dtype=torch.long)
        comp_mask = torch.zeros((len(comps), width), dtype=torch.long)
        for r, comp in enumerate(comps):
            ids[r, :len(comp)] = torch.tensor(comp, dtype=torch.long)
            comp_mask[r, :len(comp)] = 1
        ids, comp_mask = ids.to(dev), comp_mask.to(dev)
        cache.batch_select_indices(rows)
        positions = prompt_len[rows, None] + torch.arange(width, device=dev)
        mask = torch.cat([prompt_mask[rows], comp_mask], dim=1)
        hidden = self._decoder(input_ids=ids, attention_mask=mask, position_ids=positions,
                               **{self._cache_kw: cache}, use_cache=True).last_hidden_state
        cand_idx, pos_idx = comp_mask[:, 1:].bool().nonzero(as_tuple=True)
        return hidden[cand_idx, pos_idx], ids[cand_idx, pos_idx + 1], cand_idx

    def _score_packed(self, rows: torch.Tensor, comps: list[list[int]], cache: Any, prompt_mask: torch.Tensor,
                      prompt_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One row per prompt holding all its candidates back to back, each candidate seeing the
        prompt and its own earlier tokens only (a block-diagonal causal 4D mask); the cache is not
        copied. Returns what `_score_expanded` returns."""
        dev = self.device
        n_rows = prompt_mask.shape[0]
        packed: list[list[int]] = [[] for _ in range(n_rows)]
        segment: list[list[int]] = [[] for _ in range(n_rows)]
        offset: list[list[int]] = [[] for _ in range(n_rows)]
        for cand, (row, comp) in enumerate(zip(rows.tolist(), comps, strict=True)):
            packed[row] += comp
            segment[row] += [cand] * len(comp)
            offset[row] += range(len(comp))
        width = max(len(p) for p in packed)
        ids = torch.full((n_rows, width), self._pad_id, dtype=torch.long)
        seg = torch.full((n_rows, width), -1, dtype=torch.long)
        off = torch.zeros((n_rows, width), dtype=torch.long)
        for r in range(n_rows):
            n = len(packed[r])
            ids[r, :n], seg[r, :n], off[r, :n] = (torch.tensor(x, dtype=torch.long)
                                                  for x in (packed[r], segment[r], offset[r]))
        ids, seg, off = ids.to(dev), seg.to(dev), off.to(dev)
        causal = torch.ones((width, width), dtype=torch.bool, device=dev).tril()
        own = (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] >= 0) & causal
        allowed = torch.cat([prompt_mask.bool()[:, None, :].expand(-1, width, -1), own], dim=2)[:, None]
        dtype = self._decoder.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=dev).masked_fill_(~allowed, torch.finfo(dtype).min)
        hidden = self._decoder(input_ids=ids, attention_mask=mask, position_ids=prompt_len[:, None] + off,
                               **{self._cache_kw: cache}, use_cache=True).last_hidden_state
        row_idx, pos_idx = (off >= 1).nonzero(as_tuple=True)
        return hidden[row_idx, pos_idx - 1], ids[row_idx, pos_idx], seg[row_idx, pos_idx]

    def score_unbatched(self, ctx: Context) -> dict[str, float]:
        """The reference scores: one full forward of prompt + completion per action, no cache, no padding."""
        prompt_ids = self.encode_prompts([self.prompt(ctx)])[0] if ctx.valid_actions else []
        out: dict[str, float] = {}
        with torch.inference_mode():
            for action in ctx.valid_actions:
                comp = self.encode_completions([self.completion(ctx, action)])[0]
                ids = torch.tensor([prompt_ids + comp], dtype=torch.long, device=self.device)
                logits = self.model(input_ids=ids, use_cache=False).logits[0].float()
                lp = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
                target = torch.tensor(comp, dtype=torch.long, device=self.device)
                out[action] = float(lp.gather(1, target[:, None]).sum())
        return out

    # ---- distributions and actions -----------------------------------------------------------

    def _softmax(self, scores: dict[str, float]) -> dict[str, float]:
        actions = list(scores)
        values = np.fromiter(scores.values(), dtype=float, count=len(actions))
        if self.temperature == 0:
            probs = np.zeros(len(actions))
            probs[int(np.argmax(values))] = 1.0
        else:
            z = (values - values.max()) / self.temperature
            probs = np.exp(z)
            probs /= probs.sum()
        return dict(zip(actions, probs.tolist(), strict=True))

    @staticmethod
    def _is_search(ctx: Context) -> bool:
        return ctx.has_search_bar or not ctx.valid_actions

    def action_distribution(self, contexts: Sequence[Context]) -> list[dict[str, float]]:
        """For each context, the softmax of the action scores at the policy's temperature.

        On a page with a search bar (or without valid clicks) the distribution is
        `{greedy query action: 1.0}`: the uncertainty of a search step is not measured.
        """
        out: list[dict[str, float]] = [{} for _ in contexts]
        search = [i for i, ctx in enumerate(contexts) if self._is_search(ctx)]
        clicks = [i for i, ctx in enumerate(contexts) if not self._is_search(ctx)]
        for i, query in zip(search, self.generate_queries([contexts[i] for i in search], None, greedy=True),
                            strict=True):
            out[i] = {query: 1.0}
        for i, scores in zip(clicks, self.action_scores([contexts[i] for i in clicks]), strict=True):
            out[i] = self._softmax(scores)
        return out

    def act(self, contexts: Sequence[Context], rng: RngLike, greedy: bool = False) -> list[str]:
        """One action per context: a written query on search pages, a sampled (or argmax) click elsewhere.

        Args:
            contexts: the decision contexts.
            rng: one generator, or one per context (then each context's action depends only on
                its own generator, whatever else is in the batch, up to the rounding differences
                between batch layouts: negligible in float32, but in bfloat16 a near-tie can
                sample differently).
            greedy: take the most likely click and the greedy query.

        Raises:
            ValueError: when the number of generators does not match the contexts.
        """
        check_batch(contexts, rng)
        out = [""] * len(contexts)
        search = [i for i, ctx in enumerate(contexts) if self._is_search(ctx)]
        clicks = [i for i, ctx in enumerate(contexts) if not self._is_search(ctx)]
        queries = self.generate_queries([contexts[i] for i in search], [rng_for(rng, i) for i in search], greedy)
        for i, query in zip(search, queries, strict=True):
            out[i] = query
        dists = [self._softmax(s) for s in self.action_scores([contexts[i] for i in clicks])]
        for i, dist in zip(clicks, dists, strict=True):
            out[i] = sample_action(dist, rng_for(rng, i), greedy)
        return out

    # ---- query generation --------------------------------------------------------------------

    def generate_queries(self, contexts: Sequence[Context], rngs: Sequence[np.random.Generator] | None,
                         greedy: bool) -> list[str]:
        """Write a `search[<query>]` action for each context.

        The completion starts with the forced prefix ` search[`; decoding stops at `]`, a newline,
        the end-of-sequence token or `max_query_tokens`. Sampling uses `temperature` and draws one
        number per generated token from the row's own generator, so a context's query does not
        depend on the rest of the batch. An empty or placeholder query (`<query>`, `...`: see
        `is_placeholder`) is never played: it is written again (sampling, up to `query_attempts`
        in all), then replaced by the instruction's first words (`instruction_query`), counted in
        `query_stats`, so the action is always a usable search.

        Args:
            contexts: the decision contexts.
            rngs: one generator per context; may be None when greedy.
            greedy: take the most likely token at each step (also when temperature is 0).

        Returns:
            One `search[...]` action per context.

        Raises:
            ValueError: when sampling without generators or with the wrong number of them.
        """
        greedy = greedy or self.temperature == 0
        if not greedy and (rngs is None or len(rngs) != len(contexts)):
            raise ValueError(f"sampling queries needs one generator per context; got "
                             f"{'none' if rngs is None else len(rngs)} for {len(contexts)} contexts.")
        queries = [""] * len(contexts)
        todo = list(range(len(contexts)))
        with torch.inference_mode():
            for attempt in range(self.query_attempts):
                # a greedy rewrite would write the same text again: only sampling gets more attempts
                if not todo or (attempt and greedy):
                    break
                if attempt:
                    self.query_stats["rewritten"] += len(todo)
                for start in range(0, len(todo), self.batch_size):
                    rows = todo[start:start + self.batch_size]
                    chunk_rngs = None if greedy else [rngs[i] for i in rows]  # type: ignore[index]
                    for i, text in zip(rows, self._generate_chunk([contexts[i] for i in rows], chunk_rngs), strict=True):
                        queries[i] = parse_query(text)
                todo = [i for i in todo if is_placeholder(queries[i])]
        self.query_stats["written"] += len(contexts)
        if todo:
            if not self.query_stats["fallback"]:
                logger.warning("the model wrote an empty or placeholder query (%r); the instruction's first words are "
                               "searched instead (counted in query_stats['fallback'])", queries[todo[0]])
            self.query_stats["fallback"] += len(todo)
            for i in todo:
                queries[i] = instruction_query(contexts[i].instruction)
        return [f"{QUERY_PREFIX}{query}]" for query in queries]

    def _query_vocabulary(self, contexts: Sequence[Context], vocab: int) -> torch.Tensor:
        """Per context, the tokens a copied query may use (`copy_queries`): the instruction's, each
        of its words' with and without a space before it (the query's first word), `]` and
        end-of-sequence."""
        allowed = torch.zeros((len(contexts), vocab), dtype=torch.bool)
        closing = {t for ids in self.encode_completions(["]", " ]"]) for t in ids}
        closing |= {self._eos_id} if self._eos_id is not None else set()
        for row, ctx in enumerate(contexts):
            words = ctx.instruction.split()
            pieces = [ctx.instruction, *words, *(" " + w for w in words)]
            ids = {t for piece in self.encode_completions(pieces) for t in piece} | closing
            allowed[row, [t for t in ids if t < vocab]] = True
        return allowed.to(self.device)

    def _next_tokens(self, log_probs: torch.Tensor, rngs: list[np.random.Generator] | None) -> list[int]:
        if rngs is None:
            return log_probs.argmax(-1).tolist()
        probs = torch.softmax(log_probs / self.temperature, dim=-1).double().cpu().numpy()
        cdf = np.cumsum(probs, axis=1)
        picks = []
        for row, gen in enumerate(rngs):
            u = gen.random() * cdf[row, -1]
            picks.append(min(int(np.searchsorted(cdf[row], u, side="right")), probs.shape[1] - 1))
        return picks

    def _generate_chunk(self, contexts: Sequence[Context], rngs: list[np.random.Generator] | None) -> list[str]:
        """The text each context's model writes after ` search[` (raw, before parsing)."""
        if not contexts:
            return []
        dev = self.device
        prefix = self.encode_completions([completion_text(QUERY_PREFIX)])[0]
        sequences = [p + prefix for p in self.encode_prompts([self.prompt(c) for c in contexts])]
        cache, log_probs, mask, positions = self._prefill(sequences)
        allowed = self._query_vocabulary(contexts, log_probs.shape[-1]) if self.copy_queries else None
        generated: list[list[int]] = [[] for _ in contexts]
        texts = [""] * len(contexts)
        active = list(range(len(contexts)))  # rows of the batch still writing, in cache order
        for step in range(self.max_query_tokens):
            if allowed is not None:
                log_probs = log_probs.masked_fill(~allowed[active], -math.inf)
            tokens = self._next_tokens(log_probs, None if rngs is None else [rngs[r] for r in active])
            keep = []
            for k, (row, token) in enumerate(zip(active, tokens, strict=True)):
                if token == self._eos_id:
                    continue
                generated[row].append(token)
                texts[row] = self.tokenizer.decode(generated[row], skip_special_tokens=True,
                                                   clean_up_tokenization_spaces=False)
                if "]" not in texts[row] and "\n" not in texts[row]:
                    keep.append(k)
            if not keep or step == self.max_query_tokens - 1:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long, device=dev)
                cache.batch_select_indices(index)
                mask, positions = mask[index], positions[index]
            active = [active[k] for k in keep]
            step_ids = torch.tensor([[generated[r][-1]] for r in active], dtype=torch.long, device=dev)
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], dim=1)
            hidden = self._decoder(input_ids=step_ids, attention_mask=mask, position_ids=positions[:, None],
                                   **{self._cache_kw: cache}, use_cache=True).last_hidden_state
            positions = positions + 1
            log_probs = self._log_probs(hidden[:, -1])
        return texts
