"""WebShop products, goals and search: a seeded offline catalogue, or the original WebShop files.

A :class:`Catalog` holds products (WebShop's fields: title, the search query a product was listed
under, category path, attributes, options, price, bullet points, description), the goals episodes
draw from (an instruction, the attributes and option values it asks for, a price bound), and a BM25
index over the product text (``bm25s``), built once per catalogue and process
(:func:`sampo_verl.envs.webshop.load_catalog`).

Sources:

- :func:`generate_catalog`: thousands of products over ten departments, in families of
  near-duplicates (same brand and type, one attribute, the options or the price differ), so the
  first search result is often not the right one; goals are drawn per seed like WebShop's synthetic
  goals (attributes of a product, one value of each of its options, a price bound above its price).
- :func:`sampo_verl.envs.webshop_files.read_webshop_files`: the JSON files WebShop's ``setup.sh``
  downloads, validated as they load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# WebShop's price bounds: an instruction's bound is one of the next four steps above the price
PRICE_RANGE = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_BOUND = 1_000_000.0
SEARCH_TOP_K = 50  # WebShop's search returns the top 50 products


@dataclass(frozen=True, eq=False)
class Product:
    asin: str
    title: str
    query: str  # the search term the product was listed under (WebShop's ``query``)
    product_category: str  # "department › ... › leaf"
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]  # option name -> values, e.g. {"size": ("small", "large")}
    price: float
    price_tag: str  # as the item page shows it, e.g. "$12.99" or "$10.0 to $20.0"
    features: tuple[str, ...]  # WebShop's bullet points
    description: str

    def option_of(self, value: str) -> str | None:
        """The option name that offers ``value`` (case-insensitive), or None."""
        for name, values in self.options.items():
            if value.lower() in values:
                return name
        return None


@dataclass(frozen=True)
class Goal:
    asin: str  # the product the instruction was written for
    instruction: str
    attributes: tuple[str, ...]
    options: tuple[str, ...]  # wanted option values
    price_upper: float
    name: str  # the goal product's title (WebShop's ``goal["name"]``)
    query: str
    product_category: str


class Catalog:
    """Products by ASIN, goals (drawn per seed when generated) and BM25 search over product text."""

    def __init__(self, products: Sequence[Product], goals: Sequence[Goal] | None = None, goal_seed: int = 0):
        import bm25s

        if not products:
            raise ValueError("webshop: a catalogue needs at least one product")
        self.products = list(products)
        self.by_asin = {p.asin: p for p in self.products}
        self.goals = list(goals) if goals is not None else None
        if self.goals is not None and not self.goals:
            raise ValueError("webshop: the catalogue's goal list is empty")
        self.goal_seed = goal_seed
        texts = [" ".join([p.title, *p.features, p.description]) for p in self.products]
        self._index = bm25s.BM25()
        self._index.index(_tokens(texts), show_progress=False)
        self._vocab = set(self._index.vocab_dict)

    def goal(self, seed: int, within: slice = slice(None)) -> Goal:
        """The goal of episode ``seed``: the ``seed``-th listed goal of the slice ``within`` (cycling), or
        one drawn for it when the catalogue is generated."""
        if self.goals is not None:
            goals = self.goals[within]
            return goals[seed % len(goals)]
        return synthetic_goal(self.products, np.random.default_rng([self.goal_seed, seed]))

    def search(self, query: str, k: int = SEARCH_TOP_K) -> list[str]:
        """ASINs of the products matching ``query``, best first (BM25; at most ``k``, none for no match)."""
        words = [w for w in _tokens([query])[0] if w in self._vocab]
        if not words:
            return []
        ids, scores = self._index.retrieve([words], k=min(k, len(self.products)), show_progress=False)
        return [self.products[i].asin for i, s in zip(ids[0], scores[0]) if s > 0]


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


def price_bound(price: float, rng: np.random.Generator) -> float:
    """WebShop's bound: the larger of two distinct draws among the four steps of 10 above ``price``."""
    steps = [p for p in PRICE_RANGE if p > price][:4]
    if len(steps) < 2:
        return NO_PRICE_BOUND
    return float(max(rng.choice(steps, size=2, replace=False)))


