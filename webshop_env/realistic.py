"""A small catalogue in WebShop's real schema, built from WebShop's real attribute file.

WebShop's attribute file (`items_ins_v2*.json`) holds, for some products, a synthetic
instruction such as "Find me tea tree scrubs & body treatments with natural ingredients" with
the attributes it asks for. The product file and the human instructions that go with it are
not always at hand; `build_real_schema_catalog` writes them from the attribute file alone:

- every record with an instruction becomes a *target* product under its real asin. The
  instruction is parsed into its product type (the leaf of WebShop's breadcrumb, "scrubs &
  body treatments") and its attributes before the noun, after "with" and after "for"; the
  title (about 60% of the attributes), description and bullets (all of them) are written from
  these real strings, the record's other attributes and filler sentences of its category;
- each target gets `distractors` near misses: products of the same type with most of its
  requested attributes but not all (the rest drawn from the real attributes of the same
  category), other brands, prices and option values;
- option groups (size, color, flavor, scent, style) follow the product type, prices the
  category; ranged prices ("$12.99 - $15.99") and option images as in WebShop's data;
- `items_human_ins.json` holds 1-2 human-style requests per target ("i am looking for ...")
  that name some of its attributes and some of its option values; `goals.py` adds the price cap;
- `items_ins_v2.json` holds the real records of the targets (so WebShop's synthetic goals
  work too) and the distractors' attribute records.

The category of a product type comes from keywords of its name; a type no keyword decides
takes the category of the nearest decided record in file order (WebShop's attribute file lists
its products category by category). Output is a pure function of the attribute file,
`seed` and `distractors`: all randomness comes from one private `random.Random(seed)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webshop_env import vocab
from webshop_env.catalog import CatalogError, read_attribute_file
from webshop_env.generate import (
    ASIN_CHARS,
    ATTRIBUTES_FILE,
    CENTS,
    HUMAN_FILE,
    IMAGE_ROOT,
    META_FILE,
    PRODUCTS_FILE,
    _join,
    _with_article,
    _write_atomic,
    clean_option_value,
    title_case,
)
from webshop_env.paths import real_schema_catalog_dir

logger = logging.getLogger(__name__)

BUILDER_NAME = "webshop_env.realistic"
BUILDER_VERSION = 1
DEFAULT_DISTRACTORS = 2
RANGED_PRICE_RATE = 0.15
TITLE_RATE = 0.6  # chance that an attribute is named in the title, as in sellers' titles
MAX_DRAWS = 20  # attempts at a distractor that answers no goal of its type
INSTRUCTION_PREFIX = "find me "

# category -> (breadcrumb top level, price range in dollars, brands)
CATEGORY_INFO: dict[str, tuple[str, tuple[float, float], tuple[str, ...]]] = {
    "beauty": ("Beauty & Personal Care", (5.0, 60.0), (
        "Lumiere Naturals", "Bellasoft", "Pure Harbor", "Verdant Skin", "Aurelle", "Mintique", "Oak & Ember",
        "Silkwave", "Dewberry Lab", "Nordic Bloom", "Kindred Botanics", "Glowline")),
    "food": ("Grocery & Gourmet Food", (3.0, 45.0), (
        "Harvest Table", "Golden Acre", "Little Orchard", "Crisp & Co", "Prairie Pantry", "Sunny Meadow",
        "Old Mill Foods", "Bluecrest", "Wild Thyme", "Farmstead Select")),
    "electronics": ("Electronics", (9.0, 320.0), (
        "Voltra", "Zenlink", "Arcwave", "Nexpro", "Sonivo", "Kestrel Tech", "Luxon", "Brightcore", "Pixelon",
        "Orbix", "Tellus Audio")),
    "fashion": ("Clothing, Shoes & Jewelry", (9.0, 90.0), (
        "Northway", "Urban Thread", "Coastline", "Maple & Main", "Ridgeport", "Velora", "Daybreak Apparel",
        "Stonefield", "Loomwell", "Alder Lane", "Harbor Mile")),
    "furniture": ("Home & Kitchen", (25.0, 650.0), (
        "Oakhaven", "Homestead Living", "Linden Home", "Brookside", "Nordvik", "Ashford & Co", "Willow Loft",
        "Cedar Crest", "Arden Interiors", "Modhaus")),
}

# Words of a product type name that decide its category (a type may hit none, or several).
CATEGORY_KEYWORDS: dict[str, frozenset[str]] = {
    "beauty": frozenset(
        "makeup lips lip eyes hair shampoo conditioner scrubs body skin toothpaste dental tongue fragrance "
        "deodorants antiperspirants nail shave wigs extensions cotton swabs refillable orthodontic piercing "
        "tattoo bathing bath masks floss".split()),
    "food": frozenset(
        "meat seafood snacks snack foods food candy chocolate beverages milks creams cheeses crackers fruit "
        "fruits raisins peas bars granola pantry frozen meal applesauce substitutes deli gifts".split()),
    "electronics": frozenset(
        "cables speakers cameras projectors receivers amplifiers soundbars screen protectors binoculars scopes "
        "flashes photography mounts surveillance iphone mac wearable technology boosters players recorders "
        "headphones headsets lenses chargers tripods monopods virtual reality turntables printers scanners "
        "vcrs television streaming power bluetooth wireless video game hdmi car".split()),
    "fashion": frozenset(
        "men's women's shirts shorts pants shoes sneakers boots sandals slippers pumps flats loafers oxfords "
        "dresses swimsuits hosiery socks activewear sweaters hoodies sweatshirts jeans polos suits underwear "
        "lingerie jumpsuits blazers jackets coats tees tanks henleys footwear clogs mules t-shirts".split()),
    "furniture": frozenset(
        "tables beds bedframes mattresses ottomans lamps sconces chandeliers pendants decorative pillows "
        "blankets candles cabinets desks chairs stools racks vanities bookcases armoires nightstands dining "
        "living plants window coverings trees islands stands furniture art".split()),
}

SHOE_WORDS = frozenset(
    "shoes sneakers boots sandals slippers pumps flats loafers oxfords clogs mules footwear".split())
SHADE_WORDS = frozenset("makeup lips eyes palettes coloring wigs extensions nail".split())
TOOL_WORDS = frozenset("tools brushes mirrors bags cases containers cleaners cutting shave accessories".split())
CABLE_WORDS = frozenset("cables chargers power".split())
DEVICE_WORDS = frozenset("screen protectors iphone lenses".split())
BED_WORDS = frozenset("beds bedframes mattresses".split())
TEXTILE_WORDS = frozenset("pillows blankets window coverings".split())

# Option value pools (raw case, as sellers write them; the loader lower-cases them).
POOLS: dict[str, tuple[str, ...]] = {
    "apparel_size": ("X-Small", "Small", "Medium", "Large", "X-Large", "XX-Large", "3X-Large"),
    "shoe_size": ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12"),
    "apparel_color": ("Black", "White", "Navy Blue", "Heather Grey", "Red", "Royal Blue", "Olive Green",
                      "Burgundy", "Pink", "Khaki", "Charcoal", "Light Blue", "Beige", "Brown", "Purple"),
    "shade": ("Natural Beige", "Warm Ivory", "Nude", "Ruby Red", "Coral Pink", "Mauve", "Berry", "Rose Gold",
              "Chocolate Brown", "Jet Black", "Champagne", "Plum", "Honey Blonde", "Ash Brown"),
    "scent": ("Unscented", "Lavender", "Coconut", "Eucalyptus", "Vanilla", "Citrus", "Rose", "Peppermint",
              "Sandalwood", "Fresh Linen", "Cucumber Melon"),
    "beauty_size": ("1 Fl Oz (Pack of 1)", "2 Fl Oz (Pack of 1)", "3.4 Fl Oz (Pack of 1)", "8 Fl Oz (Pack of 1)",
                    "16 Fl Oz (Pack of 1)", "8 Fl Oz (Pack of 2)", "1.7 Ounce", "4 Ounce", "12 Count", "24 Count"),
    "tool_color": ("Black", "White", "Rose Gold", "Silver", "Pink", "Clear", "Gold", "Purple", "Mint Green"),
    "pack": ("1 Count", "2 Count", "3 Count", "4 Count", "6 Count", "10 Count"),
    "flavor": ("Original", "Sea Salt", "Honey Roasted", "Barbecue", "Cheddar", "Sour Cream & Onion", "Chocolate",
               "Vanilla", "Strawberry", "Peanut Butter", "Cinnamon", "Spicy", "Garlic & Herb", "Lemon",
               "Mixed Berry", "Unsweetened"),
    "food_size": ("1.5 Ounce (Pack of 12)", "4 Ounce (Pack of 6)", "8 Ounce (Pack of 2)", "12 Ounce (Pack of 1)",
                  "16 Ounce (Pack of 1)", "2 Pound (Pack of 1)", "24 Count", "36 Count"),
    "tech_color": ("Black", "White", "Silver", "Space Gray", "Blue", "Red", "Rose Gold", "Green", "Midnight"),
    "cable_size": ("3 ft", "6 ft", "10 ft", "15 ft", "25 ft", "6 ft (2 Pack)"),
    "device": ("iPhone 13", "iPhone 13 Pro", "iPhone 13 Pro Max", "iPhone 12 Mini", "iPad Pro 11", "iPad Air",
               "Galaxy S21", "Pixel 6"),
    "tech_style": ("Standard", "with Carrying Case", "Bundle", "2 Pack", "Pro", "Starter Kit"),
    "wood_color": ("Black", "White", "Espresso", "Walnut", "Natural Oak", "Rustic Brown", "Grey", "Cherry",
                   "Light Grey", "Navy", "Beige", "Gold"),
    "bed_size": ("Twin", "Twin XL", "Full", "Queen", "King", "California King"),
    "textile_size": ("16 x 16 Inch", "18 x 18 Inch", "20 x 20 Inch", "12 x 20 Inch", "50 x 60 Inch",
                     "60 x 80 Inch"),
    "furniture_size": ("31.5 Inch", "39.4 Inch", "47.2 Inch", "55.1 Inch", "Small", "Large"),
}

FILLERS: dict[str, tuple[str, ...]] = {
    "beauty": (
        "Gentle enough for daily use on every skin type.", "Formulated without harsh chemicals.",
        "A light texture that absorbs quickly and leaves no greasy feel.", "Dermatologist approved formula.",
        "Travel friendly packaging that fits in any bag.", "Leaves you feeling fresh and cared for all day."),
    "food": (
        "Made in small batches for a fresh taste.", "A tasty snack for the office, school or road trips.",
        "Store in a cool, dry place and enjoy within weeks of opening.", "Packed with flavor in every bite.",
        "Great for sharing with family and friends.", "Made from carefully selected ingredients."),
    "electronics": (
        "Plug in and it works: no extra driver needed.", "Backed by a 12-month warranty and friendly support.",
        "Compact design that fits on any desk or shelf.", "Compatible with most devices on the market.",
        "Tested for reliable performance day after day.", "Low power draw keeps your bills down."),
    "fashion": (
        "A comfortable fit you can wear all day.", "Pairs well with jeans, shorts or a skirt.",
        "Soft fabric that keeps its shape wash after wash.", "Please check the size chart before ordering.",
        "A versatile piece for work, weekends and travel.", "Stylish design for every season."),
    "furniture": (
        "Sturdy construction built to last for years.", "Clear instructions and all hardware included.",
        "Fits well in small apartments and large homes alike.", "Wipe clean with a damp cloth.",
        "A timeless look that suits modern and classic rooms.", "Carefully packed to arrive without damage."),
}
CLOSERS = (
    "Satisfaction guaranteed: if you have any question, please contact us.",
    "Makes a thoughtful gift for family and friends.",
    "Backed by a 30-day money back guarantee.",
    "Please allow slight color differences due to screen settings.",
)
_PERSON_PREFIX = re.compile(r"^((?:wo)?men's|children's) ")
_GENERIC_PIECES = frozenset("foot hand frozen sets bases mac tools accessories products kits supplies care".split())


class RealSchemaError(CatalogError):
    """The attribute file cannot make a catalogue (no parseable instruction, bad arguments)."""


@dataclass(frozen=True)
class Request:
    """A record's synthetic instruction, parsed: "Find me <pre> <product type> with <with> for <for>".

    Attributes:
        asin: the record's asin.
        product_type: the leaf of the breadcrumb the instruction names, lower case.
        pre / with_ / for_: the instruction attributes before the type, after "with", after "for".
        attributes: all attributes of the record.
        position: the record's position in the attribute file.
    """

    asin: str
    product_type: str
    pre: tuple[str, ...]
    with_: tuple[str, ...]
    for_: tuple[str, ...]
    attributes: tuple[str, ...]
    position: int

    @property
    def instruction_attributes(self) -> list[str]:
        return [*self.pre, *self.with_, *self.for_]

    def kind_of(self, attribute: str) -> str:
        """'pre', 'with' or 'for' for an instruction attribute; 'with' for any other."""
        return "pre" if attribute in self.pre else "for" if attribute in self.for_ else "with"


def parse_instruction(text: str, attributes: Sequence[str]) -> tuple[tuple[str, ...], str, tuple[str, ...],
                                                                       tuple[str, ...]] | None:
    """Split WebShop's synthetic instruction into (pre, product type, with, for), or None.

    The "for" and "with" lists are read from the end (each item must be one of `attributes`);
    the attributes left must then open the text in their order, and what follows is the type.
    """
    body = text.strip()
    if not body.lower().startswith(INSTRUCTION_PREFIX):
        return None
    body = body[len(INSTRUCTION_PREFIX):].strip()
    tails: dict[str, tuple[str, ...]] = {"for": (), "with": ()}
    for word in ("for", "with"):
        head, sep, tail = body.rpartition(f" {word} ")
        if sep and all(a in attributes for a in tail.split(", ")):
            tails[word] = tuple(tail.split(", "))
            body = head
    used = set(tails["for"]) | set(tails["with"])
    pre = tuple(a for a in attributes if a not in used)
    for attribute in pre:
        for sep in (", ", " "):
            if body.startswith(attribute + sep):
                body = body[len(attribute) + len(sep):]
                break
        else:
            return None
    return (pre, body, tails["with"], tails["for"]) if body else None


def read_requests(records: dict[str, dict[str, Any]]) -> list[Request]:
    """The parseable instructions of an attribute file, in file order."""
    requests, unparsed = [], 0
    for position, (asin, record) in enumerate(records.items()):
        text, wanted = record.get("instruction"), record.get("instruction_attributes") or []
        if not text or not wanted or not isinstance(asin, str) or len(asin) > 10:
            continue
        parsed = parse_instruction(text, wanted)
        if parsed is None:
            unparsed += 1
            continue
        pre, product_type, with_, for_ = parsed
        requests.append(Request(asin, product_type, pre, with_, for_, tuple(record.get("attributes", [])), position))
    if unparsed:
        logger.warning("%d instructions of the attribute file do not read as 'Find me <attributes> <type> "
                       "with ... for ...' and were left out", unparsed)
    return requests


def type_words(product_type: str) -> set[str]:
    return set(re.split(r"[ ,&]+", product_type.lower())) - {""}


def categorize(requests: Sequence[Request]) -> list[str]:
    """The category of each request: keywords of its type, else the nearest decided one in file order."""
    decided: list[str | None] = []
    for request in requests:
        words = type_words(request.product_type)
        hits = {cat: len(words & keys) for cat, keys in CATEGORY_KEYWORDS.items()}
        best = max(hits.values())
        winners = [cat for cat, n in hits.items() if n == best]
        decided.append(winners[0] if best and len(winners) == 1 else None)
    known = [(r.position, cat) for r, cat in zip(requests, decided, strict=True) if cat is not None]
    if not known:
        raise RealSchemaError("no product type of the attribute file names a known category "
                              f"({', '.join(CATEGORY_INFO)}); is it WebShop's items_ins_v2 file?")
    return [cat if cat is not None else min(known, key=lambda k: abs(k[0] - r.position))[1]
            for r, cat in zip(requests, decided, strict=True)]


def option_plan(category: str, product_type: str) -> list[tuple[str, str]]:
    """The option groups a product of this type offers: (raw group name, value pool)."""
    words = type_words(product_type)
    if category == "fashion":
        return [("Size", "shoe_size" if words & SHOE_WORDS else "apparel_size"), ("Color", "apparel_color")]
    if category == "beauty":
        if words & SHADE_WORDS:
            return [("Color", "shade"), ("Size", "pack")]
        if words & TOOL_WORDS:
            return [("Color", "tool_color"), ("Size", "pack")]
        return [("Scent", "scent"), ("Size", "beauty_size")]
    if category == "food":
        return [("Flavor Name", "flavor"), ("Size", "food_size")]
    if category == "electronics":
        if words & DEVICE_WORDS:
            return [("Size", "device"), ("Color", "tech_color")]
        if words & CABLE_WORDS:
            return [("Size", "cable_size"), ("Color", "tech_color")]
        return [("Color", "tech_color"), ("Style", "tech_style")]
    if words & BED_WORDS:
        return [("Size", "bed_size"), ("Color", "wood_color")]
    if words & TEXTILE_WORDS:
        return [("Size", "textile_size"), ("Color", "wood_color")]
    return [("Color", "wood_color"), ("Size", "furniture_size")]


def type_pieces(product_type: str) -> list[str]:
    """Names a person would use for the type: the whole leaf, or one of its specific parts
    ("men's t-shirts & tanks" -> "men's t-shirts", "men's tanks")."""
    match = _PERSON_PREFIX.match(product_type)
    person, rest = (match.group(1) + " ", product_type[match.end():]) if match else ("", product_type)
    pieces = [p.strip() for p in re.split(r", | & | and ", rest) if p.strip()]
    specific = [person + p for p in pieces if p not in _GENERIC_PIECES and len(p) > 4]
    return [product_type, *specific] if len(pieces) > 1 else [product_type]


@dataclass
class _Product:
    """One product while it is written: its type, attributes with their kinds, options."""

    asin: str
    category: str
    request: Request
    brand: str
    attributes: list[str]  # the items_ins_v2 attributes
    shown: list[tuple[str, str]]  # (attribute, kind) written into title and description
    options: list[tuple[str, list[str]]]  # (raw group name, raw values)


class _Builder:
    """Writes products, distractors and human requests from one `random.Random(seed)`."""

    def __init__(self, requests: list[Request], categories: list[str], seed: int, distractors: int) -> None:
        self.rng = random.Random(seed)
        self.requests = requests
        self.categories = categories
        self.distractors = distractors
        self.asins = {r.asin for r in requests}
        pools: dict[str, dict[str, None]] = defaultdict(dict)
        for request, category in zip(requests, categories, strict=True):
            pools[category].update(dict.fromkeys((*request.attributes, *request.instruction_attributes)))
        self.attribute_pools = {cat: list(attrs) for cat, attrs in pools.items()}
        self.wanted_by_type: dict[str, list[set[str]]] = defaultdict(list)
        for request in requests:
            self.wanted_by_type[request.product_type].append(set(request.instruction_attributes))

    # ---- products ------------------------------------------------------------------------
    def products(self) -> list[_Product]:
        out = []
        for request, category in zip(self.requests, self.categories, strict=True):
            target = self._target(request, category)
            out.append(target)
            out.extend(self._distractor(target) for _ in range(self.distractors))
        return out

    def _target(self, request: Request, category: str) -> _Product:
        shown = [(a, request.kind_of(a)) for a in request.instruction_attributes]
        extras = [a for a in request.attributes if a not in request.instruction_attributes]
        shown += [(a, "with") for a in extras]
        return _Product(request.asin, category, request, self.rng.choice(CATEGORY_INFO[category][2]),
                        list(request.attributes) or request.instruction_attributes, shown, self._options(category, request))

    def _distractor(self, target: _Product) -> _Product:
        """Same type, another brand; some of the target's requested attributes, not all, and
        never all those of any target of the same type (so that no goal has two answers)."""
        rng = self.rng
        wanted = target.request.instruction_attributes
        rivals = self.wanted_by_type[target.request.product_type]
        others = [a for a in self.attribute_pools[target.category] if a not in wanted]
        for _ in range(MAX_DRAWS):
            n = len(wanted)
            keep = set(rng.sample(wanted, rng.randint(max(1, n - 2), n - 1) if n > 1 else 0))  # a near miss
            added = rng.sample(others, min(len(others), rng.randint(1, 2)))
            if not any(rival <= keep | set(added) for rival in rivals):
                break
        else:  # rare: only attributes no rival asks for
            keep = set()
            free = [a for a in others if not any(a in rival for rival in rivals)]
            added = rng.sample(free, min(len(free), 2))
        shown = [(a, target.request.kind_of(a)) for a in wanted if a in keep] + [(a, "with") for a in added]
        brands = [b for b in CATEGORY_INFO[target.category][2] if b != target.brand]
        return _Product(self._new_asin(), target.category, target.request, rng.choice(brands),
                        [a for a, _ in shown], shown, self._options(target.category, target.request))

    def _new_asin(self) -> str:
        while True:
            asin = "B0" + "".join(self.rng.choices(ASIN_CHARS, k=8))
            if asin not in self.asins:
                self.asins.add(asin)
                return asin

    def _options(self, category: str, request: Request) -> list[tuple[str, list[str]]]:
        rng = self.rng
        groups = option_plan(category, request.product_type)
        if rng.random() < 0.2:
            groups = groups[:1]  # many real products offer a single option group
        out = []
        for name, pool_name in groups:
            pool = POOLS[pool_name]
            k = rng.randint(2, min(6, len(pool)))
            if name == "Size":  # sizes come as a contiguous run, in order
                start = rng.randrange(len(pool) - k + 1)
                values = list(pool[start:start + k])
            else:
                values = rng.sample(pool, k)
            out.append((name, values))
        return out

    def raw(self, product: _Product) -> dict[str, Any]:
        """The product row in WebShop's `items_shuffle` schema."""
        top = CATEGORY_INFO[product.category][0]
        leaf = product.request.product_type
        match = _PERSON_PREFIX.match(leaf)
        path = [top]
        if match and product.category == "fashion":
            path.append("Women" if match.group(1) == "women's" else match.group(1).removesuffix("'s").title())
            leaf = leaf[match.end():]
        path.append(title_case(leaf))
        options = {
            name: [{"value": v, "image": f"{IMAGE_ROOT}/{product.asin}-{g}{j}.jpg" if name == "Color" else None}
                   for j, v in enumerate(values)]
            for g, (name, values) in enumerate(product.options)
        }
        return {
            "asin": product.asin,
            "name": self._title(product),
            "full_description": self._description(product),
            "small_description": self._bullets(product),
            "pricing": self._pricing(product.category),
            "customization_options": options,
            "images": [f"{IMAGE_ROOT}/{product.asin}.jpg"],
            "category": product.category,
            "query": product.request.product_type,
            "product_category": " › ".join(path),
            "brand": product.brand,
            "product_information": {"Brand": product.brand},
        }

    def _title(self, product: _Product) -> str:
        rng = self.rng
        by_kind = defaultdict(list)
        for attribute, kind in product.shown:
            if rng.random() < TITLE_RATE:  # the others are only in the description and bullets
                by_kind[kind].append(title_case(attribute))
        noun = title_case(product.request.product_type)
        head = " ".join((product.brand, *by_kind["pre"], noun))
        withs = by_kind["with"][:3]
        tail = [f"with {' and '.join(withs)}"] if withs else []
        tail += [f"for {' and '.join(by_kind['for'])}"] if by_kind["for"] else []
        style = rng.random()
        if style < 0.5:
            return " ".join((head, *tail))
        if style < 0.8:
            return f"{head} - " + ", ".join((*tail, *by_kind["with"][3:])) if tail else head
        return " | ".join((head.upper() if rng.random() < 0.3 else head, *tail))

    def _description(self, product: _Product) -> str:
        rng = self.rng
        noun = product.request.product_type
        plural = noun.endswith("s")
        sentences = [f"{'These' if plural else 'This'} {product.brand} {noun} {'are' if plural else 'is'} "
                     f"made for everyday use."]
        by_kind = defaultdict(list)
        for attribute, kind in product.shown:
            by_kind[kind].append(attribute)
        if by_kind["pre"]:
            sentences.append(f"{'They are' if plural else 'It is'} {_join(by_kind['pre'], rng)}.")
        if by_kind["with"]:
            sentences.append(f"{rng.choice(('Made with', 'Features', 'Comes with'))} {_join(by_kind['with'], rng)}.")
        if by_kind["for"]:
            sentences.append(f"{rng.choice(('Perfect for', 'Ideal for', 'Great for'))} {_join(by_kind['for'], rng)}.")
        fillers = list(FILLERS[product.category])
        rng.shuffle(fillers)
        sentences += fillers[:rng.randint(1, 3)]
        return " ".join(sentences)

    def _bullets(self, product: _Product) -> list[str]:
        rng = self.rng
        fillers = list(FILLERS[product.category])
        rng.shuffle(fillers)  # each filler once, as long as there are enough
        bullets = [f"{attribute.upper()}: {fillers[i % len(fillers)]}" for i, (attribute, _) in enumerate(product.shown)]
        spare = fillers[len(product.shown):]
        bullets += spare[:rng.randint(1, 2)] + [rng.choice(CLOSERS)]
        rng.shuffle(bullets)
        return bullets

    def _pricing(self, category: str) -> str:
        rng = self.rng
        low, high = CATEGORY_INFO[category][1]
        x = low * (high / low) ** rng.random()
        first = int(x) + rng.choice(CENTS) / 100
        if rng.random() < RANGED_PRICE_RATE:
            second = max(int(x * rng.uniform(1.15, 1.8)), int(x) + 1) + rng.choice(CENTS) / 100
            return f"${first:,.2f} - ${second:,.2f}"
        return f"${first:,.2f}"

    # ---- human requests --------------------------------------------------------------------
    def human(self, target: _Product) -> list[dict[str, Any]]:
        count = self.rng.choices((1, 2), cum_weights=(65, 100))[0]
        return [self._request(target) for _ in range(count)]

    def _request(self, target: _Product) -> dict[str, Any]:
        rng = self.rng
        request = target.request
        wanted = request.instruction_attributes
        k = min(len(wanted), rng.choices((1, 2, 3), cum_weights=(35, 75, 100))[0])
        chosen = set(rng.sample(wanted, k))
        attrs = [a for a in wanted if a in chosen]
        n_options = min(len(target.options), rng.choices((0, 1, 2), cum_weights=(15, 60, 100))[0])
        options = [(name, rng.choice(values)) for name, values in rng.sample(target.options, n_options)]
        by_kind = {kind: [a for a in attrs if request.kind_of(a) == kind] for kind in ("pre", "with", "for")}
        noun = rng.choice(type_pieces(request.product_type))
        phrase = " ".join((*([_join(by_kind["pre"], rng)] if by_kind["pre"] else []), noun))
        text = f"{rng.choice(vocab.HUMAN_LEADS)} {_with_article(phrase, noun.endswith('s'), rng)}"
        for word in ("with", "for"):
            if by_kind[word]:
                text += f" {word} {_join(by_kind[word], rng)}"
        cleaned = [(name.lower(), clean_option_value(value)) for name, value in options]
        if cleaned:
            phrases = [rng.choice(vocab.OPTION_PHRASES.get(n, ("in {v}",))).format(v=v) for n, v in cleaned]
            text += (", " if rng.random() < 0.4 else " ") + _join(phrases, rng)
        return {"asin": target.asin, "instruction": text, "instruction_attributes": attrs,
                "instruction_options": [v for _, v in cleaned]}


