"""LMPolicy: batched shared-prefix scoring equals the unbatched reference, distributions,
per-context randomness, query generation, and saving/loading with prompt settings."""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from teachable.models import build_tiny_llama, train_bpe_tokenizer
from teachable.policy import LMPolicy, Policy
from teachable.policy.lm import SETTINGS_FILE, instruction_query, parse_query
from teachable.prompting import Context

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WELL_FORMED_QUERY = re.compile(r"^search\[[^\[\]\n]+\]$")
COLORS = ("red", "navy blue", "black", "white", "green")
ITEMS = ("running shoes", "green tea bags", "yoga mat", "leather sofa", "t-shirt")


def corpus() -> list[str]:
    texts = []
    for i, (c, item) in enumerate((c, it) for c in COLORS for it in ITEMS for _ in range(10)):
        texts.append(f"Task: i need {c} {item}, price lower than {10 + i}.00 dollars\nAction: search[{c} {item}]")
        texts.append(f"Observation: Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] "
                     f"B0ITEM{i:04d} [SEP] {c.title()} {item.title()} [SEP] ${10 + i}.99\nAction: click[b0item{i:04d}]")
    return texts


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(corpus(), vocab_size=450)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=1)


@pytest.fixture(scope="module")
def policy(model, tokenizer) -> LMPolicy:
    return LMPolicy(model, tokenizer, batch_size=3)


def results_page(n: int, history: tuple[str, ...] = ()) -> Context:
    asins = [f"b0item{i:04d}" for i in range(n)]
    obs = " [SEP] ".join(["Back to Search", "Page 1 (Total results: 50)", "Next >"]
                         + [f"{a.upper()} [SEP] {COLORS[i % 5].title()} {ITEMS[i % 5].title()} [SEP] ${10 + i}.99"
                            for i, a in enumerate(asins)])
    actions = ("click[back to search]", "click[next >]") + tuple(f"click[{a}]" for a in asins)
    return Context(instruction=f"i need {COLORS[n % 5]} {ITEMS[n % 5]}, price lower than 40.00 dollars",
                   observation=obs, valid_actions=actions, history=history)


def item_page() -> Context:
    return Context(instruction="i want navy blue running shoes in size 9",
                   observation="Back to Search [SEP] < Prev [SEP] color [SEP] navy blue [SEP] black [SEP] "
                               "Stride Runner Running Shoes [SEP] Price: $31.00 [SEP] Buy Now",
                   valid_actions=("click[< prev]", "click[navy blue]", "click[black]", "click[buy now]"),
                   history=("search[navy blue running shoes]", "click[b0item0003]"))


def search_page(instruction: str = "i need red yoga mat, price lower than 30.00 dollars") -> Context:
    return Context(instruction=instruction, observation="WebShop [SEP] Instruction: [SEP] " + instruction + " [SEP] Search",
                   has_search_bar=True)


def click_contexts() -> list[Context]:
    return [results_page(1), item_page(), results_page(5, ("search[red yoga mat]",)), results_page(3),
            item_page(), results_page(8, ("search[a]", "click[next >]"))]


def test_policy_protocol(policy: LMPolicy) -> None:
    assert isinstance(policy, Policy) and policy.name == "student"


@pytest.mark.parametrize(("layout", "attention"), [("packed", "sdpa"), ("packed", "eager"), ("expand", "sdpa")])
def test_batched_scores_match_unbatched(model, tokenizer, layout: str, attention: str) -> None:
    if attention != model.config._attn_implementation:
        model = copy.deepcopy(model)
        model.set_attn_implementation(attention)
    policy = LMPolicy(model, tokenizer, batch_size=3, candidate_layout=layout)
    # item_page() twice plus a copy with fewer actions: one prompt, scored once for the union
    contexts = click_contexts() + [replace(item_page(), valid_actions=("click[buy now]", "click[black]")),
                                   Context("nothing to click", "Thank you")]
    lengths = {len(policy.encode_prompts([policy.prompt(c)])[0]) for c in contexts}
    assert len(lengths) > 3  # prompts of different lengths: left padding is exercised
    assert any(len(ids) > 3 for ids in policy.encode_completions([" click[b0item0007]", " click[navy blue]"]))
    batched = policy.action_scores(contexts)
    assert batched[-1] == {}
    for ctx, scores in zip(contexts, batched, strict=True):
        reference = policy.score_unbatched(ctx)
        assert list(scores) == list(ctx.valid_actions) == list(reference)
        for action in scores:
            assert scores[action] < 0
            assert math.isclose(scores[action], reference[action], abs_tol=1e-4), (action, scores[action], reference[action])


