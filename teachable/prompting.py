"""The one place that turns a decision context into a model prompt.

A `Context` is what the agent knows when it acts: the instruction, the current observation,
its recent actions, the valid click actions, whether the page asks for a search query, and an
optional *patch* (a teaching text shown at this step, used by the CPT labels and the DEMO /
CONTRAST / HINT supervision). `render_prompt` renders it for plain causal LMs; with a chat
tokenizer it wraps the same body in the tokenizer's chat template. The completion a model is
trained on or scored for is always ` <action>` (a leading space, then e.g. `click[buy now]`);
a student prompted with `alias_products` names a results page's products by their place
(`click[#3]`, see `product_aliases`), in its prompt and in that completion alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

SYSTEM_PROMPT = (
    "You are a shopping agent in a web shop. Buy the product the task asks for, with the options it "
    "names and within its price. Reply with exactly one action and nothing else. On the search page "
    "the action is the word search followed by the words to look for in square brackets, taken "
    "from the task. On every other page it is one of the listed available actions, copied exactly."
)
DEFAULT_HISTORY = 4
# what a search page offers, as the student's prompt lists it: no bracketed placeholder a model could copy
SEARCH_ACTION_TEXT = "search (write the words to look for)"
TITLE_WORDS = 12  # words of a product's title shown before its click in the action list


@dataclass(frozen=True)
class Context:
    """What the agent sees when it picks an action.

    Attributes:
        instruction: the goal's instruction text.
        observation: the page observation (WebShop's text mode).
        valid_actions: the click actions available on the page.
        has_search_bar: the page asks for a search query (the policy generates `search[...]`).
        history: actions taken so far in the episode, oldest first.
        patch: teaching text shown at this step, or None.
        goal: the goal dict (hidden: never rendered; only oracles such as the expert read it).
        state: the env state at this step (`env.get_state().decode()`), for oracles; never rendered.
    """

    instruction: str
    observation: str
    valid_actions: tuple[str, ...] = ()
    has_search_bar: bool = False
    history: tuple[str, ...] = field(default_factory=tuple)
    patch: str | None = None
    goal: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    state: str | None = field(default=None, compare=False, repr=False)

    def with_patch(self, patch: str | None) -> Context:
        return replace(self, patch=patch)


def context_from_env(env: Any, observation: str, info: Mapping[str, Any], history: tuple[str, ...] = (),
                     patch: str | None = None) -> Context:
    """The context of a `webshop_env.WebShopEnv` right after `reset`, `step` or `set_state`.

    Args:
        env: the env (its goal and state are attached for oracles).
        observation: the observation just returned.
        info: the info dict just returned.
        history: the actions taken before this step.
        patch: teaching text to show at this step.
    """
    return Context(
        instruction=env.instruction_text,
        observation=observation,
        valid_actions=tuple(info["valid_actions"]),
        has_search_bar=bool(info["available_actions"]["has_search_bar"]),
        history=tuple(history),
        patch=patch,
        goal=env.goal,
        state=env.get_state().decode(),
    )


def clip_observation(observation: str, max_chars: int | None) -> str:
    """Keep the first `max_chars` characters of an observation, marking a cut with ` ...`."""
    if max_chars is None or len(observation) <= max_chars:
        return observation
    return observation[:max_chars].rstrip() + " ..."


def available_actions(ctx: Context) -> list[str]:
    """The actions a context allows, as shown to models: `search[<query>]` first when allowed."""
    return (["search[<query>]"] if ctx.has_search_bar else []) + list(ctx.valid_actions)


def product_titles(ctx: Context) -> dict[str, str]:
    """The title of each product a results page lists, by its click action.

    WebShop's text observation lists a product as three nodes, `<ASIN> [SEP] <title> [SEP] <price>`
    (the price starts with `$`); a node equal to a valid click's value (any case) followed by a
    title and a price is a product. Other pages have no such triple and give `{}`.
    """
    nodes = [n.strip() for n in ctx.observation.split("[SEP]")]
    clicks = {a[len("click["):-1].lower(): a for a in ctx.valid_actions if a.startswith("click[") and a.endswith("]")}
    out: dict[str, str] = {}
    for i in range(len(nodes) - 2):
        action = clicks.get(nodes[i].lower())
        if action is not None and nodes[i + 2].startswith("$") and nodes[i + 1]:
            out[action] = nodes[i + 1]
    return out


def titled(action: str, titles: Mapping[str, str], max_words: int = TITLE_WORDS) -> str:
    """`action` as an action list shows it: a product click after its title's first `max_words` words."""
    title = titles.get(action)
    if title is None:
        return action
    words = title.split()
    return f"{' '.join(words[:max_words])}{' ...' if len(words) > max_words else ''}: {action}"


def student_actions(ctx: Context, list_titles: bool = False, titles: Mapping[str, str] | None = None) -> list[str]:
    """The actions a context allows, as the student's prompt lists them: the search as words (the
    policy writes the query after a forced `search[`), then the valid clicks; with `list_titles`,
    each product click comes after its title (`<title>: click[<id>]`), so choosing a product reads
    the title right before the id the model copies."""
    titles = (product_titles(ctx) if titles is None else titles) if list_titles else {}
    return ([SEARCH_ACTION_TEXT] if ctx.has_search_bar else []) + [titled(a, titles) for a in ctx.valid_actions]


def product_aliases(ctx: Context, titles: Mapping[str, str] | None = None) -> dict[str, str]:
    """The alias of each product a results page lists: `click[#k]` for the k-th, by its click.

    A student prompted with aliases (`alias_products`) sees `#3` wherever the page, its action
    list, its history or a teacher's text names the third product's id, and is scored on (and
    trained to write) ` click[#3]` for it: it chooses a product by reading the titles and picks a
    place on the page, and has no id to memorise (as reading-comprehension models are given
    entities renumbered per document). Pages without products, and a page where an alias would
    equal another clickable value, get no aliases. `titles`: the page's `product_titles`, when
    already found.
    """
    products = list(product_titles(ctx) if titles is None else titles)
    aliases = {action: f"click[#{k}]" for k, action in enumerate(products, 1)}
    taken = set(ctx.valid_actions) - set(products)
    return {} if taken & set(aliases.values()) else aliases


def action_text(ctx: Context, action: str, alias_products: bool = False) -> str:
    """`action` as a student's prompt and completion write it (its alias with `alias_products`)."""
    return product_aliases(ctx).get(action, action) if alias_products else action


def _aliased(text: str, aliases: Mapping[str, str]) -> str:
    """`text` with every product id of `aliases` (any case, a whole word) replaced by its alias."""
    if not aliases:
        return text
    names = {a[len("click["):-1].lower(): alias[len("click["):-1] for a, alias in aliases.items()}
    pattern = re.compile(r"(?<![\w#])(" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda m: names[m.group(1).lower()], text)


def few_shot_text(examples: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Finished expert episodes for the prompt: each task with the actions that solved it."""
    return "\n".join(["Examples of solved tasks:"] + [
        f"Task: {instruction}\nActions: {' | '.join(actions)}" for instruction, actions in examples])


def prompt_body(ctx: Context, max_history: int = DEFAULT_HISTORY, list_actions: bool = False,
                max_observation_chars: int | None = None,
                few_shot: Sequence[tuple[str, Sequence[str]]] = (), list_titles: bool = False,
                alias_products: bool = False) -> str:
    """The prompt text without the final `Action:` cue."""
    titles = product_titles(ctx) if alias_products or list_titles else {}  # the page's products, parsed once
    aliases = product_aliases(ctx, titles) if alias_products else {}
    recent = ctx.history[-max_history:] if max_history > 0 else ()
    lines = [few_shot_text(few_shot), ""] if few_shot else []
    lines += [
        f"Task: {ctx.instruction}",
        f"Previous actions: {_aliased(' | '.join(recent), aliases) if recent else 'none'}",
        f"Observation: {clip_observation(_aliased(ctx.observation, aliases), max_observation_chars)}",
    ]
    if list_actions:
        listed = student_actions(ctx, list_titles, titles)
        lines.append(f"Available actions: {_aliased(', '.join(listed), aliases)}")
    if ctx.patch:
        lines.append(f"Teacher: {_aliased(ctx.patch, aliases)}")
    return "\n".join(lines)


def render_prompt(
    ctx: Context,
    tokenizer: Any | None = None,
    max_history: int = DEFAULT_HISTORY,
    list_actions: bool = False,
    max_observation_chars: int | None = None,
    few_shot: Sequence[tuple[str, Sequence[str]]] = (),
    list_titles: bool = False,
    alias_products: bool = False,
) -> str:
    """Render a context as the prompt a model continues with ` <action>`.

    For a chat model (a tokenizer with a chat template) the prompt is a system message (the
    rules, `SYSTEM_PROMPT`) and a user message (optional solved examples, then the task, the
    recent actions, the page and its actions), the generation prompt, then `Action:`, after
    which the model's reply is scored or written. No bracketed placeholder appears anywhere:
    instruct models copy them. A plain LM gets the user message and `Action:` alone.

    Args:
        ctx: the decision context.
        tokenizer: a Hugging Face tokenizer; if it has a chat template, the prompt is rendered
            through it (system + user message, generation prompt added).
        max_history: how many recent actions to show.
        list_actions: also list the valid actions (useful for pretrained instruct models).
        max_observation_chars: cut longer observations (small models with short context).
        few_shot: solved expert episodes to show first, as (instruction, actions) pairs.
        list_titles: with `list_actions`, show each product click after its title.
        alias_products: name the page's products by their place (`#1`, `#2`, ...) instead of
            their ids (see `product_aliases`); the completion is then `action_text`'s.
    """
    body = prompt_body(ctx, max_history=max_history, list_actions=list_actions,
                       max_observation_chars=max_observation_chars, few_shot=few_shot, list_titles=list_titles,
                       alias_products=alias_products)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": body}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "Action:"
    return body + "\nAction:"


def completion_text(action: str) -> str:
    """The completion a model produces for `action`."""
    return " " + action