def instruction_text(lead: str, product: Product, attributes: Sequence[str], options: dict[str, str], bound: float):
    """An instruction in the form of WebShop's synthetic goals: what, ``with name: value, and ...``, price."""
    text = f"{lead} {' and '.join(attributes)} {product.query}"
    if options:
        text += " with " + ", and ".join(f"{name}: {value}" for name, value in options.items())
    if bound < NO_PRICE_BOUND:
        text += f", and price lower than {bound:.2f} dollars"
    return text


LEADS = ("i need", "i am looking for", "i want", "find me", "i would like")


def synthetic_goal(products: Sequence[Product], rng: np.random.Generator) -> Goal:
    """A goal for a random product: 1-3 of its attributes, one value of each option, a price bound."""
    product = products[int(rng.integers(len(products)))]
    count = int(rng.integers(1, min(3, len(product.attributes)) + 1)) if product.attributes else 0
    attributes = sorted(rng.choice(product.attributes, size=count, replace=False).tolist()) if count else []
    options = {name: str(values[int(rng.integers(len(values)))]) for name, values in product.options.items()}
    bound = price_bound(product.price, rng)
    lead = LEADS[int(rng.integers(len(LEADS)))]
    return Goal(
        asin=product.asin,
        instruction=instruction_text(lead, product, attributes, options, bound),
        attributes=tuple(attributes),
        options=tuple(options.values()),
        price_upper=bound,
        name=product.title,
        query=product.query,
        product_category=product.product_category,
    )


# the generated catalogue ---------------------------------------------------------------------------

# values of one option (and the attributes of one department) never match each other under WebShop's
# fuzzy rule (token-set ratio > 85: "12 count" matches "24 count", "x-large" "xx-large"); a test checks it
COLORS = ("black", "white", "navy", "red", "grey", "green", "beige", "pink", "brown", "blue")


@dataclass(frozen=True)
class Department:
    path: str  # category path above the product type
    types: tuple[str, ...]
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: tuple[float, float]  # base price range in dollars


DEPARTMENTS = (
    Department("clothing, shoes & jewelry › men › clothing", ("t-shirt", "polo shirt", "hoodie", "jacket", "jeans"),
               ("cotton", "machine wash", "long sleeve", "slim fit", "relaxed fit", "button down",
                "moisture wicking", "quick dry"),
               {"color": COLORS, "size": ("small", "medium", "large", "xl")}, (12, 60)),
    Department("clothing, shoes & jewelry › women › shoes", ("running shoe", "sandal", "ankle boot", "slipper",
               "sneaker"), ("non slip", "rubber sole", "memory foam", "lightweight", "waterproof", "arch support"),
               {"color": COLORS, "size": ("6", "7", "8", "9", "10", "11")}, (20, 90)),
    Department("beauty & personal care › skin care", ("face moisturizer", "serum", "sunscreen", "face wash",
               "eye cream"), ("paraben free", "fragrance free", "cruelty free", "vitamin c", "hyaluronic acid",
               "oil free", "for sensitive skin"), {"size": ("0.5 fl oz", "1.7 fl oz", "3.4 fl oz")}, (8, 45)),
    Department("beauty & personal care › hair care", ("shampoo", "conditioner", "hair oil", "hair mask"),
               ("sulfate free", "argan oil", "for dry hair", "natural ingredients", "color safe", "anti frizz"),
               {"size": ("8 fl oz", "16 fl oz", "32 fl oz"), "pack": ("1 pack", "2 pack", "3 pack")}, (6, 35)),
    Department("grocery & gourmet food › snacks", ("protein bar", "trail mix", "granola", "beef jerky",
               "rice cake"), ("gluten free", "low sugar", "keto friendly", "organic", "non gmo", "high protein",
               "vegan"), {"flavor": ("chocolate", "vanilla", "peanut butter", "sea salt", "honey", "berry"),
               "size": ("6 count", "12 count", "100 count")}, (5, 40)),
    Department("grocery & gourmet food › beverages", ("green tea", "coffee beans", "cold brew", "herbal tea"),
               ("organic", "decaf", "caffeine free", "fair trade", "sugar free", "single origin"),
               {"flavor": ("original", "mint", "lemon", "caramel", "hazelnut"),
               "size": ("20 count", "100 count", "12 ounce", "2 pound")}, (6, 45)),
    Department("home & kitchen › furniture", ("office chair", "bookshelf", "coffee table", "bar stool",
               "tv stand"), ("easy assemble", "solid wood", "metal frame", "adjustable height", "space saving",
               "storage space"), {"color": ("black", "white", "walnut", "oak", "espresso", "grey")}, (40, 300)),
    Department("home & kitchen › bedding", ("pillow", "comforter", "sheet set", "throw blanket", "mattress topper"),
               ("machine washable", "hypoallergenic", "soft microfiber", "cooling", "down alternative",
               "deep pocket"), {"size": ("twin", "full", "queen", "king"), "color": COLORS}, (20, 150)),
    Department("electronics › accessories", ("phone case", "usb c cable", "wireless charger", "power bank",
               "screen protector"), ("fast charging", "shockproof", "compatible with iphone", "long lasting",
               "tempered glass", "slim design"), {"color": COLORS[:6], "length": ("3 ft", "6 ft", "10 ft")},
               (8, 60)),
    Department("electronics › audio", ("bluetooth speaker", "wireless earbuds", "headphones", "soundbar"),
               ("noise cancelling", "water resistant", "long battery life", "bass boost", "hands free call",
               "portable"), {"color": COLORS[:5]}, (20, 200)),
)  # fmt: skip

