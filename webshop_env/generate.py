"""Generate a synthetic catalogue in WebShop's official file format.

This is the embedded default when no real WebShop data is at hand. `generate_catalog` writes

- `items_shuffle.json`: the raw products (a JSON list, written as a stream so that WebShop's
  full size of 1.18M products fits in memory);
- `items_ins_v2.json`: attributes of every product, and for about 40% a synthetic instruction
  ("Find me <attrs> <leaf category> with <attrs> for <attrs>") with its attributes;
- `items_human_ins.json`: for about half of the products, 1-3 human-style instructions with
  the attributes and option values they ask for;
- `catalog_meta.json`, last, so that its presence means the catalogue is complete.

Products come from the vocabulary in `webshop_env.vocab`: 9 categories, 32 sub-categories
(one search `query` each, with an equal share of the products), invented brands, several
nouns per sub-category, attributes placed in the title, the description or the bullets,
options, prices. Like WebShop's data, the file also holds rows its loader skips (duplicate
asins, asin "nan" or longer than 10 characters), blank bullets, missing and ranged prices,
mixed-case option values and values with '/'. `n_products` counts the products the loader
keeps; the skipped rows come on top (only when `n_products >= 50`).

`categories` restricts the products to some of the categories (a *category mix*, e.g. to
build a catalogue a student was not trained on); None draws from all of them, and a mix that
names every category is the same as None.

Output is a pure function of `(n_products, seed, categories)`: all randomness comes from one
private `random.Random(seed)`, and files are byte-identical across runs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from webshop_env import vocab

logger = logging.getLogger(__name__)

GENERATOR_NAME = "webshop_env.generate"
GENERATOR_VERSION = 1
PRODUCTS_FILE = "items_shuffle.json"
ATTRIBUTES_FILE = "items_ins_v2.json"
HUMAN_FILE = "items_human_ins.json"
META_FILE = "catalog_meta.json"

MIN_PRODUCTS_FOR_SKIPPED_ROWS = 50  # tiny catalogues stay clean
DUPLICATE_ROW_RATE = 0.005
ATTRIBUTE_COUNT_WEIGHTS = ((0, 15), (1, 20), (2, 22), (3, 19), (4, 14), (5, 10))
# Rates among products with attributes, so that the overall rates are ~40% and ~50%.
SYNTHETIC_INSTRUCTION_RATE = 0.40 / 0.85
HUMAN_INSTRUCTION_RATE = 0.50 / 0.85
MISSING_PRICE_RATE = 0.02
RANGED_PRICE_RATE = 0.15
CENTS = (99, 99, 99, 95, 49, 0, 97, 89, 50, 29)
ASIN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
IMAGE_ROOT = "https://img.example"
PROGRESS_MIN_PRODUCTS = 200_000

_ACRONYMS = frozenset(
    "usb usa led bpa tv hd uv gmo pu rc usda msg hdmi uhd hdr qled 4k ip65 pvc lcd".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_U_AS_YOU = ("usb", "uni", "use", "uv", "usda")  # "a usb cable", "a uv resistant pot"
_AN_WORDS = frozenset(("8", "11", "18", "msg", "rc", "hdmi", "hd", "led"))  # "an rc car"
_SMALL_WORDS = frozenset("a an and or for with of in the to by".split())


def clean_option_value(value: str) -> str:
    """An option value as WebShop's loader shows it: stripped, '/' -> ' | ', lower-cased."""
    return value.strip().replace("/", " | ").lower()


def title_case(text: str) -> str:
    """Title-case a phrase the way product titles are written ("Face Cream with SPF")."""
    words = []
    for i, word in enumerate(text.split(" ")):
        lower = word.lower()
        if lower in _ACRONYMS:
            words.append(lower.upper())
        elif i and lower in _SMALL_WORDS:
            words.append(lower)
        else:
            words.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(words)


def word_stems(text: str) -> set[str]:
    """Lower-case alphanumeric words without a plural 's' (a crude stemmer for coverage checks)."""
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in _WORD.findall(text.lower())}


def _join(items: list[str], rng: random.Random) -> str:
    """'a', 'a and b', 'a, b and c' (sometimes with an Oxford comma)."""
    if len(items) <= 1:
        return "".join(items)
    last = ", and " if len(items) > 2 and rng.random() < 0.3 else " and "
    return ", ".join(items[:-1]) + last + items[-1]