def test_batched_scores_with_a_chat_template(model, tokenizer) -> None:
    chat_tok = copy.deepcopy(tokenizer)
    chat_tok.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                              "{% if add_generation_prompt %}assistant: {% endif %}")
    chat = LMPolicy(model, chat_tok, batch_size=4, candidate_layout="expand")
    ctx = item_page()
    assert chat.prompt(ctx).startswith("<s>system: ")
    assert chat.encode_prompts([chat.prompt(ctx)])[0].count(chat_tok.bos_token_id) == 2  # one per message, none added
    for scores, c in zip(chat.action_scores(click_contexts()), click_contexts(), strict=True):
        reference = chat.score_unbatched(c)
        assert all(math.isclose(scores[a], reference[a], abs_tol=1e-4) for a in scores)


def test_layout_is_checked(model, tokenizer) -> None:
    with pytest.raises(ValueError, match="candidate_layout"):
        LMPolicy(model, tokenizer, candidate_layout="tree")


def test_distribution_sums_to_one_and_respects_temperature(model, tokenizer) -> None:
    contexts = click_contexts()
    scores = LMPolicy(model, tokenizer).action_scores(contexts)
    for temperature in (1.0, 3.0):
        dists = LMPolicy(model, tokenizer, temperature=temperature).action_distribution(contexts)
        for dist, s in zip(dists, scores, strict=True):
            assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-9)
            values = np.array(list(s.values())) / temperature
            expected = np.exp(values - values.max()) / np.exp(values - values.max()).sum()
            np.testing.assert_allclose(list(dist.values()), expected, rtol=1e-6, atol=1e-9)
    cold = LMPolicy(model, tokenizer, temperature=0.0).action_distribution(contexts)
    for dist, s in zip(cold, scores, strict=True):
        assert dist[max(s, key=s.get)] == 1.0 and sum(dist.values()) == 1.0


def test_search_page_distribution_is_the_greedy_query(policy: LMPolicy) -> None:
    contexts = [search_page(), item_page()]
    dists = policy.action_distribution(contexts)
    (query, p), = dists[0].items()
    assert p == 1.0 and query == policy.generate_queries([search_page()], None, greedy=True)[0]
    assert set(dists[1]) == set(item_page().valid_actions)


def test_act_per_context_generators_ignore_batch_composition(model, tokenizer) -> None:
    hot = LMPolicy(model, tokenizer, temperature=200.0, batch_size=4)  # near uniform: samples vary
    a, b, c = results_page(8), item_page(), search_page("i want black leather sofa")
    alone, mixed = [], []
    for seed in range(8):
        alone.append(hot.act([a, c], [np.random.default_rng(seed), np.random.default_rng(seed + 50)]))
        mixed_actions = hot.act([b, c, search_page(), a, b],
                                [np.random.default_rng(x) for x in (99, seed + 50, 7, seed, 98)])
        mixed.append([mixed_actions[3], mixed_actions[1]])
    assert alone == mixed
    assert len({acts[0] for acts in alone}) > 2 and len({acts[1] for acts in alone}) > 2
    assert all(acts[0] in a.valid_actions and WELL_FORMED_QUERY.match(acts[1]) for acts in alone)


def test_act_greedy_takes_the_argmax(policy: LMPolicy) -> None:
    contexts = click_contexts()
    greedy = policy.act(contexts, np.random.default_rng(0), greedy=True)
    assert greedy == [max(s, key=s.get) for s in policy.action_scores(contexts)]
    with pytest.raises(ValueError, match="generators"):
        policy.act(contexts, [np.random.default_rng(0)])