BRAND_PARTS = (("nor", "zan", "kel", "vor", "tri", "mar", "sol", "bel", "dra", "fen", "lum", "oro"),
               ("vale", "tor", "ix", "ora", "lex", "ent", "ova", "dex", "una", "ric", "ino", "era"))  # fmt: skip


def _asin(rng: np.random.Generator) -> str:
    letters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "B0" + "".join(letters[i] for i in rng.integers(len(letters), size=8))


def _product(
    asin: str, brand: str, kind: str, dept: Department, attributes: list[str], options, price: float
) -> Product:
    shown = [a for a in attributes if len(a.split()) <= 2][:2]
    title = f"{brand} {' '.join(shown)} {kind}".title().replace("  ", " ")
    features = tuple(f"{a.capitalize()}: made to be {a} for everyday use" for a in attributes)
    description = f"The {brand} {kind} from our {dept.path.split(' › ')[-1]} line. {' '.join(features[:1])}."
    return Product(
        asin=asin,
        title=title,
        query=kind,
        product_category=f"{dept.path} › {kind}",
        attributes=tuple(attributes),
        options=options,
        price=price,
        price_tag=f"${price:.2f}",
        features=features,
        description=description,
    )


def generate_catalog(num_products: int = 2000, seed: int = 0) -> list[Product]:
    """``num_products`` products in families of 2-4 near-duplicates (same brand and type)."""
    if num_products < 1:
        raise ValueError(f"webshop: num_products must be >= 1, got {num_products}")
    rng = np.random.default_rng([seed, 7])
    products, asins = [], set()
    while len(products) < num_products:
        dept = DEPARTMENTS[int(rng.integers(len(DEPARTMENTS)))]
        kind = dept.types[int(rng.integers(len(dept.types)))]
        brand = "".join(part[int(rng.integers(len(part)))] for part in BRAND_PARTS)
        base_attributes = rng.choice(dept.attributes, size=3, replace=False).tolist()
        base_price = float(rng.uniform(*dept.price))
        for _ in range(int(rng.integers(2, 5))):
            attributes = list(base_attributes)
            if rng.random() < 0.6:  # a sibling differs in one attribute
                swap = [a for a in dept.attributes if a not in attributes]
                attributes[int(rng.integers(len(attributes)))] = swap[int(rng.integers(len(swap)))]
            options = {
                name: tuple(sorted(rng.choice(values, size=int(rng.integers(2, min(5, len(values)) + 1)),
                                              replace=False).tolist(), key=values.index))
                for name, values in dept.options.items()
            }  # fmt: skip
            price = round(base_price * float(rng.uniform(0.7, 1.5)), 2)
            asin = _asin(rng)
            while asin in asins:
                asin = _asin(rng)
            asins.add(asin)
            products.append(_product(asin, brand, kind, dept, sorted(attributes), options, price))
            if len(products) == num_products:
                break
    return products
