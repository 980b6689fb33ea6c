"""WebShop: find and buy the product an instruction asks for, on WebShop's text pages, offline.

The pages and actions of WebShop's text environment (Yao et al., 2022, "WebShop: Towards Scalable
Real-World Web Interaction with Grounded Language Agents"), items joined by `` [SEP] ``:

- search page: the instruction and the search box; the only action is ``search[query]``;
- results page: ``Back to Search``, ``Page p (Total results: n)``, ``< Prev`` / ``Next >`` where there
  is such a page, then each item's ASIN, title and price (``results_per_page``, 10 as WebShop; the
  search returns the top 50 by BM25, :mod:`sampo_verl.envs.webshop_catalog`);
- item page: ``Back to Search``, ``< Prev`` (the results), each option's name and values (a chosen one
  marked ``[selected]``), title, price, ``Description``, ``Features`` and ``Buy Now``;
- description / features pages: the text, ``Back to Search`` and ``< Prev`` (the item).

Actions are ``search[query]`` and ``click[name]`` with a name the page shows (case-insensitive; an
ASIN, an option value, ``buy now``, ``next >``, ``< prev``, ``back to search``, ``description``,
``features``); away from the search page they are listed as admissible actions. A refused action
(a search off the search page, a click on nothing clickable, anything else) leaves the page as it
was and comes back as ``info["invalid_action"]``. ``Buy Now`` ends the episode with WebShop's reward
(:func:`webshop_reward`); success is a reward of 1. At most 15 turns (``default_max_turns``).

Options: ``num_products`` and ``catalog_seed`` (the generated catalogue), or ``products_path`` with
``human_goals_path`` and/or ``attributes_path`` (WebShop's own JSON files) and ``goal_range`` (the
slice of its goals to draw from: WebShop tests on goals 0-499 and trains on 1500 on).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sampo_verl.envs.base import INVALID_ACTION, TextEnv, register_env
from sampo_verl.envs.webshop_catalog import Catalog, Goal, Product, generate_catalog
from sampo_verl.envs.webshop_files import read_webshop_files

SEP = " [SEP] "
RESULTS_PER_PAGE = 10
EXPERT_PAGES = 5  # result pages the expert reads before it searches the goal product's title
BACK, PREV, NEXT, BUY = "back to search", "< prev", "next >", "buy now"
DESCRIPTION, FEATURES = "description", "features"
_ACTION = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
# WebShop keeps nouns (spaCy) of both titles for the type reward; without a tagger: the content words
_STOPWORDS = frozenset(
    "a an and the of for with in on to by from or at as is are be this that these those your our you it its "
    "made use everyday line new set pack".split()
)
FULL_SCORE = 1.0 - 1e-9  # a reward of 1 (success), up to float rounding of the parts
FUZZY_MATCH = 85  # WebShop's thefuzz token_set_ratio threshold for attributes and options


def _content_words(title: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z'-]*", title.lower()) if w not in _STOPWORDS and len(w) > 1]


def type_reward(product: Product, goal: Goal) -> float:
    """WebShop's ``r_type``: 1 when the bought product is of the wanted type, lowered as its title drifts.

    ``title_score`` = shared content words of the two titles / the goal title's content words (0.2 when
    it has none); the type counts as matched by the same listing query, by >= 2 shared category levels
    or by title_score > 0.2. r_type = 1 if matched, else 0.5; 0.1 when title_score < 0.1; 0 when it is 0.
    """
    desired = _content_words(goal.name)
    title_score = 0.2 if not desired else len(set(_content_words(product.title)) & set(desired)) / len(desired)
    levels = lambda path: {x.strip() for x in path.split("›")}  # noqa: E731
    matched = (
        product.query == goal.query
        or len(levels(product.product_category) & levels(goal.product_category)) >= 2
        or title_score > 0.2
    )
    if title_score == 0.0:
        return 0.0
    if title_score < 0.1:
        return 0.1
    return 1.0 if matched else 0.5


def _fuzzy(a: str, b: str) -> bool:
    from rapidfuzz import fuzz, utils

    # thefuzz (WebShop's) lowercases and strips punctuation first
    return fuzz.token_set_ratio(a, b, processor=utils.default_process) > FUZZY_MATCH


def webshop_reward(product: Product, goal: Goal, price: float, options: dict[str, str]) -> float:
    """WebShop's reward of buying ``product`` at ``price`` with the chosen ``options``::

        r = r_type * (n_attributes + n_options + [price <= bound]) / (|goal attributes| + |goal options| + 1)

    n_attributes: goal attributes fuzzy-matching one of the product's attributes (token-set ratio > 85,
    ``rapidfuzz``) or found in its title, features or description; n_options: goal option values
    fuzzy-matching a chosen option value; r_type: :func:`type_reward`. (WebShop also maps colour
    synonyms before matching options; the generated catalogue has none.)
    """
    text = " ".join([product.title, *product.features, product.description]).lower()
    attributes = sum(
        any(_fuzzy(have, want) for have in product.attributes) or want.lower() in text for want in goal.attributes
    )
    chosen = list(options.values())
    matched_options = sum(any(_fuzzy(have, want) for have in chosen) for want in goal.options)
    parts = len(goal.attributes) + len(goal.options) + 1
    return (attributes + matched_options + (price <= goal.price_upper)) / parts * type_reward(product, goal)


_CATALOGS: dict[tuple, Catalog] = {}
_LOCK = threading.Lock()


def load_catalog(
    num_products: int = 2000,
    seed: int = 0,
    products_path: str | None = None,
    attributes_path: str | None = None,
    human_goals_path: str | None = None,
) -> Catalog:
    """The catalogue (generated, or read from WebShop's files), built once per process and settings."""
    key = (num_products, seed, products_path, attributes_path, human_goals_path)
    with _LOCK:
        if key not in _CATALOGS:
            if products_path is None:
                _CATALOGS[key] = Catalog(generate_catalog(num_products, seed), goal_seed=seed)
            else:
                products, goals = read_webshop_files(products_path, attributes_path, human_goals_path, seed)
                _CATALOGS[key] = Catalog(products, goals)
        return _CATALOGS[key]


@register_env("webshop")
class WebShopEnv(TextEnv):
    """Shop for the product an instruction describes: search, open items, choose options, buy.

    Args:
        num_products, catalog_seed: the generated catalogue (:func:`webshop_catalog.generate_catalog`).
        products_path, attributes_path, human_goals_path: WebShop's JSON files instead.
        goal_range: ``[start, stop)`` of the file goals episodes draw from (``stop`` None: to the end).
        results_per_page: items on a results page.
    """

    prompt_intro = (
        "You are shopping on WebShop. Find and buy the product that the task describes: every attribute and "
        "option it asks for, within its price. On the search page the action is search[your query]; on the "
        "other pages click one of the admissible actions: click[<asin>] opens an item, click[<option value>] "
        "chooses an option, click[buy now] buys it and ends the episode; click[next >], click[< prev] and "
        "click[back to search] move between pages."
    )
    default_max_turns = 15  # the paper's testbed and the release

    def __init__(
        self,
        num_products: int = 2000,
        catalog_seed: int = 0,
        products_path: str | None = None,
        attributes_path: str | None = None,
        human_goals_path: str | None = None,
        goal_range: list[int | None] | None = None,
        results_per_page: int = RESULTS_PER_PAGE,
    ):
        if results_per_page < 1:
            raise ValueError(f"webshop: results_per_page must be >= 1, got {results_per_page}")
        if goal_range is not None and products_path is None:
            raise ValueError("webshop: goal_range selects WebShop's file goals; it needs products_path")
        self.catalog: Catalog = load_catalog(num_products, catalog_seed, products_path, attributes_path,
                                             human_goals_path)  # fmt: skip
        self.goal_slice = slice(*(goal_range or [None]))
        if self.catalog.goals is not None and not self.catalog.goals[self.goal_slice]:
            raise ValueError(f"webshop: goal_range {goal_range} selects none of the {len(self.catalog.goals)} goals")
        self.results_per_page = results_per_page
        self.done = True

    # episode -----------------------------------------------------------------------------------------

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.goal = self.catalog.goal(seed, self.goal_slice)
        self.page, self.query, self.results, self.page_no = "search", "", [], 1
        self.product: Product | None = None
        self.options: dict[str, str] = {}
        self.done = self.won = False
        self.searches: list[str] = []
        observation, info = self._view()
        return observation, {**info, "task": self.goal.instruction}

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done:
            raise RuntimeError("webshop: step() after the episode ended")
        refused = self._apply(action)
        if refused:
            observation, info = self._view()
            return observation, 0.0, False, {**info, INVALID_ACTION: refused}
        if self.page == "done":
            reward = webshop_reward(self.product, self.goal, self.product.price, self.options)
            self.done, self.won = True, reward >= FULL_SCORE
            observation = f"Thank you for shopping with us!{SEP}Your score (min 0.0, max 1.0){SEP}{reward:.2f}"
            return observation, reward, True, {"anchor": "done", "won": self.won}
        observation, info = self._view()
        return observation, 0.0, False, info

    def _apply(self, action: str) -> str | None:
        """Move to the page ``action`` leads to; the reason it is refused otherwise."""
        match = _ACTION.match(action)
        if match is None:
            return "unknown_action"
        verb, argument = match.group(1).lower(), " ".join(match.group(2).split())
        if verb == "search":
            if self.page != "search":
                return "no_search_box"
            if not argument:
                return "empty_query"
            self.query, self.results, self.page_no, self.page = argument, self.catalog.search(argument), 1, "results"
            self.searches.append(argument)
            return None
        target = argument.lower()
        if target not in self._clickables():  # nothing is clickable on the search page
            return "not_clickable"
        if target == BACK:
            self.page, self.product, self.options = "search", None, {}
        elif target == NEXT:
            self.page_no += 1
        elif target == PREV:
            if self.page == "results":
                self.page_no -= 1
            elif self.page == "item":
                self.page, self.product, self.options = "results", None, {}
            else:
                self.page = "item"
        elif self.page == "results":
            self.page, self.product, self.options = "item", self.catalog.by_asin[target.upper()], {}
        elif target in (DESCRIPTION, FEATURES):
            self.page = target
        elif target == BUY:
            self.page = "done"
        else:
            self.options[self.product.option_of(target)] = target
        return None

    # pages -------------------------------------------------------------------------------------------

    def _page_items(self) -> list[str]:
        start = (self.page_no - 1) * self.results_per_page
        return self.results[start : start + self.results_per_page]

    def _clickables(self) -> list[str]:
        if self.page == "results":
            pages = -(-len(self.results) // self.results_per_page)
            more = [PREV] * (self.page_no > 1) + [NEXT] * (self.page_no < pages)
            return [BACK, *more, *(asin.lower() for asin in self._page_items())]
        if self.page == "item":
            values = [v for vs in self.product.options.values() for v in vs]
            return [BACK, PREV, *values, DESCRIPTION, FEATURES, BUY]
        if self.page in (DESCRIPTION, FEATURES):
            return [BACK, PREV]
        return []

    def _view(self) -> tuple[str, dict[str, Any]]:
        clickables = self._clickables()
        if self.page == "search":
            parts = ["WebShop", "Instruction:", self.goal.instruction, "Search"]
        elif self.page == "results":
            parts = ["Back to Search", f"Page {self.page_no} (Total results: {len(self.results)})"]
            parts += ["< Prev"] * (PREV in clickables) + ["Next >"] * (NEXT in clickables)
            for asin in self._page_items():
                product = self.catalog.by_asin[asin]
                parts += [asin, product.title, product.price_tag]
        elif self.page == "item":
            parts = ["Back to Search", "< Prev"]
            for name, values in self.product.options.items():
                parts += [name, *(f"{v} [selected]" if self.options.get(name) == v else v for v in values)]
            parts += [self.product.title, f"Price: {self.product.price_tag}", "Rating: N.A.", "Description",
                      "Features", "Buy Now"]  # fmt: skip
        else:
            text = self.product.description if self.page == DESCRIPTION else " ".join(self.product.features)
            parts = ["Back to Search", "< Prev", text]
        info: dict[str, Any] = {"anchor": self._anchor(), "won": False}
        if self.page != "search":
            info["admissible_actions"] = [f"click[{c}]" for c in clickables]
        return SEP.join(parts), info

    def _anchor(self) -> str:
        chosen = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        asin = self.product.asin if self.product else ""
        return f"{self.page}|{self.query}|{self.page_no}|{asin}|{chosen}"

    # expert ------------------------------------------------------------------------------------------

    def wanted_options(self, product: Product) -> dict[str, str]:
        """The goal's option values that ``product`` offers, by option name."""
        named = ((product.option_of(want), want.lower()) for want in self.goal.options)
        return {name: value for name, value in named if name is not None}

    def best_reward(self, product: Product) -> float:
        """The reward of buying ``product`` with the goal's option values it offers."""
        return webshop_reward(product, self.goal, product.price, self.wanted_options(product))

    def expert_action(self) -> str:
        """Search the goal's attributes and type, open the first listed item that can score 1 (reading up
        to five result pages, then searching the goal product's title), choose its options, buy."""
        if self.page == "search":
            if self.searches:  # the first search did not list a product that can score 1
                return f"search[{self.goal.name}]"
            return f"search[{' '.join([*self.goal.attributes, self.goal.query])}]"
        if self.page in (DESCRIPTION, FEATURES):
            return f"click[{PREV}]"
        if self.page == "item":
            if self.best_reward(self.product) < FULL_SCORE:
                return f"click[{PREV}]"
            for name, value in self.wanted_options(self.product).items():
                if self.options.get(name) != value:
                    return f"click[{value}]"
            return f"click[{BUY}]"
        for asin in self._page_items():
            if self.best_reward(self.catalog.by_asin[asin]) >= FULL_SCORE:
                return f"click[{asin.lower()}]"
        if NEXT in self._clickables() and self.page_no < EXPERT_PAGES:
            return f"click[{NEXT}]"
        return f"click[{BACK}]"