def build_real_schema_catalog(attributes_file: str | Path, out_dir: str | Path, seed: int = 0,
                              distractors: int = DEFAULT_DISTRACTORS) -> dict[str, Path]:
    """Write a catalogue in WebShop's real schema, built from WebShop's attribute file.

    Args:
        attributes_file: WebShop's `items_ins_v2*.json` (records with `instruction` become targets).
        out_dir: destination folder (created if missing); `catalog_meta.json` is written last.
        seed: seed of every draw; the same file, seed and distractors give byte-identical files.
        distractors: products of the same type per target that share only some of its attributes.

    Returns:
        {"products": path, "attributes": path, "human_instructions": path}.

    Raises:
        RealSchemaError: the file holds no parseable instruction, or an argument is invalid.
        CatalogError: the attribute file is missing or malformed.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RealSchemaError(f"seed must be an integer, got {seed!r}.")
    if not isinstance(distractors, int) or distractors < 0:
        raise RealSchemaError(f"distractors must be an integer >= 0, got {distractors!r}.")
    source = Path(attributes_file).expanduser()
    if not source.is_file():
        raise RealSchemaError(f"attribute file {source} not found; give WebShop's items_ins_v2*.json.")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise RealSchemaError(f"out_dir {out} is a file; give a folder for the catalogue files.")
    records = read_attribute_file(source)
    requests = read_requests(records)
    if not requests:
        raise RealSchemaError(f"{source}: no record has an 'instruction' with 'instruction_attributes'; "
                              "a real-schema catalogue is built from those.")
    builder = _Builder(requests, categorize(requests), seed, distractors)
    products = builder.products()
    rows = [builder.raw(p) for p in products]
    attributes = {p.asin: records[p.asin] if p.asin in records else {"attributes": p.attributes} for p in products}
    human = {p.asin: builder.human(p) for p in products if p.asin == p.request.asin}
    builder.rng.shuffle(rows)  # WebShop's items_shuffle: no product order to learn

    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    paths = {"products": out / PRODUCTS_FILE, "attributes": out / ATTRIBUTES_FILE,
             "human_instructions": out / HUMAN_FILE}
    for key, payload in (("products", rows), ("attributes", attributes), ("human_instructions", human)):
        _write_atomic(paths[key], json.dumps(payload))
    meta = {"builder": BUILDER_NAME, "version": BUILDER_VERSION, "source": source.name,
            "source_sha256": file_sha256(source), "seed": seed,
            "distractors": distractors, "n_products": len(rows), "n_targets": len(requests),
            "n_human_instructions": sum(len(v) for v in human.values())}
    _write_atomic(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    logger.info("wrote a real-schema catalogue of %d products (%d targets, seed %d) to %s",
                len(rows), len(requests), seed, out)
    return paths


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_real_schema_catalog(attributes_file: str | Path, seed: int = 0,
                               distractors: int = DEFAULT_DISTRACTORS) -> Path:
    """The cache folder of the real-schema catalogue of this attribute file, seed and
    distractors (keyed by the file's sha256), built on first use.

    Raises:
        RealSchemaError, CatalogError: as `build_real_schema_catalog`.
    """
    source = Path(attributes_file).expanduser()
    if not source.is_file():
        raise RealSchemaError(f"attribute file {source} not found; give WebShop's items_ins_v2*.json.")
    out = real_schema_catalog_dir(file_sha256(source), seed, distractors)
    if not (out / META_FILE).is_file():
        build_real_schema_catalog(source, out, seed=seed, distractors=distractors)
    return out