def test_greedy_queries_are_deterministic_and_well_formed(policy: LMPolicy) -> None:
    contexts = [search_page(), search_page("i want green tea bags"), search_page("i need a white t-shirt, size m")]
    first = policy.generate_queries(contexts, None, greedy=True)
    assert first == policy.generate_queries(contexts, None, greedy=True)
    assert first == [policy.generate_queries([c], None, greedy=True)[0] for c in contexts]
    assert all(WELL_FORMED_QUERY.match(q) for q in first), first


def test_sampled_queries_are_reproducible_per_seed(model, tokenizer) -> None:
    pol = LMPolicy(model, tokenizer, temperature=1.5, max_query_tokens=8, batch_size=2)
    contexts = [search_page(), search_page("i want green tea bags"), search_page("i need a white t-shirt")]
    def run(seeds):
        return pol.generate_queries(contexts, [np.random.default_rng(s) for s in seeds], greedy=False)
    assert run([1, 2, 3]) == run([1, 2, 3])
    assert run([1, 2, 3])[1] == run([9, 2, 8])[1]
    assert len({run([s, 0, 0])[0] for s in range(6)}) > 1
    assert all(WELL_FORMED_QUERY.match(q) for q in run([4, 5, 6]))
    with pytest.raises(ValueError, match="one generator per context"):
        pol.generate_queries(contexts, None, greedy=False)


def test_copied_queries_use_only_the_instructions_words(model, tokenizer) -> None:
    contexts = [search_page("i want green tea bags"), search_page("i need a white t-shirt, size m")]

    def picked(copy: bool) -> list[list[str]]:
        pol = LMPolicy(model, tokenizer, temperature=1.5, max_query_tokens=10, batch_size=2, copy_queries=copy)
        seen: list[list[int]] = []
        choose = pol._next_tokens
        pol._next_tokens = lambda lp, rngs: seen.append(choose(lp, rngs)) or seen[-1]  # type: ignore[method-assign]
        for seed in range(4):
            pol.generate_queries(contexts, [np.random.default_rng(seed + i) for i in range(2)], greedy=False)
        return [tokenizer.decode([t]).strip() for step in seen for t in step if t != tokenizer.eos_token_id]

    instructions = " ".join(c.instruction for c in contexts)
    assert all(piece in instructions or piece == "]" for piece in picked(copy=True))
    assert any(piece not in instructions and piece != "]" for piece in picked(copy=False))  # a free model strays


def test_query_parsing_and_fallback() -> None:
    assert parse_query(" red shoes ] trailing") == "red shoes"
    assert parse_query("blue\nmore") == "blue"
    assert parse_query("a[b\x01c]") == "a b c"
    assert parse_query("   ]") == ""
    assert instruction_query("i need red shoes, size 9, under 30 dollars") == "i need red shoes size 9"


def test_save_and_from_pretrained_keep_prompt_settings(tmp_path: Path, model, tokenizer) -> None:
    trained = LMPolicy(model, tokenizer, max_history=2, list_actions=True, max_observation_chars=80)
    trained.save_pretrained(tmp_path / "student")
    assert (tmp_path / "student" / SETTINGS_FILE).is_file()
    loaded = LMPolicy.from_pretrained(str(tmp_path / "student"), device="cpu", temperature=0.5)
    assert (loaded.max_history, loaded.list_actions, loaded.max_observation_chars, loaded.temperature) == (2, True, 80, 0.5)
    ctx = results_page(4, ("search[x]", "click[a]", "click[b]"))
    assert loaded.prompt(ctx) == trained.prompt(ctx) and "Available actions:" in loaded.prompt(ctx)
    for action, score in loaded.action_scores([ctx])[0].items():
        assert math.isclose(score, trained.action_scores([ctx])[0][action], abs_tol=1e-5)
    explicit = LMPolicy.from_pretrained(str(tmp_path / "student"), device="cpu", list_actions=False)
    assert explicit.list_actions is False and explicit.max_history == 2