def _is_plural(noun: str) -> bool:
    return noun.endswith("s") and not noun.endswith("ss")


def _with_article(phrase: str, plural: bool, rng: random.Random) -> str:
    if plural:
        return f"some {phrase}" if rng.random() < 0.25 else phrase
    first = phrase.split(" ")[0]
    vowel = first[:1] in "aeio" or (first.startswith("u") and not first.startswith(_U_AS_YOU))
    return f"{'an' if vowel or first in _AN_WORDS else 'a'} {phrase}"


@dataclass
class _Draft:
    """One product while it is being written."""

    asin: str
    category: vocab.Category
    sub: vocab.SubCategory
    leaf: vocab.Leaf
    noun: str
    brand: str
    attributes: list[str]
    placement: dict[str, str]  # attribute -> "title" | "description" | "bullets"
    claims: list[str]  # the sub-category's claims in a random order, consumed from the end
    closers: list[str]  # the same for the closing sentences, so that none repeats
    raw_options: dict[str, list[dict[str, Any]]] | None = None
    options: list[tuple[str, list[str]]] = field(default_factory=list)  # cleaned (name, values)

    @property
    def plural(self) -> bool:
        return _is_plural(self.noun)

    def placed(self, where: str, kind: str) -> list[str]:
        return [a for a in self.attributes if self.placement[a] == where and vocab.ATTRIBUTES[a].kind == kind]

    def next_claim(self) -> str:
        return self.claims.pop() if self.claims else self.sub.claims[0]

    def next_closer(self, ctx: dict[str, str]) -> str:
        return (self.closers.pop() if self.closers else vocab.CLOSERS[0]).format(**ctx)


@dataclass(frozen=True)
class _Row:
    product: dict[str, Any]
    record: dict[str, Any] | None  # items_ins_v2 record; None for rows the loader skips
    human: list[dict[str, Any]]


