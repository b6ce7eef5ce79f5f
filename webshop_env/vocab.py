"""Vocabulary of the synthetic catalogue: categories, brands, nouns, attributes and options.

Everything here is an immutable constant (tuples, frozen dataclasses, `MappingProxyType`), read
by `webshop_env.generate`. The brands are invented; the attribute phrases follow the style of
WebShop's attribute file (2-3 lower-case words such as "paraben free" or "living room").

Each attribute has a *kind* that decides where it sits in a phrase, as in WebShop's own
synthetic instructions ("Find me <pre> <noun> with <with> for <for>"):

- "pre": an adjective-like phrase placed before the noun ("paraben free face cream");
- "with": a feature placed after "with" ("headphones with deep bass");
- "for": a use placed after "for" ("moisturizer for sensitive skin").

Its *surfaces* are the ways it is written in product text and instructions; each surface
contains every word of the attribute, so a search for the attribute's words finds the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

ATTRIBUTE_KINDS = ("pre", "with", "for")


@dataclass(frozen=True)
class AttributeSpec:
    """How one attribute is written: its kind ("pre", "with", "for") and text surfaces."""

    kind: str
    surfaces: tuple[str, ...]


@dataclass(frozen=True)
class OptionGroup:
    """An option group a product may offer: raw name, value pool and chance of being offered."""

    name: str
    pool: str
    probability: float


@dataclass(frozen=True)
class Leaf:
    """The end of a breadcrumb (the levels below the top level) and the nouns sold there."""

    path: tuple[str, ...]
    nouns: tuple[str, ...]


@dataclass(frozen=True)
class SubCategory:
    """A search query and everything products scraped under it are made from."""

    query: str
    leaves: tuple[Leaf, ...]
    attributes: tuple[str, ...]
    options: tuple[OptionGroup, ...]
    price_range: tuple[float, float]
    modifiers: tuple[str, ...]
    specs: tuple[str, ...]
    claims: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """A top-level category (WebShop's `category` value) with its brands and sub-categories."""

    name: str
    top: str
    brands: tuple[str, ...]
    shared_attributes: tuple[str, ...]
    subcategories: tuple[SubCategory, ...]


def _t(text: str) -> tuple[str, ...]:
    """Split a '|'-separated list into a tuple of stripped items."""
    return tuple(item.strip() for item in text.split("|") if item.strip())


def _leaf(path: str, nouns: str) -> Leaf:
    return Leaf(tuple(level.strip() for level in path.split(">")), _t(nouns))


def _options(spec: str) -> tuple[OptionGroup, ...]:
    """Parse 'Name:pool:probability, ...' into option groups."""
    groups = []
    for item in spec.split(","):
        if item.strip():
            name, pool, probability = (part.strip() for part in item.split(":"))
            groups.append(OptionGroup(name, pool, float(probability)))
    return tuple(groups)


def _attribute_table(text: str) -> MappingProxyType:
    """Parse lines 'kind: attr; attr = surface | surface; ...' into attr -> AttributeSpec."""
    table: dict[str, AttributeSpec] = {}
    for line in text.strip().splitlines():
        kind, _, items = line.partition(":")
        for item in items.split(";"):
            if not item.strip():
                continue
            attr, _, surfaces = item.partition("=")
            attr = attr.strip()
            table[attr] = AttributeSpec(kind.strip(), _t(surfaces) or (attr,))
    return MappingProxyType(table)


# The first surface is the most common one; hyphenated forms come second on purpose, since
# a tokenizer that keeps hyphenated words whole would otherwise miss the attribute's words.
ATTRIBUTES = _attribute_table("""
pre: high quality = high quality | high-quality; long lasting = long lasting | long-lasting
pre: easy use = easy to use | easy use; easy clean = easy to clean | easy clean
pre: easy carry = easy to carry | easy carry; easy install = easy to install | easy install
pre: easy assemble = easy to assemble | easy assemble; heavy duty = heavy duty | heavy-duty
pre: light weight; eco friendly = eco friendly | eco-friendly; non slip = non slip | non-slip
pre: space saving = space saving | space-saving; non toxic = non toxic | non-toxic
pre: cruelty free = cruelty free | cruelty-free; paraben free = paraben free | paraben-free
pre: fragrance free = fragrance free | fragrance-free; oil free = oil free | oil-free
pre: sulfate free = sulfate free | sulfate-free; anti aging = anti aging | anti-aging
pre: color safe = color safe | color-safe; travel size = travel size | travel-size
pre: highly pigmented; smudge proof = smudge proof | smudge-proof; transfer proof
pre: quick dry = quick dry | quick-dry; chip resistant = chip resistant | chip-resistant
pre: high gloss; salon quality; noise cancelling = noise cancelling | noise-cancelling
pre: wireless bluetooth; hands free = hands free | hands-free; fast charging
pre: water resistant = water resistant | water-resistant; scratch resistant
pre: bubble free = bubble free | bubble-free; high definition; ultra hd
pre: wall mounted = wall mounted | wall-mounted; energy efficient; high speed = high speed | high-speed
pre: nylon braided; plug play = plug and play | plug play; dual port
pre: short sleeve; long sleeve; loose fit; slim fit; classic fit; relaxed fit
pre: machine wash = machine wash | machine wash cold; hand wash = hand wash | hand wash only
pre: wash cold; moisture wicking = moisture wicking | moisture-wicking; v neck = v neck | v-neck
pre: crew neck; lace up = lace up | lace-up; sterling silver; gold plated = gold plated | gold-plated
pre: rose gold; nickel free = nickel free | nickel-free
pre: gluten free = gluten free | gluten-free; low sugar; high protein; non gmo = non gmo | non-gmo
pre: dairy free = dairy free | dairy-free; low carb; plant based = plant based | plant-based
pre: keto friendly = keto friendly | keto-friendly; grain free = grain free | grain-free
pre: sugar free = sugar free | sugar-free; low sodium; msg free; caffeine free = caffeine free | caffeine-free
pre: usda organic; fair trade = fair trade | fair trade certified; kosher certified
pre: individually wrapped; medium roast; dark roast; low acid; single origin; small batch
pre: solid wood; high density; faux leather; mid century = mid century | mid-century
pre: noise free; height adjustable; high back; pu leather
pre: indoor outdoor = indoor outdoor | indoor and outdoor; uv resistant
pre: self watering = self watering | self-watering; solar powered = solar powered | solar-powered
pre: ip65 waterproof; dusk dawn = dusk to dawn; kink free = kink free | kink-free
pre: leak proof = leak proof | leak-proof; high pressure; easy storage
pre: weather resistant = weather resistant | weather-resistant; extra thick; sweat resistant
pre: stainless steel; bpa free = bpa free | bpa-free; double wall = double wall | double-wall
pre: vacuum insulated; wide mouth; dishwasher safe; easy setup; double layer
pre: machine washable; made usa = made in usa | made in the usa; soft chewy = soft and chewy | soft chewy
pre: limited ingredient; no pull = no pull | no-pull; quick release; soft padded; easy control
pre: super soft; all terrain = all terrain | all-terrain; off road = off road | off-road
with: natural ingredients; hyaluronic acid; vitamin c; vitamin e; shea butter
with: tea tree = tea tree oil | tea tree; argan oil; coconut oil; essential oils; matte finish
with: stereo sound; deep bass; battery life = long battery life; carrying case; tempered glass
with: drop protection; card holder; raised edges; remote control; voice control; hdmi ports
with: game mode; power delivery; overcharge protection; polyester spandex; cotton heather
with: button closure; soft fabric; tagless label; rubber sole; arch support; memory foam
with: breathable mesh; gift box; adjustable chain; simple ingredients; dark chocolate; real fruit
with: arabica beans = 100% arabica beans | arabica beans; resealable bag; sea salt; bold flavor
with: removable cushions; wood frame; storage space; metal frame; engineered wood; steel frame
with: wood slats; lumbar support; mesh back; drainage hole; motion sensor; brass fittings
with: carrying strap; alignment lines; straw lid; carry bag; rain fly; mesh windows
with: removable cover; waterproof liner; real meat; reflective strips; adjustable straps
with: storage box; embroidered eyes; led lights; rechargeable battery
for: sensitive skin; dry skin; fine lines; dark spots; hair growth; hair loss; dry hair
for: damaged hair; curly hair; dry lips; nail art; uv led = uv led lamps | uv led lamp
for: home theater; living room; small spaces; home office; daily wear; birthday gift
for: valentine day = valentine's day | valentine day; better sleep; immune support
for: outdoor patio; home gym; family camping; outdoor camping; large dogs; small dogs
for: anxiety relief; small breed; fresh breath; stem learning; fine motor = fine motor skills
for: creative play; baby shower; adults kids = adults and kids | kids and adults; home decor
""")

# Option values as a product page would list them; mixed case and '/' are added by the
# generator. Pools named in ORDERED_POOLS are scales (sizes, lengths): a product offers a
# contiguous run of them, in order; other pools are sampled in any order.
OPTION_POOLS = MappingProxyType({
    "apparel_color": _t("black | white | navy blue | heather gray | red | royal blue | wine red"
                        " | army green | light blue | pink | khaki | purple | dark gray | beige"
                        " | black/white | white/navy"),
    "shoe_color": _t("black | white | black/white | gray | navy blue | pink | beige | all black"
                     " | white/pink | blue | grey/mint"),
    "jewelry_color": _t("gold | silver | rose gold | white gold | gold/silver"),
    "device_color": _t("black | white | silver | space gray | rose gold | blue | midnight green"
                       " | red | pink | black/red"),
    "lip_shade": _t("nude | ruby red | berry | mauve | coral | rose pink | cherry | plum | caramel"
                    " | brick red | pink nude"),
    "nail_color": _t("classic red | nude pink | ballet pink | midnight blue | black | white"
                     " | lavender | coral | burgundy | glitter gold | mint green"),
    "home_color": _t("beige | light gray | dark gray | navy blue | cream | brown | dark green"
                     " | black | white | blue | teal | gray/white"),
    "wood_color": _t("rustic brown | walnut | black | white | espresso | natural | oak | black/gold"),
    "chair_color": _t("black | white | gray | blue | pink | red/black | black/white"),
    "planter_color": _t("white | black | terracotta | gray | sage green | cream | matte black | blue"),
    "light_color": _t("warm white | cool white | multicolor | color changing | warm white/multicolor"),
    "garden_color": _t("green | blue | black | gray | red"),
    "mat_color": _t("purple | black | blue | pink | gray | teal | green | navy blue | lavender"),
    "bottle_color": _t("black | white | navy blue | mint green | lavender | rose gold | sky blue"
                       " | red | black/white"),
    "tent_color": _t("green | blue | gray | orange | khaki"),
    "pet_color": _t("black | red | blue | pink | gray | brown | navy blue | camo | orange | green"),
    "plush_color": _t("brown | white | pink | gray | cream"),
    "toy_color": _t("red | blue | green | black | orange | yellow"),
    "apparel_size": _t("x-small | small | medium | large | x-large | xx-large | 3x-large"),
    "shoe_size": _t("5 | 5.5 | 6 | 6.5 | 7 | 7.5 | 8 | 8.5 | 9 | 9.5 | 10 | 10.5 | 11"),
    "necklace_length": _t("16 inch | 18 inch | 20 inch | 22 inch | 24 inch"),
    "beauty_volume": _t("0.5 fl oz | 1 fl oz | 1.7 fl oz | 2 fl oz | 3.4 fl oz | 4 fl oz | 8 fl oz"),
    "hair_volume": _t("8 fl oz | 12 fl oz | 16.9 fl oz | 33.8 fl oz | 16.9 fl oz (pack of 2)"),
    "phone_size": _t("6.1 inch | 6.5 inch | 6.7 inch"),
    "tv_size": _t("32 inch | 40 inch | 43 inch | 50 inch | 55 inch | 65 inch | 75 inch | 85 inch"),
    "cable_length": _t("1 ft | 3 ft | 6 ft | 10 ft | 3 ft/6 ft/10 ft"),
    "food_count": _t("6 count | 12 count | 15 count | 18 count | 24 count | 36 count"),
    "coffee_size": _t("10 ounce | 12 ounce | 1 pound | 2 pound | 5 pound"),
    "tea_count": _t("20 count | 40 count | 80 count | 100 count"),
    "food_weight": _t("2.5 ounce | 5.5 ounce | 8 ounce | 12 ounce | 1 pound | 2 pound"),
    "bed_size": _t("twin | twin xl | full | queen | king | california king"),
    "pet_size": _t("x-small | small | medium | large | x-large"),
    "treat_size": _t("5 ounce | 10 ounce | 16 ounce | 2 pound | 5 pound"),
    "planter_size": _t("4 inch | 6 inch | 8 inch | 10 inch | 12 inch | 14 inch"),
    "pack_count": _t("2 pack | 4 pack | 6 pack | 8 pack | 10 pack | 12 pack"),
    "hose_length": _t("25 ft | 50 ft | 75 ft | 100 ft | 150 ft"),
    "mat_thickness": _t("1/8 inch | 1/4 inch | 1/3 inch | 1/2 inch | 2/3 inch"),
    "bottle_capacity": _t("12 oz | 18 oz | 22 oz | 32 oz | 40 oz | 64 oz"),
    "tent_capacity": _t("1 person | 2 person | 3 person | 4 person | 6 person | 8 person | 10 person"),
    "pieces": _t("100 pieces | 150 pieces | 250 pieces | 500 pieces | 1000 pieces"),
    "plush_size": _t("8 inch | 12 inch | 16 inch | 20 inch | 24 inch | 36 inch"),
    "bar_flavor": _t("chocolate chip | peanut butter | double chocolate | cookies & cream"
                     " | salted caramel | birthday cake | blueberry | variety pack | almond butter"
                     " | mint chocolate"),
    "coffee_flavor": _t("original | hazelnut | french vanilla | caramel | mocha | pumpkin spice | decaf"),
    "tea_flavor": _t("chamomile | peppermint | ginger lemon | hibiscus | lavender | chai spice"
                     " | lemon balm | rooibos"),
    "seasoning_flavor": _t("original | garlic herb | smoky bbq | lemon pepper | cajun | chili lime"
                           " | italian herb | mesquite"),
    "treat_flavor": _t("chicken | beef | salmon | peanut butter | duck | lamb | bacon | sweet potato"),
    "scent": _t("lavender | vanilla | unscented | eucalyptus mint | coconut | citrus | rose"
                " | sandalwood | fresh linen | cucumber melon"),
    "pattern": _t("floral | striped | solid | leopard | plaid | polka dot | tie dye"),
    "sofa_material": _t("velvet | linen | faux leather | chenille | boucle | microfiber"),
    "chair_style": _t("with footrest | without footrest | with headrest | standard"),
    "block_style": _t("classic | city | castle | space | farm"),
})

ORDERED_POOLS = frozenset({
    "apparel_size", "shoe_size", "necklace_length", "beauty_volume", "hair_volume", "phone_size",
    "tv_size", "cable_length", "food_count", "coffee_size", "tea_count", "food_weight", "bed_size",
    "pet_size", "treat_size", "planter_size", "pack_count", "hose_length", "mat_thickness",
    "bottle_capacity", "tent_capacity", "pieces", "plush_size",
})

BEAUTY = Category(
    name="beauty",
    top="Beauty & Personal Care",
    brands=_t("Lumora | Velvessa | Auralis | Dewbloom | Kindara | Solvea | Pure Petal | Mirabelle"
              " | Nuvela | Evergleam | Saffi & Co | Botanyx"),
    shared_attributes=_t("high quality | long lasting | cruelty free | travel size | natural ingredients"),
    subcategories=(
        SubCategory(
            query="face moisturizer",
            leaves=(
                _leaf("Skin Care > Face > Creams & Moisturizers",
                      "face moisturizer | moisturizer | face cream | day cream | gel cream | face lotion"),
                _leaf("Skin Care > Face > Night Creams", "night cream | overnight cream | night moisturizer"),
            ),
            attributes=_t("paraben free | fragrance free | oil free | anti aging | hyaluronic acid"
                          " | vitamin c | shea butter | sensitive skin | dry skin | fine lines | dark spots"),
            options=_options("Size:beauty_volume:0.55, Scent:scent:0.15"),
            price_range=(8.0, 65.0),
            modifiers=_t("Hydrating | Daily | Lightweight | Ultra Rich | Advanced | Soothing | Firming"
                         " | Brightening | Intensive"),
            specs=_t("1.7 Fl Oz | 2 Oz | 50 ml | 1.7 Ounce | Pack of 2"),
            claims=_t("absorbs quickly without leaving a greasy feel | locks in moisture for up to 24 hours"
                      " | leaves skin soft, smooth and radiant | layers easily under makeup and sunscreen"
                      " | helps restore the skin barrier overnight | is dermatologist tested for everyday use"),
        ),
        SubCategory(
            query="shampoo",
            leaves=(
                _leaf("Hair Care > Shampoo & Conditioner > Shampoos",
                      "shampoo | clarifying shampoo | dry shampoo | volumizing shampoo"),
                _leaf("Hair Care > Shampoo & Conditioner > Conditioners",
                      "conditioner | leave-in conditioner | deep conditioner"),
                _leaf("Hair Care > Shampoo & Conditioner > Shampoo & Conditioner Sets",
                      "shampoo and conditioner set | shampoo set"),
            ),
            attributes=_t("sulfate free | paraben free | color safe | argan oil | tea tree | coconut oil"
                          " | essential oils | hair growth | hair loss | dry hair | damaged hair | curly hair"),
            options=_options("Size:hair_volume:0.5, Scent:scent:0.3"),
            price_range=(6.0, 45.0),
            modifiers=_t("Repairing | Moisturizing | Strengthening | Smoothing | Professional | Daily"
                         " | Nourishing"),
            specs=_t("16.9 Fl Oz | 12 Fl Oz | 8 Fl Oz | 33.8 Fl Oz | 2 Count"),
            claims=_t("cleanses gently without stripping natural oils | adds shine and softness from the first wash"
                      " | detangles hair and tames frizz | is safe for daily use on all hair types"
                      " | strengthens hair from root to tip"),
        ),
        SubCategory(
            query="lipstick",
            leaves=(
                _leaf("Makeup > Lips > Lipstick", "lipstick | matte lipstick | liquid lipstick | lipstick set"),
                _leaf("Makeup > Lips > Lip Glosses", "lip gloss | lip oil | tinted lip balm"),
                _leaf("Makeup > Lips > Lip Liners", "lip liner | lip pencil"),
            ),
            attributes=_t("highly pigmented | matte finish | smudge proof | transfer proof | vitamin e"
                          " | shea butter | dry lips"),
            options=_options("Color:lip_shade:0.85"),
            price_range=(5.0, 32.0),
            modifiers=_t("Velvet | Creamy | Satin | Ultra Matte | Glossy | Hydrating | Bold"),
            specs=_t("0.12 Oz | 3 Count | Set of 6 | 0.15 Fl Oz"),
            claims=_t("glides on smoothly in one stroke | stays put through meals and coffee"
                      " | delivers rich color that does not feather | keeps lips soft and comfortable all day"
                      " | comes in a slim case that fits any purse"),
        ),
        SubCategory(
            query="nail polish",
            leaves=(
                _leaf("Foot, Hand & Nail Care > Nail Art & Polish > Nail Polish",
                      "nail polish | nail polish set | nail lacquer"),
                _leaf("Foot, Hand & Nail Care > Nail Art & Polish > Gel Polish",
                      "gel polish | gel nail polish | gel polish kit"),
                _leaf("Foot, Hand & Nail Care > Nail Art & Polish > Top & Base Coats", "top coat | base coat"),
            ),
            attributes=_t("non toxic | quick dry | chip resistant | high gloss | salon quality | uv led | nail art"),
            options=_options("Color:nail_color:0.8"),
            price_range=(4.0, 35.0),
            modifiers=_t("Glossy | Salon | Shimmer | Pastel | Classic | Glitter | Neon"),
            specs=_t("0.5 Fl Oz | 15 ml | 6 Colors | 12 Pcs"),
            claims=_t("dries to a glossy finish in minutes | lasts up to 21 days without chipping"
                      " | applies evenly with a wide brush | removes easily with a soak-off remover"
                      " | gives a salon look at home"),
        ),
    ),
)

ELECTRONICS = Category(
    name="electronics",
    top="Electronics",
    brands=_t("Voltrix | Sonique | Nexora | Zentro | Audiomax | Kyvo | Brightlane | Orbix | Techley"
              " | Pulsewave | Corvix | Hexon"),
    shared_attributes=_t("high quality | easy use | easy install"),
    subcategories=(
        SubCategory(
            query="wireless headphones",
            leaves=(
                _leaf("Headphones, Earbuds & Accessories > Headphones > Over-Ear Headphones",
                      "headphones | wireless headphones | over-ear headphones | headset"),
                _leaf("Headphones, Earbuds & Accessories > Earbuds & In-Ear Headphones",
                      "earbuds | wireless earbuds | in-ear headphones | sports earbuds"),
                _leaf("Headphones, Earbuds & Accessories > Headphones > Gaming Headsets", "gaming headset"),
            ),
            attributes=_t("noise cancelling | wireless bluetooth | hands free | fast charging | stereo sound"
                          " | deep bass | battery life | carrying case | water resistant | easy carry"),
            options=_options("Color:device_color:0.75"),
            price_range=(15.0, 350.0),
            modifiers=_t("Active | Pro | Studio | Sport | Premium | Foldable | Bluetooth 5.3"),
            specs=_t("40H Playtime | Bluetooth 5.3 | 3.5mm Jack | USB-C Charging"),
            claims=_t("pairs instantly with phones, tablets and laptops | delivers clear calls with a built-in microphone"
                      " | keeps sound balanced at any volume | folds flat to fit in a bag"
                      " | stays comfortable during long listening sessions"),
        ),
        SubCategory(
            query="phone case",
            leaves=(
                _leaf("Cell Phones & Accessories > Cases, Holsters & Sleeves > Basic Cases",
                      "phone case | protective case | clear case | slim case | wallet case"),
                _leaf("Cell Phones & Accessories > Accessories > Screen Protectors",
                      "screen protector | privacy screen protector | camera lens protector"),
            ),
            attributes=_t("drop protection | tempered glass | heavy duty | scratch resistant | bubble free"
                          " | high definition | raised edges | card holder"),
            options=_options("Color:device_color:0.6, Size:phone_size:0.6"),
            price_range=(6.0, 40.0),
            modifiers=_t("Slim | Rugged | Crystal Clear | Ultra Thin | Shockproof | Military Grade | Full Body"),
            specs=_t("6.1 Inch | 6.7 Inch | 2 Pack | 3 Pack"),
            claims=_t("fits snugly with precise cutouts for every port | protects corners from drops and bumps"
                      " | keeps the screen crisp and responsive to touch"
                      " | installs in seconds with the included alignment frame | adds almost no bulk to your phone"),
        ),
        SubCategory(
            query="smart tv",
            leaves=(
                _leaf("Television & Video > Televisions", "smart tv | led tv | 4k tv | television"),
                _leaf("Television & Video > Televisions > Smart TVs", "smart tv | qled tv | 4k smart tv"),
            ),
            attributes=_t("high definition | ultra hd | remote control | home theater | wall mounted"
                          " | voice control | hdmi ports | energy efficient | game mode | living room"),
            options=_options("Size:tv_size:0.8"),
            price_range=(120.0, 2600.0),
            modifiers=_t("Smart | Ultra Slim | Frameless | QLED | Crystal | 4K UHD | HDR"),
            specs=_t("2024 Model | 60Hz | 120Hz | 4K UHD"),
            claims=_t("streams movies and shows from all major apps | renders deep blacks and vivid colors"
                      " | upscales older content to near 4K detail"
                      " | connects easily to game consoles and sound bars"
                      " | mounts on the wall or sits on the included stand"),
        ),
        SubCategory(
            query="phone charger",
            leaves=(
                _leaf("Cell Phones & Accessories > Chargers & Power Adapters > Wall Chargers",
                      "wall charger | usb c charger | fast charger | phone charger"),
                _leaf("Computers & Accessories > Cables & Accessories > Cables & Interconnects > USB Cables",
                      "charging cable | usb c cable | charger cable"),
                _leaf("Cell Phones & Accessories > Chargers & Power Adapters > Portable Power Banks",
                      "power bank | portable charger"),
            ),
            attributes=_t("fast charging | high speed | power delivery | nylon braided | plug play"
                          " | overcharge protection | dual port | easy carry"),
            options=_options("Color:device_color:0.5, Size:cable_length:0.45"),
            price_range=(7.0, 60.0),
            modifiers=_t("Fast | Compact | 20W | 65W | Braided | Magnetic | Foldable"),
            specs=_t("3 Pack | 6 Ft | 20W | 10000mAh"),
            claims=_t("charges a phone to 50% in about 30 minutes | works with phones, tablets, earbuds and more"
                      " | protects devices from overheating and short circuits"
                      " | fits easily in a pocket or travel bag | holds up to thousands of bends"),
        ),
    ),
)

FASHION = Category(
    name="fashion",
    top="Clothing, Shoes & Jewelry",
    brands=_t("Maplewood Co | Urbanella | Threadline | Solvane | Northbay | Velora | Kestrel & Co"
              " | Driftwood | Amberly | Cozyfield | Rowan Lane | Tidewear"),
    shared_attributes=_t("high quality | daily wear"),
    subcategories=(
        SubCategory(
            query="women's tops",
            leaves=(
                _leaf("Women > Clothing > Tops, Tees & Blouses",
                      "women's blouse | women's tunic top | women's t-shirt | women's tops"),
                _leaf("Women > Clothing > Tops, Tees & Blouses > Tank Tops & Camis",
                      "women's tank top | women's camisole"),
            ),
            attributes=_t("short sleeve | long sleeve | loose fit | v neck | crew neck | polyester spandex"
                          " | machine wash | button closure | relaxed fit | soft fabric | hand wash"),
            options=_options("Color:apparel_color:0.9, Size:apparel_size:0.95, Pattern:pattern:0.15"),
            price_range=(9.0, 45.0),
            modifiers=_t("Casual | Summer | Flowy | Basic | Boho | Elegant | Loose"),
            specs=_t("S-XXL | Plus Size | 2024"),
            claims=_t("pairs easily with jeans, leggings or shorts | drapes loosely for a flattering look"
                      " | feels soft and breathable in warm weather | keeps its shape after many washes"
                      " | works for the office, weekends and vacations"),
        ),
        SubCategory(
            query="men's t-shirts",
            leaves=(
                _leaf("Men > Clothing > Shirts > T-Shirts", "men's t-shirt | men's graphic tee | men's crew neck tee"),
                _leaf("Men > Clothing > Shirts > Polos", "men's polo shirt | men's golf shirt"),
                _leaf("Men > Clothing > Shirts > Henleys", "men's henley shirt"),
            ),
            attributes=_t("classic fit | machine wash | slim fit | short sleeve | long sleeve | cotton heather"
                          " | moisture wicking | wash cold | tagless label | crew neck"),
            options=_options("Color:apparel_color:0.9, Size:apparel_size:0.95"),
            price_range=(8.0, 40.0),
            modifiers=_t("Classic | Athletic | Vintage | Heavyweight | Soft | Everyday | Performance"),
            specs=_t("S-3XL | Pack of 3 | Regular Fit"),
            claims=_t("feels soft from the very first wear | keeps you cool and dry on active days"
                      " | holds its color wash after wash | has a comfortable, true-to-size fit"
                      " | layers well under jackets and flannels"),
        ),
        SubCategory(
            query="women's sneakers",
            leaves=(
                _leaf("Women > Shoes > Fashion Sneakers",
                      "women's sneakers | women's walking shoes | women's slip-on sneakers"),
                _leaf("Women > Shoes > Athletic > Running", "women's running shoes | women's trail shoes"),
                _leaf("Women > Shoes > Loafers & Slip-Ons", "women's loafers | women's slip-on shoes"),
            ),
            attributes=_t("rubber sole | non slip | arch support | memory foam | lace up | light weight"
                          " | breathable mesh"),
            options=_options("Color:shoe_color:0.9, Size:shoe_size:0.95"),
            price_range=(20.0, 120.0),
            modifiers=_t("Breathable | Casual | Comfortable | Athletic | Platform | Knit | Cushioned"),
            specs=_t("Size 5-11 | Wide Width | Regular Width"),
            claims=_t("cushions every step on long walks | grips wet and dry floors | slips on and off in seconds"
                      " | keeps feet cool with a breathable upper | runs true to size"),
        ),
        SubCategory(
            query="women's necklace",
            leaves=(
                _leaf("Women > Jewelry > Necklaces > Pendants", "pendant necklace | heart necklace | women's necklace"),
                _leaf("Women > Jewelry > Necklaces > Chains", "chain necklace | choker necklace"),
                _leaf("Women > Jewelry > Bracelets", "bracelet | charm bracelet"),
            ),
            attributes=_t("sterling silver | gold plated | rose gold | nickel free | gift box | birthday gift"
                          " | valentine day | adjustable chain"),
            options=_options("Color:jewelry_color:0.7, Size:necklace_length:0.4"),
            price_range=(12.0, 150.0),
            modifiers=_t("Dainty | Minimalist | Delicate | Layered | Classic | Sparkling | Personalized"),
            specs=_t("18 Inch Chain | 14K | 925 Silver | Gift for Women"),
            claims=_t("sparkles in any light | comes ready to give in an elegant box"
                      " | sits comfortably on the collarbone | resists tarnish with everyday wear"
                      " | adds a delicate touch to any outfit"),
        ),
    ),
)

FOOD = Category(
    name="food",
    top="Grocery & Gourmet Food",
    brands=_t("Harvest Lane | Golden Acre | Nutrisol | Maple & Oak | Sunnybrook | Kettle Creek"
              " | Wildgrain | Purely North | Fieldstone | Brookside | Copper Kettle | Highmeadow"),
    shared_attributes=_t("gluten free | non gmo"),
    subcategories=(
        SubCategory(
            query="protein bars",
            leaves=(
                _leaf("Snack Foods > Bars > Protein Bars", "protein bars | protein bar"),
                _leaf("Snack Foods > Bars > Granola Bars", "granola bars | chewy granola bars"),
                _leaf("Snack Foods > Bars > Nutrition Bars", "nutrition bars | energy bars"),
            ),
            attributes=_t("high protein | low sugar | dairy free | low carb | plant based | keto friendly"
                          " | grain free | simple ingredients | real fruit | dark chocolate | individually wrapped"),
            options=_options("Flavor Name:bar_flavor:0.85, Size:food_count:0.6"),
            price_range=(8.0, 40.0),
            modifiers=_t("Chewy | Crunchy | Soft Baked | Whole Grain | Protein Packed | Nutty"),
            specs=_t("12 Count | 1.76 Oz (Pack of 12) | 15 Bars | 2.1 Oz Each"),
            claims=_t("packs 20 grams of protein into every bar | makes a filling snack between meals"
                      " | tastes like dessert without the sugar crash"
                      " | fits in a gym bag, lunch box or desk drawer"
                      " | is made in a facility that avoids common allergens"),
        ),
        SubCategory(
            query="ground coffee",
            leaves=(
                _leaf("Beverages > Coffee, Tea & Cocoa > Coffee > Ground Coffee", "ground coffee | coffee"),
                _leaf("Beverages > Coffee, Tea & Cocoa > Coffee > Whole Coffee Beans",
                      "whole bean coffee | coffee beans"),
                _leaf("Beverages > Coffee, Tea & Cocoa > Coffee > Single-Serve Capsules & Pods",
                      "coffee pods | single serve coffee pods"),
            ),
            attributes=_t("medium roast | dark roast | fair trade | usda organic | low acid | single origin"
                          " | arabica beans | resealable bag"),
            options=_options("Flavor Name:coffee_flavor:0.6, Size:coffee_size:0.6"),
            price_range=(7.0, 45.0),
            modifiers=_t("Colombian | House Blend | Breakfast Blend | Espresso | Bold | Smooth | French Roast"),
            specs=_t("12 Ounce Bag | 2 Pound | 32 Ounce | 24 Count"),
            claims=_t("is roasted in small batches for a fresh, rich flavor"
                      " | brews a smooth cup with notes of chocolate and caramel"
                      " | works with drip machines, pour over and french press"
                      " | is sealed fresh right after roasting | makes a bold cup without bitterness"),
        ),
        SubCategory(
            query="herbal tea",
            leaves=(
                _leaf("Beverages > Coffee, Tea & Cocoa > Tea > Herbal",
                      "herbal tea | tea bags | herbal tea bags | loose leaf tea"),
                _leaf("Beverages > Coffee, Tea & Cocoa > Tea > Green", "green tea | matcha green tea"),
            ),
            attributes=_t("caffeine free | usda organic | kosher certified | better sleep | immune support"
                          " | natural ingredients | individually wrapped"),
            options=_options("Flavor Name:tea_flavor:0.75, Size:tea_count:0.5"),
            price_range=(4.0, 30.0),
            modifiers=_t("Calming | Soothing | Relaxing | Refreshing | Wellness | Bedtime"),
            specs=_t("20 Tea Bags | 100 Count | 4 Ounce | Pack of 6"),
            claims=_t("steeps a fragrant cup in just five minutes | is blended from whole herbs and flowers"
                      " | makes a calming cup before bed | tastes great hot or iced"
                      " | comes in individually sealed bags that stay fresh"),
        ),
        SubCategory(
            query="seasoning",
            leaves=(
                _leaf("Pantry Staples > Herbs, Spices & Seasonings > Mixed Spices & Seasonings",
                      "seasoning | seasoning blend | spice blend | dry rub"),
                _leaf("Pantry Staples > Condiments & Salad Dressings > Hot Sauce", "hot sauce | chili sauce"),
            ),
            attributes=_t("low sodium | msg free | sugar free | keto friendly | kosher certified | small batch"
                          " | bold flavor | sea salt"),
            options=_options("Flavor Name:seasoning_flavor:0.7, Size:food_weight:0.5"),
            price_range=(4.0, 28.0),
            modifiers=_t("Smoky | Zesty | All Purpose | Spicy | Savory | Classic"),
            specs=_t("5.5 Ounce | 12 Ounce | Pack of 3 | 2.5 Oz"),
            claims=_t("brings out the best in grilled meats and vegetables"
                      " | is blended from hand-picked herbs and spices | adds flavor without extra calories"
                      " | works as a rub, marinade or finishing touch | comes in a shaker jar for easy pouring"),
        ),
    ),
)

FURNITURE = Category(
    name="furniture",
    top="Home & Kitchen",
    brands=_t("Oakhaven | Nordhus | Lindenwood | Casa Vela | Hearthline | Birchmont | Ellery Home"
              " | Stonebridge | Woodlark | Cove & Co | Marlowe | Alderbay"),
    shared_attributes=_t("easy assemble | easy clean | high quality"),
    subcategories=(
        SubCategory(
            query="sofa",
            leaves=(
                _leaf("Furniture > Living Room Furniture > Sofas & Couches",
                      "sofa | couch | loveseat | sleeper sofa | sectional sofa"),
                _leaf("Furniture > Living Room Furniture > Futons", "futon | futon sofa"),
            ),
            attributes=_t("living room | solid wood | high density | memory foam | faux leather | wood frame"
                          " | mid century | small spaces | removable cushions"),
            options=_options("Color:home_color:0.85, Material:sofa_material:0.3"),
            price_range=(180.0, 2400.0),
            modifiers=_t("Modern | Convertible | Tufted | Upholstered | Oversized | Compact | Contemporary"),
            specs=_t("3 Seater | 2 Seater | 72 Inch | 84 Inch"),
            claims=_t("seats three adults comfortably | has deep cushions that keep their shape"
                      " | fits neatly in apartments and small rooms | assembles in about 20 minutes without tools"
                      " | adds a cozy focal point to any room"),
        ),
        SubCategory(
            query="coffee table",
            leaves=(
                _leaf("Furniture > Living Room Furniture > Tables > Coffee Tables",
                      "coffee table | lift top coffee table | round coffee table"),
                _leaf("Furniture > Living Room Furniture > Tables > End Tables", "end table | side table"),
                _leaf("Furniture > Living Room Furniture > Tables > Sofa Tables", "console table | sofa table"),
            ),
            attributes=_t("living room | storage space | metal frame | solid wood | tempered glass"
                          " | mid century | space saving | engineered wood"),
            options=_options("Color:wood_color:0.75"),
            price_range=(40.0, 450.0),
            modifiers=_t("Rustic | Industrial | Modern | Farmhouse | Round | Rectangular | 2-Tier"),
            specs=_t("40 Inch | 47 Inch | Set of 2 | 2-Tier"),
            claims=_t("holds books, remotes and decor on a sturdy shelf | supports up to 100 pounds"
                      " | has a surface that wipes clean | comes with all hardware and clear instructions"
                      " | fits beside sofas, beds and reading chairs"),
        ),
        SubCategory(
            query="bed frame",
            leaves=(
                _leaf("Furniture > Bedroom Furniture > Beds, Frames & Bases > Bed Frames",
                      "bed frame | metal bed frame | platform bed frame"),
                _leaf("Furniture > Bedroom Furniture > Beds, Frames & Bases > Beds", "platform bed | upholstered bed"),
                _leaf("Furniture > Bedroom Furniture > Beds, Frames & Bases > Headboards", "headboard"),
            ),
            attributes=_t("heavy duty | noise free | storage space | solid wood | wood slats | steel frame"
                          " | faux leather"),
            options=_options("Size:bed_size:0.9, Color:home_color:0.5"),
            price_range=(90.0, 900.0),
            modifiers=_t("Modern | Industrial | Minimalist | Rustic | Tufted | Low Profile | Classic"),
            specs=_t("Queen Size | Full Size | King Size | 14 Inch"),
            claims=_t("supports up to 1,500 pounds with steel slats | leaves plenty of room for storage underneath"
                      " | stays quiet with no squeaks | sets up in under 30 minutes"
                      " | works with memory foam, spring and hybrid mattresses"),
        ),
        SubCategory(
            query="office chair",
            leaves=(
                _leaf("Furniture > Home Office Furniture > Home Office Chairs > Home Office Desk Chairs",
                      "office chair | desk chair | ergonomic office chair | executive chair"),
                _leaf("Furniture > Game & Recreation Room Furniture > Gaming Chairs", "gaming chair"),
            ),
            attributes=_t("lumbar support | home office | height adjustable | high back | pu leather"
                          " | mesh back | heavy duty"),
            options=_options("Color:chair_color:0.8, Style:chair_style:0.35"),
            price_range=(50.0, 520.0),
            modifiers=_t("Ergonomic | Executive | Mid Back | Swivel | Rolling | Reclining | Task"),
            specs=_t("300 lbs Capacity | with Wheels | Adjustable Height"),
            claims=_t("supports your back through long work days | swivels 360 degrees and rolls smoothly"
                      " | adjusts in height with a simple lever | holds up to 300 pounds"
                      " | assembles in about 15 minutes"),
        ),
    ),
)

GARDEN = Category(
    name="garden",
    top="Patio, Lawn & Garden",
    brands=_t("Greenhaven | Terraleaf | Sunward | Bloomfield | Mossy Stone | Fernridge | Yardly"
              " | Petalcrest | Cedar Grove | Gardenia Works"),
    shared_attributes=_t("easy install | weather resistant | heavy duty"),
    subcategories=(
        SubCategory(
            query="planters",
            leaves=(
                _leaf("Gardening & Lawn Care > Pots, Planters & Container Accessories > Planters",
                      "planter | plant pot | flower pot | ceramic planter"),
                _leaf("Gardening & Lawn Care > Pots, Planters & Container Accessories > Hanging Planters",
                      "hanging planter | hanging basket"),
                _leaf("Gardening & Lawn Care > Raised Beds", "raised garden bed | planter box"),
            ),
            attributes=_t("drainage hole | indoor outdoor | uv resistant | self watering | home decor | easy clean"),
            options=_options("Color:planter_color:0.7, Size:planter_size:0.6"),
            price_range=(10.0, 120.0),
            modifiers=_t("Modern | Decorative | Large | Minimalist | Rustic | Matte"),
            specs=_t("8 Inch | 6 Inch | Set of 3 | 10 Inch"),
            claims=_t("drains excess water to keep roots healthy | suits succulents, herbs and houseplants"
                      " | brightens up patios, porches and windowsills | resists fading in direct sunlight"
                      " | is light enough to move around easily"),
        ),
        SubCategory(
            query="solar lights outdoor",
            leaves=(
                _leaf("Outdoor Décor > Outdoor Lighting > Pathway Lights",
                      "solar pathway lights | solar lights | pathway lights"),
                _leaf("Outdoor Décor > Outdoor Lighting > String Lights", "string lights | solar string lights"),
                _leaf("Outdoor Décor > Outdoor Lighting > Flood & Spot Lights", "flood light | solar spotlight"),
            ),
            attributes=_t("solar powered | motion sensor | ip65 waterproof | dusk dawn | long lasting"
                          " | outdoor patio"),
            options=_options("Color:light_color:0.7, Size:pack_count:0.6"),
            price_range=(12.0, 90.0),
            modifiers=_t("Bright | Decorative | Waterproof | LED | Landscape | Wireless"),
            specs=_t("8 Pack | 4 Pack | 33 Ft | 100 LED"),
            claims=_t("charges in the sun and lights up automatically at night | installs in minutes with no wiring"
                      " | lights up for up to 10 hours on a full charge | holds up in rain, snow and heat"
                      " | adds a warm glow to walkways and gardens"),
        ),
        SubCategory(
            query="garden hose",
            leaves=(
                _leaf("Gardening & Lawn Care > Watering Equipment > Garden Hoses",
                      "garden hose | expandable garden hose | water hose"),
                _leaf("Gardening & Lawn Care > Watering Equipment > Hose Nozzles", "hose nozzle | spray nozzle"),
                _leaf("Gardening & Lawn Care > Watering Equipment > Hose Reels", "hose reel"),
            ),
            attributes=_t("kink free | leak proof | brass fittings | light weight | high pressure | easy storage"),
            options=_options("Size:hose_length:0.8, Color:garden_color:0.4"),
            price_range=(12.0, 110.0),
            modifiers=_t("Expandable | Flexible | Durable | Commercial Grade | Professional"),
            specs=_t("50 Ft | 100 Ft | 5/8 Inch | 10 Patterns"),
            claims=_t("expands to full length under water pressure | resists kinks, tangles and cracks"
                      " | connects to standard outdoor faucets | stores neatly on a hook or reel"
                      " | waters lawns, washes cars and cleans patios"),
        ),
    ),
)

SPORTS = Category(
    name="sports",
    top="Sports & Outdoors",
    brands=_t("Peakform | Trailborn | Apexa | Stridewell | Summitra | Corefit | Ridgeback | Iron Oak"
              " | Vantage Outdoors | Flexora"),
    shared_attributes=_t("high quality | easy carry | easy clean"),
    subcategories=(
        SubCategory(
            query="yoga mat",
            leaves=(
                _leaf("Sports & Fitness > Exercise & Fitness > Yoga > Yoga Mats",
                      "yoga mat | exercise mat | workout mat | fitness mat"),
                _leaf("Sports & Fitness > Exercise & Fitness > Yoga > Yoga Blocks", "yoga block | yoga blocks"),
            ),
            attributes=_t("non slip | extra thick | carrying strap | eco friendly | high density | home gym"
                          " | sweat resistant | alignment lines"),
            options=_options("Color:mat_color:0.8, Size:mat_thickness:0.5"),
            price_range=(12.0, 90.0),
            modifiers=_t("Thick | Premium | Reversible | Cushioned | Travel | Professional"),
            specs=_t("72 x 24 Inch | 6mm | 1/4 Inch | 2 Pack"),
            claims=_t("cushions knees, hips and elbows on hard floors | stays in place during hot yoga and pilates"
                      " | rolls up tight for easy carrying | wipes clean with soap and water"
                      " | is free of latex and PVC"),
        ),
        SubCategory(
            query="water bottle",
            leaves=(
                _leaf("Outdoor Recreation > Camping & Hiking > Hydration & Filtration > Water Bottles",
                      "water bottle | insulated water bottle | sports water bottle"),
                _leaf("Outdoor Recreation > Camping & Hiking > Hydration & Filtration > Tumblers",
                      "tumbler | travel tumbler"),
            ),
            attributes=_t("stainless steel | bpa free | leak proof | double wall | vacuum insulated"
                          " | wide mouth | dishwasher safe | straw lid"),
            options=_options("Color:bottle_color:0.8, Capacity:bottle_capacity:0.6"),
            price_range=(9.0, 50.0),
            modifiers=_t("Sport | Travel | Reusable | Motivational | Durable | Kids"),
            specs=_t("32 Oz | 24 Oz | 40 Oz | 2 Lids"),
            claims=_t("keeps drinks cold for 24 hours and hot for 12 | fits most cup holders"
                      " | seals tight so nothing spills in your bag | is easy to fill with ice cubes"
                      " | never sweats or leaves rings on tables"),
        ),
        SubCategory(
            query="camping tent",
            leaves=(
                _leaf("Outdoor Recreation > Camping & Hiking > Tents & Shelters > Camping Tents",
                      "camping tent | dome tent | backpacking tent | family tent | instant tent"),
            ),
            attributes=_t("easy setup | water resistant | carry bag | double layer | family camping"
                          " | outdoor camping | rain fly | mesh windows | light weight"),
            options=_options("Size:tent_capacity:0.8, Color:tent_color:0.5"),
            price_range=(35.0, 400.0),
            modifiers=_t("Instant | Pop Up | Lightweight | All Season | Family | Cabin"),
            specs=_t("2 Person | 4 Person | 6 Person | 10x8 Ft"),
            claims=_t("sets up in about 60 seconds | keeps you dry in light rain and wind"
                      " | packs down small for the trunk or backpack | has room for an air mattress and gear"
                      " | stays cool with large windows"),
        ),
    ),
)

PET = Category(
    name="pet",
    top="Pet Supplies",
    brands=_t("Pawsome | Furlander | Happy Tails Co | Barkwell | Whiskerly | Petvana | Snugglepup"
              " | Trusty Paw | Meadow Pet | Kibblecraft"),
    shared_attributes=_t("high quality | non toxic"),
    subcategories=(
        SubCategory(
            query="dog bed",
            leaves=(
                _leaf("Dogs > Beds & Furniture > Beds", "dog bed | orthopedic dog bed | calming dog bed | pet bed"),
                _leaf("Cats > Beds & Furniture > Beds", "cat bed | pet bed"),
            ),
            attributes=_t("machine washable | memory foam | non slip | removable cover | large dogs"
                          " | small dogs | waterproof liner | anxiety relief | easy clean"),
            options=_options("Color:pet_color:0.75, Size:pet_size:0.9"),
            price_range=(18.0, 150.0),
            modifiers=_t("Plush | Donut | Bolster | Cozy | Fluffy | Washable"),
            specs=_t("30 Inch | 36 x 27 Inch | Medium | Large"),
            claims=_t("gives aging joints the support they need | has raised rims that make pets feel secure"
                      " | unzips easily for a quick wash | stays put on wood and tile floors"
                      " | keeps pets warm on chilly nights"),
        ),
        SubCategory(
            query="dog treats",
            leaves=(
                _leaf("Dogs > Treats > Jerky Treats", "dog treats | jerky treats | training treats"),
                _leaf("Dogs > Treats > Dental Treats", "dental chews | dental treats | dog chews"),
                _leaf("Dogs > Treats > Cookies, Biscuits & Snacks", "dog biscuits | dog treats"),
            ),
            attributes=_t("grain free | natural ingredients | high protein | made usa | real meat | soft chewy"
                          " | small breed | fresh breath | limited ingredient"),
            options=_options("Flavor Name:treat_flavor:0.75, Size:treat_size:0.6"),
            price_range=(6.0, 45.0),
            modifiers=_t("Tender | Crunchy | Healthy | Bite Sized | Slow Baked"),
            specs=_t("16 Oz Bag | 30 Count | 1 Pound | 12 Ounce"),
            claims=_t("is made with real chicken as the first ingredient | breaks easily into small training pieces"
                      " | helps clean teeth between brushings | contains no corn, wheat or soy"
                      " | is slow baked for a flavor dogs love"),
        ),
        SubCategory(
            query="dog harness",
            leaves=(
                _leaf("Dogs > Collars, Harnesses & Leashes > Harnesses", "dog harness | dog vest harness"),
                _leaf("Dogs > Collars, Harnesses & Leashes > Leashes", "dog leash | retractable dog leash"),
                _leaf("Dogs > Collars, Harnesses & Leashes > Collars", "dog collar"),
            ),
            attributes=_t("no pull | reflective strips | quick release | soft padded | heavy duty"
                          " | adjustable straps | large dogs | easy control | easy clean"),
            options=_options("Color:pet_color:0.8, Size:pet_size:0.85"),
            price_range=(8.0, 50.0),
            modifiers=_t("Breathable | Durable | Padded | Escape Proof | Everyday | Tactical"),
            specs=_t("Medium | Large | 5 Ft | 2 Pack"),
            claims=_t("spreads pressure across the chest instead of the neck | slips on over the head in seconds"
                      " | stays visible on night walks | adjusts at four points for a snug fit"
                      " | holds strong pullers without fraying"),
        ),
    ),
)

TOYS = Category(
    name="toys",
    top="Toys & Games",
    brands=_t("Brightbloc | Tinker Town | Wonderloop | Kiddora | Playmakers | Little Oak | Hoppity"
              " | Zoomzy | Puzzlewood | Snugglebee"),
    shared_attributes=_t("birthday gift | non toxic | high quality"),
    subcategories=(
        SubCategory(
            query="building blocks",
            leaves=(
                _leaf("Building Toys > Building Sets", "building blocks | building set | building bricks"),
                _leaf("Building Toys > Magnetic Building Sets", "magnetic tiles | magnetic building blocks"),
            ),
            attributes=_t("bpa free | stem learning | fine motor | storage box | creative play"),
            options=_options("Size:pieces:0.6, Style:block_style:0.25"),
            price_range=(12.0, 90.0),
            modifiers=_t("Classic | Creative | Colorful | Deluxe | Starter | Jumbo"),
            specs=_t("200 Pieces | 100 Pcs | Ages 3+ | 500 Pcs"),
            claims=_t("encourages kids to build, imagine and problem solve"
                      " | snaps together securely and pulls apart easily | comes in a reusable box"
                      " | is made from durable, kid-safe plastic | works with most major brick brands"),
        ),
        SubCategory(
            query="stuffed animal",
            leaves=(
                _leaf("Stuffed Animals & Plush Toys > Stuffed Animals & Teddy Bears",
                      "stuffed animal | teddy bear | plush toy | plush bunny"),
                _leaf("Stuffed Animals & Plush Toys > Plush Pillows", "plush pillow | stuffed animal pillow"),
            ),
            attributes=_t("super soft | machine washable | baby shower | valentine day | embroidered eyes"),
            options=_options("Color:plush_color:0.5, Size:plush_size:0.6"),
            price_range=(8.0, 60.0),
            modifiers=_t("Cuddly | Soft | Giant | Cute | Floppy | Kawaii | Realistic"),
            specs=_t("12 Inch | 18 Inch | 24 Inch | 3 Pack"),
            claims=_t("is soft enough to snuggle every night | holds its shape after many hugs"
                      " | makes a sweet gift for kids and grown-ups | sits nicely on a bed or shelf"
                      " | is stitched to survive years of play"),
        ),
        SubCategory(
            query="remote control car",
            leaves=(
                _leaf("Vehicles & Remote-Control Toys > Remote- & App-Controlled Vehicles > Cars & Trucks",
                      "remote control car | rc car | rc truck | monster truck"),
            ),
            attributes=_t("remote control | high speed | rechargeable battery | all terrain | off road"
                          " | adults kids | led lights"),
            options=_options("Color:toy_color:0.6"),
            price_range=(20.0, 180.0),
            modifiers=_t("4WD | Fast | Waterproof | Amphibious | Stunt | Racing"),
            specs=_t("1:16 Scale | 2.4GHz | 30 MPH | 2 Batteries"),
            claims=_t("reaches speeds up to 25 miles per hour | climbs over grass, gravel and sand"
                      " | runs for about 40 minutes with two batteries | survives crashes with a flexible bumper"
                      " | steers precisely with a 2.4 GHz remote"),
        ),
    ),
)

CATEGORIES = (BEAUTY, ELECTRONICS, FASHION, FOOD, FURNITURE, GARDEN, SPORTS, PET, TOYS)

# Free text shared by all categories. Placeholders: {brand}, {noun}, {a_noun} ("a face cream"
# or "protein bars"), {this}/{this_lower} ("This" or "Each of these"), {it}/{it_lower} ("It" or
# "Each one") and {claim}, a predicate in the third person singular: "Each of these" and "Each
# one" keep the verb singular for plural nouns too.
INTRO_TEMPLATES = _t(
    "{this} {brand} {noun} {claim}."
    " | Meet the {noun} from {brand}: {it_lower} {claim}."
    " | {brand} designed {this_lower} {noun} to keep things simple: {it_lower} {claim}."
    " | {this} {noun} {claim}, so you can rely on it every day."
    " | Looking for {a_noun} you can rely on? {it} {claim}."
    " | From {brand} comes {a_noun} made with care. {it} {claim}."
)
PRE_SENTENCES = _t(
    "{this} {noun} is {attrs}. | Designed to be {attrs}. | {it} is {attrs}."
    " | Thoughtfully made: {attrs}."
)
WITH_SENTENCES = _t("Made with {attrs}. | Features {attrs}. | Comes with {attrs}. | Built with {attrs}.")
FOR_SENTENCES = _t(
    "Perfect for {attrs}. | Ideal for {attrs}. | A great choice for {attrs}. | Made especially for {attrs}."
)
CLAIM_SENTENCES = _t("{it} also {claim}. | Best of all, {it_lower} {claim}. | {it} {claim}.")
CLOSERS = _t(
    "Satisfaction guaranteed: if you have any question, please contact us."
    " | Makes a thoughtful gift for family and friends."
    " | Package includes: 1 x {noun}."
    " | Please allow slight color differences due to screen settings."
    " | Backed by a 30-day money back guarantee."
    " | Order today and see the difference."
)
BULLET_HEADERS = _t(
    "WHAT YOU GET | OUR PROMISE | DESIGNED FOR YOU | WORRY FREE PURCHASE | THOUGHTFUL DETAILS"
    " | EVERYDAY ESSENTIAL | PREMIUM MATERIALS | GREAT GIFT"
)

# Human instruction openers; each takes the noun phrase right after it.
HUMAN_LEADS = _t(
    "i am looking for | i need | find me | i want to buy | can you find | i'd like | looking for"
    " | get me | i'm searching for | show me | i want | help me find | i would like to purchase"
    " | search for | i'm looking for | i need to buy | can you get me | i'm shopping for"
    " | please find | buy me"
)

# How a human names a chosen option value ({v}); keyed by the cleaned option name. A style
# value that starts with "with"/"without" is written as it is ("office chair with footrest").
OPTION_PHRASES = MappingProxyType({
    "color": _t("in {v} | in {v} color | in the color {v} | color {v}"),
    "size": _t("in size {v} | in {v} | in a size {v} | size {v} | in {v} size"),
    "flavor name": _t("with {v} flavor | in {v} flavor | in the {v} flavor"),
    "scent": _t("with a {v} scent | in {v} scent | in the {v} scent"),
    "style": _t("in {v} style | in the {v} style"),
    "pattern": _t("with a {v} pattern | in {v} pattern"),
    "material": _t("made of {v} | in {v}"),
    "capacity": _t("with {v} capacity | in {v} | in the {v} size"),
})