def test_memoized_scores_reuse_seen_contexts_only_inside_the_block(model, tokenizer) -> None:
    policy = LMPolicy(copy.deepcopy(model), tokenizer, batch_size=3)
    rows: list[int] = []
    prefill = policy._prefill
    policy._prefill = lambda seqs: rows.append(len(seqs)) or prefill(seqs)  # type: ignore[method-assign]
    contexts = click_contexts()  # item_page() twice: one prompt, scored once even without a block
    fresh = policy.action_scores(contexts)
    assert sum(rows) == len(contexts) - 1
    with policy.memoized_scores():
        rows.clear()
        first = policy.action_scores(contexts)
        again = policy.action_scores(contexts[::-1] + [results_page(2)])
        assert sum(rows) == len(contexts) - 1 + 1  # the second call scored only the new context
        for param in policy.model.parameters():  # weights change inside the block: scores are stale
            param.data.add_(0.5)
        assert policy.action_scores(contexts[:1]) == first[:1]
    assert first == fresh and again[:-1] == fresh[::-1]
    assert policy.action_scores(contexts[:1]) != first[:1]  # after the block, scored afresh
    off = LMPolicy(model, tokenizer, batch_size=3, memoize=False)
    with off.memoized_scores():
        assert off._memo is None


def test_forward_passes_are_cut_by_padding(model, tokenizer) -> None:
    policy = LMPolicy(model, tokenizer, batch_size=3, max_padding=0.25)
    assert policy._chunks([0, 1, 2, 3, 4], [10, 11, 12, 13, 40]) == [[0, 1, 2], [3], [4]]
    assert LMPolicy(model, tokenizer, batch_size=8, max_padding=0.0)._chunks([0, 1, 2], [5, 5, 6]) == [[0, 1], [2]]
    unlimited = LMPolicy(model, tokenizer, batch_size=2, max_padding=math.inf)
    assert unlimited._chunks([0, 1, 2], [1, 50, 900]) == [[0, 1], [2]]
    assert policy._chunks([], []) == []
    with pytest.raises(ValueError, match="max_padding"):
        LMPolicy(model, tokenizer, max_padding=-1)


def test_aliased_products_are_scored_by_their_place_batched_as_unbatched(model, tokenizer, tmp_path: Path) -> None:
    policy = LMPolicy(model, tokenizer, batch_size=3, list_actions=True, list_titles=True, alias_products=True,
                      copy_queries=True)
    page = results_page(4, ("search[red yoga mat]",))
    # the same page with other ids: the prompt is the same, the completions of its ids too
    renamed = replace(page, observation=page.observation.replace("B0ITEM", "B0XTEM"),
                      valid_actions=tuple(a.replace("b0item", "b0xtem") for a in page.valid_actions))
    assert policy.prompt(page) == policy.prompt(renamed) and "b0item" not in policy.prompt(page).lower()
    assert "#2 [SEP] Navy Blue Green Tea Bags" in policy.prompt(page)
    assert policy.completion(page, "click[b0item0002]") == " click[#3]" == policy.completion(renamed, "click[b0xtem0002]")
    assert policy.completion(page, "click[next >]") == " click[next >]"
    contexts = [page, renamed, item_page(), page]
    batched = policy.action_scores(contexts)
    for ctx, scores in zip(contexts, batched, strict=True):
        reference = policy.score_unbatched(ctx)
        assert list(scores) == list(ctx.valid_actions)
        assert all(math.isclose(scores[a], reference[a], abs_tol=1e-4) for a in scores)
    assert [batched[0][a] for a in page.valid_actions] == [batched[1][a] for a in renamed.valid_actions]
    policy.save_pretrained(tmp_path / "aliased")
    loaded = LMPolicy.from_pretrained(str(tmp_path / "aliased"), device="cpu")
    assert (loaded.alias_products, loaded.list_titles, loaded.copy_queries) == (True, True, True)
    assert loaded.prompt(page) == policy.prompt(page)