class _Generator:
    """Draws products one by one from a single `random.Random(seed)`."""

    def __init__(self, n_products: int, seed: int, categories: tuple[str, ...] | None = None) -> None:
        self.rng = random.Random(seed)
        self.n_products = n_products
        self.subs = [(cat, sub) for cat in vocab.CATEGORIES if categories is None or cat.name in categories
                     for sub in cat.subcategories]
        self.pools = [self._attribute_pool(cat, sub) for cat, sub in self.subs]
        counts, weights = zip(*ATTRIBUTE_COUNT_WEIGHTS, strict=True)
        self.count_values = counts
        self.count_cum = _cumulative(weights)
        self.asins: list[str] = []
        self.seen: set[str] = set()

    @staticmethod
    def _attribute_pool(cat: vocab.Category, sub: vocab.SubCategory) -> tuple[tuple[str, ...], list[float]]:
        """Sub-category attributes (earlier ones more common), then the category's shared ones."""
        pool = list(sub.attributes) + [a for a in cat.shared_attributes if a not in sub.attributes]
        weights = [1.0 / (1.0 + 0.15 * i) for i in range(len(sub.attributes))]
        weights += [0.6] * (len(pool) - len(sub.attributes))
        return tuple(pool), _cumulative(weights)

    def rows(self) -> Iterator[_Row]:
        """All rows of the products file, in file order."""
        order = self._subcategory_order()
        skipped = self._skipped_row_plan()
        for i, sub_index in enumerate(order):
            asin = self._new_asin()
            draft = self._draft(asin, sub_index)
            yield _Row(self._raw_product(draft), self._attribute_record(draft), self._human_instructions(draft))
            for kind in skipped.get(i, ()):
                yield self._skipped_row(kind)

    def _subcategory_order(self) -> list[int]:
        """Each sub-category gets an equal share (the remainder spread at random), shuffled."""
        n_subs = len(self.subs)
        order = list(range(n_subs)) * (self.n_products // n_subs)
        order += self.rng.sample(range(n_subs), self.n_products % n_subs)
        self.rng.shuffle(order)
        return order

    def _skipped_row_plan(self) -> dict[int, list[str]]:
        """Product index -> rows the loader must skip, written right after that product."""
        if self.n_products < MIN_PRODUCTS_FOR_SKIPPED_ROWS:
            return {}
        n_duplicates = max(1, round(self.n_products * DUPLICATE_ROW_RATE))
        n_invalid = 2 + self.n_products // 250_000
        kinds = ["duplicate"] * n_duplicates + ["nan" if i % 2 == 0 else "long" for i in range(n_invalid)]
        plan: dict[int, list[str]] = {}
        for kind, position in zip(kinds, self.rng.sample(range(self.n_products), len(kinds)), strict=True):
            plan.setdefault(position, []).append(kind)
        return plan

    def _skipped_row(self, kind: str) -> _Row:
        if kind == "duplicate":
            asin = self.rng.choice(self.asins)
        elif kind == "nan":
            asin = "nan"
        else:
            asin = "B0" + "".join(self.rng.choices(ASIN_CHARS, k=10))
        draft = self._draft(asin, self.rng.randrange(len(self.subs)))
        return _Row(self._raw_product(draft), None, [])

    def _new_asin(self) -> str:
        while True:
            asin = "B0" + "".join(self.rng.choices(ASIN_CHARS, k=8))
            if asin not in self.seen:
                self.seen.add(asin)
                self.asins.append(asin)
                return asin

    # ---- drawing one product -------------------------------------------------------------

    def _draft(self, asin: str, sub_index: int) -> _Draft:
        rng = self.rng
        cat, sub = self.subs[sub_index]
        leaf = rng.choice(sub.leaves)
        attributes = self._attributes(sub_index)
        draft = _Draft(
            asin=asin,
            category=cat,
            sub=sub,
            leaf=leaf,
            noun=rng.choice(leaf.nouns),
            brand=rng.choice(cat.brands),
            attributes=attributes,
            placement=self._placement(attributes),
            claims=rng.sample(sub.claims, len(sub.claims)),
            closers=rng.sample(vocab.CLOSERS, len(vocab.CLOSERS)),
        )
        self._options(draft)
        return draft

    def _attributes(self, sub_index: int) -> list[str]:
        rng = self.rng
        pool, cum = self.pools[sub_index]
        k = min(rng.choices(self.count_values, cum_weights=self.count_cum)[0], len(pool))
        chosen: list[str] = []
        while len(chosen) < k:
            attr = rng.choices(pool, cum_weights=cum)[0]
            if attr not in chosen:
                chosen.append(attr)
        return chosen

    def _placement(self, attributes: list[str]) -> dict[str, str]:
        """Where each attribute is written: at most 3 in the title, the rest in the text."""
        placement = {}
        in_title = 0
        for attr in attributes:
            r = self.rng.random()
            if r < 0.5 and in_title < 3:
                placement[attr] = "title"
                in_title += 1
            else:
                placement[attr] = "description" if r < 0.82 else "bullets"
        return placement

    def _options(self, draft: _Draft) -> None:
        rng = self.rng
        groups = [g for g in draft.sub.options if rng.random() < g.probability][:3]
        if not groups:
            draft.raw_options = None if rng.random() < 0.6 else {}
            return
        draft.raw_options = {}
        for g_index, group in enumerate(groups):
            values = self._option_values(group.pool)
            name = group.name if rng.random() < 0.9 else group.name.lower()
            with_images = rng.random() < (0.6 if group.name == "Color" else 0.1)
            raw_values = [self._raw_case(v) for v in values]
            draft.raw_options[name] = [
                {"value": v, "image": f"{IMAGE_ROOT}/{draft.asin}-{g_index}{j}.jpg" if with_images else None}
                for j, v in enumerate(raw_values)
            ]
            draft.options.append((name.lower(), [clean_option_value(v) for v in raw_values]))

    def _option_values(self, pool_name: str) -> list[str]:
        pool = vocab.OPTION_POOLS[pool_name]
        k = self.rng.randint(2, min(8, len(pool)))
        if pool_name in vocab.ORDERED_POOLS:
            start = self.rng.randrange(len(pool) - k + 1)
            return list(pool[start : start + k])
        return self.rng.sample(pool, k)

    def _raw_case(self, value: str) -> str:
        """Mostly 'Navy Blue', sometimes as listed, rarely with a stray trailing space."""
        r = self.rng.random()
        if r < 0.65:
            value = "/".join(title_case(part) for part in value.split("/"))
        elif r < 0.68:
            value = value[:1].upper() + value[1:]
        return value + " " if self.rng.random() < 0.01 else value

    # ---- text ----------------------------------------------------------------------------

    def _surface(self, attr: str) -> str:
        surfaces = vocab.ATTRIBUTES[attr].surfaces
        return surfaces[0] if len(surfaces) == 1 or self.rng.random() < 0.7 else self.rng.choice(surfaces[1:])

    def _title(self, draft: _Draft) -> str:
        rng = self.rng
        pre = [title_case(self._surface(a)) for a in draft.placed("title", "pre")]
        tails = [f"{word} " + " and ".join(title_case(self._surface(a)) for a in attrs)
                 for word, attrs in (("with", draft.placed("title", "with")), ("for", draft.placed("title", "for")))
                 if attrs]
        modifier = rng.choice(draft.sub.modifiers) if rng.random() < 0.6 else ""
        if set(modifier.lower().split()) & set(" ".join((draft.noun, *pre)).lower().split()):
            modifier = ""  # no "Family Family Tent"
        spec = rng.choice(draft.sub.specs) if rng.random() < 0.7 else ""
        core = " ".join(x for x in (modifier, *pre[:2], title_case(draft.noun)) if x)
        extras = pre[2:]
        core_words = core.lower().split()
        if any(a == b for a, b in zip(core_words, core_words[1:], strict=False)):  # "Protein Protein Bars"
            core = " ".join(x for x in (modifier, title_case(draft.noun)) if x)
            extras = pre + extras
        if rng.random() < 0.15 and len(draft.leaf.nouns) > 1:
            extras.append(title_case(rng.choice([n for n in draft.leaf.nouns if n != draft.noun])))
        if not word_stems(draft.sub.query) <= word_stems(" ".join((core, *tails, *extras))):
            # Like sellers' keyword-stuffed titles: the search term is in every title, so that
            # searching a sub-category's query finds all of its products.
            extras.insert(0, title_case(draft.sub.query))
        style = rng.random()
        if style < 0.5:
            head = f"{draft.brand} {core}" + (f" {tails[0]}" if tails else "")
            return ", ".join(x for x in (head, *tails[1:], *extras, spec) if x)
        if style < 0.75:
            rest = ", ".join(x for x in (*tails, *extras, spec) if x)
            return f"{draft.brand} {core}" + (f" - {rest}" if rest else "")
        if style < 0.9:
            head = " ".join((core, *tails)) + f" by {draft.brand}"
            return ", ".join((head, *extras)) + (f" ({spec})" if spec else "")
        return " | ".join(x for x in (f"{draft.brand.upper()} {core}", *tails, *extras, spec) if x)

    def _context(self, draft: _Draft) -> dict[str, str]:
        """Template fields; "Each of these"/"Each one" keep verbs singular for plural nouns."""
        this = "Each of these" if draft.plural else "This"
        it = "Each one" if draft.plural else "It"
        return {
            "brand": draft.brand,
            "noun": draft.noun,
            "a_noun": _with_article(draft.noun, draft.plural, self.rng),
            "this": this,
            "this_lower": this.lower(),
            "it": it,
            "it_lower": it.lower(),
        }

    def _description(self, draft: _Draft, ctx: dict[str, str]) -> str:
        rng = self.rng
        sentences = [rng.choice(vocab.INTRO_TEMPLATES).format(claim=draft.next_claim(), **ctx)]
        for kind, templates in (("pre", vocab.PRE_SENTENCES), ("with", vocab.WITH_SENTENCES),
                                ("for", vocab.FOR_SENTENCES)):
            attrs = draft.placed("description", kind)
            if attrs:
                text = _join([self._surface(a) for a in attrs], rng)
                sentences.append(rng.choice(templates).format(attrs=text, **ctx))
        target = rng.randint(2, 4)
        count = len(sentences) + sentences[0].count(". ") + sentences[0].count("? ")  # two-sentence intros
        while count < target - 1:
            sentences.append(rng.choice(vocab.CLAIM_SENTENCES).format(claim=draft.next_claim(), **ctx))
            count += 1
        if count < target:
            sentences.append(draft.next_closer(ctx))
        return " ".join(sentences)

    def _attribute_bullet(self, draft: _Draft, attr: str, ctx: dict[str, str]) -> str:
        surface = self._surface(attr)
        kind = vocab.ATTRIBUTES[attr].kind
        if kind == "pre":
            body = f"{ctx['this']} {draft.noun} is {surface}, and {ctx['it_lower']} {draft.next_claim()}."
        elif kind == "with":
            body = f"Features {surface}; {ctx['it_lower']} {draft.next_claim()}."
        else:
            body = f"Designed for {surface}. {ctx['it']} {draft.next_claim()}."
        return f"【{surface.upper()}】{body}" if self.rng.random() < 0.1 else f"{surface.upper()}: {body}"

    def _bullets(self, draft: _Draft, ctx: dict[str, str], empty: bool) -> list[str]:
        rng = self.rng
        if empty:
            return []
        bullets = [self._attribute_bullet(draft, a, ctx) for a in draft.attributes if draft.placement[a] == "bullets"]
        target = max(rng.randint(3, 6), len(bullets))
        fillers = []
        while len(bullets) + len(fillers) < target:
            if draft.claims and rng.random() < 0.75:
                claim = draft.next_claim().removeprefix("is ")  # "Is roasted ..." -> "Roasted ..."
                text = claim[:1].upper() + claim[1:]
                fillers.append(f"{rng.choice(vocab.BULLET_HEADERS)}: {text}" if rng.random() < 0.3 else text)
            else:
                fillers.append(draft.next_closer(ctx))
        for bullet in bullets:
            fillers.insert(rng.randint(0, len(fillers)), bullet)
        if rng.random() < 0.02:  # WebShop's data has blank bullets, which show as empty [SEP] segments
            fillers.insert(rng.randint(0, len(fillers)), rng.choice(("", " ")))
        return fillers

    def _pricing(self, sub: vocab.SubCategory) -> str:
        rng = self.rng
        r = rng.random()
        if r < MISSING_PRICE_RATE:
            return ""
        low, high = sub.price_range
        x = low * (high / low) ** rng.random()
        first = int(x) + rng.choice(CENTS) / 100
        if r < MISSING_PRICE_RATE + RANGED_PRICE_RATE:
            second = max(int(x * rng.uniform(1.15, 2.0)), int(x) + 1) + rng.choice(CENTS) / 100
            return f"${first:,.2f} - ${second:,.2f}"
        return f"${first:,.2f}"

    def _raw_product(self, draft: _Draft) -> dict[str, Any]:
        rng = self.rng
        empty_bullets = rng.random() < 0.004
        if empty_bullets:  # keep every attribute in the text
            draft.placement = {a: "description" if w == "bullets" else w for a, w in draft.placement.items()}
        ctx = self._context(draft)
        images = [f"{IMAGE_ROOT}/{draft.asin}.jpg"]
        if rng.random() < 0.1:
            images.append(f"{IMAGE_ROOT}/{draft.asin}-2.jpg")
        return {
            "asin": draft.asin,
            "name": self._title(draft),
            "full_description": self._description(draft, ctx),
            "small_description": self._bullets(draft, ctx, empty_bullets),
            "pricing": self._pricing(draft.sub),
            "customization_options": draft.raw_options,
            "images": images,
            "category": draft.category.name,
            "query": draft.sub.query,
            "product_category": " › ".join((draft.category.top, *draft.leaf.path)),
            "brand": draft.brand,
            "product_information": {},
        }

    # ---- instructions --------------------------------------------------------------------

    def _attribute_record(self, draft: _Draft) -> dict[str, Any]:
        """The items_ins_v2 record, with WebShop's synthetic instruction for some products."""
        record: dict[str, Any] = {"attributes": list(draft.attributes)}
        rng = self.rng
        if not draft.attributes or rng.random() >= SYNTHETIC_INSTRUCTION_RATE:
            return record
        n = len(draft.attributes)
        k = n if rng.random() < 0.5 else rng.randint(1, n)
        chosen = set(rng.sample(draft.attributes, k))
        attrs = [a for a in draft.attributes if a in chosen]
        by_kind = {kind: [a for a in attrs if vocab.ATTRIBUTES[a].kind == kind] for kind in vocab.ATTRIBUTE_KINDS}
        text = " ".join(["Find me", *([", ".join(by_kind["pre"])] if by_kind["pre"] else []),
                         draft.leaf.path[-1].lower()])
        if by_kind["with"]:
            text += " with " + ", ".join(by_kind["with"])
        if by_kind["for"]:
            text += " for " + ", ".join(by_kind["for"])
        record["instruction"] = text
        record["instruction_attributes"] = attrs
        return record

    def _human_instructions(self, draft: _Draft) -> list[dict[str, Any]]:
        rng = self.rng
        if not draft.attributes or rng.random() >= HUMAN_INSTRUCTION_RATE:
            return []
        count = rng.choices((1, 2, 3), cum_weights=(60, 88, 100))[0]
        return [self._human_instruction(draft) for _ in range(count)]

    def _human_instruction(self, draft: _Draft) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.02:
            attrs: list[str] = []  # WebShop's human file has a few of these; goals skip them
        else:
            k = min(rng.choices((1, 2, 3), cum_weights=(50, 85, 100))[0], len(draft.attributes))
            chosen = set(rng.sample(draft.attributes, k))
            attrs = [a for a in draft.attributes if a in chosen]
        n_options = min(rng.choices((0, 1, 2), cum_weights=(20, 65, 100))[0], len(draft.options))
        options = [(name, rng.choice(values)) for name, values in rng.sample(draft.options, n_options)]
        return {
            "asin": draft.asin,
            "instruction": self._human_text(draft, attrs, options),
            "instruction_attributes": attrs,
            "instruction_options": [value for _, value in options],
        }

    def _human_text(self, draft: _Draft, attrs: list[str], options: list[tuple[str, str]]) -> str:
        """Lower-case request: lead, noun phrase, with/for clauses, options; never the price."""
        rng = self.rng
        surfaces = {kind: [self._surface(a) for a in attrs if vocab.ATTRIBUTES[a].kind == kind]
                    for kind in vocab.ATTRIBUTE_KINDS}
        noun = f"{draft.brand.lower()} {draft.noun}" if rng.random() < 0.08 else draft.noun
        trailing_pre = bool(surfaces["pre"]) and rng.random() < 0.3
        phrase = noun if trailing_pre or not surfaces["pre"] else f"{_join(surfaces['pre'], rng)} {noun}"
        clauses = [f"{word} {_join(surfaces[kind], rng)}" for word, kind in (("with", "with"), ("for", "for"))
                   if surfaces[kind]]
        if len(clauses) == 2 and rng.random() < 0.2:
            clauses.reverse()
        if trailing_pre:
            verb = "are" if _is_plural(draft.noun) else "is"
            lead_in = rng.choice((f"that {verb}", f"which {verb}", "that's" if verb == "is" else "that are"))
            clauses.append(f"{lead_in} {_join(surfaces['pre'], rng)}")
        if options:
            clauses.append(_join([self._option_phrase(name, value) for name, value in options], rng))
        text = f"{rng.choice(vocab.HUMAN_LEADS)} {_with_article(phrase, _is_plural(draft.noun), rng)}"
        for clause in clauses:
            text += (", " if rng.random() < 0.25 else " ") + clause
        ending = rng.random()
        return text + ("." if ending < 0.2 else " please" if ending < 0.25 else "")

    def _option_phrase(self, name: str, value: str) -> str:
        spoken = value.replace(" | ", "/" if any(c.isdigit() for c in value) else " and ")
        if name == "style" and spoken.startswith(("with ", "without ")):
            return spoken
        templates = vocab.OPTION_PHRASES.get(name, ("in {v}",))
        return self.rng.choice(templates).format(v=spoken)


def _cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _check_args(n_products: int, seed: int) -> None:
    if not isinstance(n_products, int) or isinstance(n_products, bool) or n_products < 1:
        raise ValueError(f"n_products must be a positive integer, got {n_products!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}.")


def category_mix(categories: Sequence[str] | None) -> tuple[str, ...] | None:
    """The canonical form of a category mix: names in the vocabulary's order, None for all.

    Args:
        categories: category names (case and surrounding spaces ignored), or None for all.

    Raises:
        ValueError: a name is not a category, the mix is empty, or `categories` is a bare string.
    """
    if categories is None:
        return None
    if isinstance(categories, str):
        raise ValueError(f"categories must be a list of names, not the string {categories!r}; "
                         "split a comma-separated list first.")
    valid = [cat.name for cat in vocab.CATEGORIES]
    wanted = {str(name).strip().lower() for name in categories} - {""}
    unknown = sorted(wanted - set(valid))
    if unknown:
        raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                         f"use some of: {', '.join(valid)}.")
    if not wanted:
        raise ValueError(f"categories is empty; name at least one of: {', '.join(valid)} (or None for all).")
    mix = tuple(name for name in valid if name in wanted)
    return None if len(mix) == len(valid) else mix


def generate_products(n_products: int, seed: int,
                      categories: Sequence[str] | None = None) -> tuple[list[dict], dict, dict]:
    """Return the three payloads (raw products, items_ins_v2, items_human_ins) without writing.

    The products list also holds the rows WebShop's loader skips (duplicate and invalid asins)
    when `n_products >= 50`; `n_products` valid products remain after loading.

    Args:
        n_products: number of products the loader keeps.
        seed: seed of the generator.
        categories: category names to draw from (see `category_mix`); None for all.

    Raises:
        ValueError: `n_products` is not a positive integer, `seed` is not an integer, or
            `categories` names an unknown category.
    """
    _check_args(n_products, seed)
    mix = category_mix(categories)
    products: list[dict] = []
    attributes: dict[str, dict] = {}
    human: dict[str, list[dict]] = {}
    for row in _Generator(n_products, seed, mix).rows():
        products.append(row.product)
        if row.record is not None:
            attributes[row.product["asin"]] = row.record
        if row.human:
            human[row.product["asin"]] = row.human
    return products, attributes, human


class _JsonStream:
    """Writes a JSON list or object item by item to a temp file; byte-equal to `json.dumps`."""

    def __init__(self, path: Path, opener: str) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._closer = "]" if opener == "[" else "}"
        self._first = True
        self._file: TextIO = self.tmp.open("w", encoding="ascii", buffering=1 << 20)
        self._file.write(opener)

    def add(self, text: str) -> None:
        self._file.write(text if self._first else ", " + text)
        self._first = False

    def finish(self) -> None:
        self._file.write(self._closer)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def generate_catalog(out_dir: Path | str, n_products: int = 1000, seed: int = 0,
                     categories: Sequence[str] | None = None) -> dict[str, Path]:
    """Write a synthetic catalogue in WebShop's file format into `out_dir` (created if missing).

    Files are written under temp names and renamed into place; `catalog_meta.json` is removed
    first and written last, so a folder with it holds a complete catalogue.

    Args:
        out_dir: destination folder.
        n_products: number of products the loader keeps (skipped rows come on top).
        seed: seed of the generator; the same (n_products, seed, categories) gives
            byte-identical files.
        categories: category names to draw from (see `category_mix`); None for all, which
            `catalog_meta.json` then does not mention.

    Returns:
        {"products": path, "attributes": path, "human_instructions": path}.

    Raises:
        ValueError: `n_products` is not a positive integer, `seed` is not an integer,
            `categories` names an unknown category, or `out_dir` is a file.
    """
    _check_args(n_products, seed)
    mix = category_mix(categories)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file; give a folder for the catalogue files.")
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    paths = {"products": out / PRODUCTS_FILE, "attributes": out / ATTRIBUTES_FILE,
             "human_instructions": out / HUMAN_FILE}
    streams: list[_JsonStream] = []
    try:
        for key, opener in (("products", "["), ("attributes", "{"), ("human_instructions", "{")):
            streams.append(_JsonStream(paths[key], opener))
        products, attributes, human = streams
        rows = tqdm(_Generator(n_products, seed, mix).rows(), desc="generating products", unit="row",
                    disable=n_products < PROGRESS_MIN_PRODUCTS, mininterval=2.0)
        for row in rows:
            products.add(json.dumps(row.product))
            key = json.dumps(row.product["asin"])
            if row.record is not None:
                attributes.add(f"{key}: {json.dumps(row.record)}")
            if row.human:
                human.add(f"{key}: {json.dumps(row.human)}")
        for stream in streams:
            stream.finish()
        for stream in streams:
            os.replace(stream.tmp, stream.path)
    finally:
        for stream in streams:
            stream.discard()  # no-op after a successful replace
    meta: dict[str, Any] = {"generator": GENERATOR_NAME, "version": GENERATOR_VERSION,
                            "n_products": n_products, "seed": seed}
    if mix is not None:
        meta["categories"] = list(mix)
    _write_atomic(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    logger.info("wrote a generated catalogue of %d products (seed %d, categories %s) to %s", n_products, seed,
                ", ".join(mix) if mix else "all", out)
    return paths
