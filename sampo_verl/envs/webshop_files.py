"""WebShop's own files: the JSON files its ``setup.sh`` downloads (``items_shuffle*.json`` products,
``items_ins_v2*.json`` attributes, ``items_human_ins.json`` human instructions), read as WebShop's
``engine.load_products`` and ``goal.get_human_goals`` read them, and validated against their fields and
types as they load: a file that is not WebShop's raises :class:`WebShopFileError` naming it and the
first bad field, never a coerced value.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sampo_verl.envs.webshop_catalog import NO_PRICE_BOUND, Goal, Product, price_bound

class WebShopFileError(ValueError):
    """A WebShop file that cannot be read, is not JSON or does not hold WebShop's fields and types."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")  # wrong types are refused, never coerced


class _OptionValue(_Strict):
    value: str


class _FileProduct(_Strict):
    """One product of ``items_shuffle*.json`` (the fields WebShop's ``engine.load_products`` reads)."""

    asin: str = ""
    name: str = ""
    query: str = ""
    product_category: str = ""
    pricing: str | None = None  # "$a", or "$a$b" for a range
    customization_options: dict[str, list[_OptionValue] | None] | None = None
    small_description: list[str] | str | None = None  # bullet points (one string: one bullet)
    full_description: str | None = None


class _FileAttributes(_Strict):
    """One ASIN's entry of ``items_ins_v2*.json``."""

    attributes: list[str] = []
    instruction: str | None = None
    instruction_attributes: list[str] | None = None


class _HumanGoal(_Strict):
    """One human instruction of ``items_human_ins.json``."""

    instruction: str
    instruction_attributes: list[str] | None = None
    instruction_options: list[str] | None = None


_PRODUCTS = TypeAdapter(list[_FileProduct])
_ATTRIBUTES = TypeAdapter(dict[str, _FileAttributes])
_HUMAN_GOALS = TypeAdapter(dict[str, list[_HumanGoal]])


def _read_file(path: str, schema: TypeAdapter, what: str) -> Any:
    """``path``'s JSON validated against ``schema``; a :class:`WebShopFileError` naming the file, the
    first bad field (``[3].pricing``: the 4th item's ``pricing``) and what it holds, else."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise WebShopFileError(f"webshop: cannot read the {what} file {path}: {error}") from None
    if not text.strip():
        raise WebShopFileError(f"webshop: the {what} file {path} is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise WebShopFileError(f"webshop: the {what} file {path} is not valid JSON (truncated?): {error}") from None
    try:
        return schema.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]) or "the top"
        more = f" ({error.error_count() - 1} more errors)" if error.error_count() > 1 else ""
        raise WebShopFileError(
            f"webshop: the {what} file {path}: at {where}: {first['msg']}, got {repr(first['input'])[:80]}{more}"
        ) from None


def _pricing(text: str | None, rng: np.random.Generator) -> tuple[float, str]:
    """Price and tag as WebShop's loader: "$a" is a, "$a$b" a range (a price drawn in it), none $100."""
    digits = [re.sub(r"[^\d.]", "", part) for part in (text or "").split("$")[1:]]
    try:
        prices = [float(d) for d in digits if d]
    except ValueError:  # "1.2.3"
        raise ValueError(f"pricing {text!r} is not '$a' or '$a$b'") from None
    if not prices:
        return 100.0, "$100.0"
    if len(prices) == 1:
        return prices[0], f"${prices[0]}"
    return float(rng.uniform(prices[0], prices[1])), f"${prices[0]} to ${prices[1]}"


def _options(customization: dict[str, list[_OptionValue] | None] | None) -> dict[str, tuple[str, ...]]:
    return {
        name.lower(): tuple(c.value.strip().replace("/", " | ").lower() for c in contents)
        for name, contents in (customization or {}).items()
        if contents
    }


def read_webshop_files(
    products_path: str,
    attributes_path: str | None = None,
    human_goals_path: str | None = None,
    seed: int = 0,
) -> tuple[list[Product], list[Goal]]:
    """Products and goals from WebShop's files. Goals: the human instructions when given (those with
    attributes, as WebShop), else the synthetic ones of the attributes file (every option combination).
    A file that is not WebShop's raises :class:`WebShopFileError` naming it and the field."""
    if human_goals_path is None and attributes_path is None:
        raise ValueError("webshop: products_path needs attributes_path or human_goals_path (for the goals)")
    raw = _read_file(products_path, _PRODUCTS, "products")
    attributes = _read_file(attributes_path, _ATTRIBUTES, "attributes") if attributes_path else {}
    human = _read_file(human_goals_path, _HUMAN_GOALS, "human goals") if human_goals_path else None
    rng = np.random.default_rng([seed, 11])
    products, seen = [], set()
    for index, item in enumerate(raw):
        asin = item.asin
        if asin == "nan" or not asin or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        try:
            price, tag = _pricing(item.pricing, rng)
        except ValueError as error:
            where = f"the products file {products_path}: at [{index}].pricing"
            raise WebShopFileError(f"webshop: {where}: {error}") from None
        bullets = item.small_description or []
        products.append(
            Product(
                asin=asin,
                title=item.name,
                query=item.query.lower().strip(),
                product_category=item.product_category,
                attributes=tuple(attributes[asin].attributes) if asin in attributes else (),
                options=_options(item.customization_options),
                price=price,
                price_tag=tag,
                features=tuple(bullets if isinstance(bullets, list) else [bullets]),
                description=item.full_description or "",
            )
        )
    goals = []
    for product in products:
        if human is not None:
            for ins in human.get(product.asin, []):
                if ins.instruction_attributes:
                    goals.append(_file_goal(product, ins.instruction.strip("."), ins.instruction_attributes,
                                            ins.instruction_options or [], rng))  # fmt: skip
        elif product.asin in attributes and attributes[product.asin].instruction:
            entry = attributes[product.asin]
            names = sorted(product.options)
            for combination in itertools.product(*(product.options[n] for n in names)):
                text = entry.instruction + (" with " + ", and ".join(f"{n}: {v}" for n, v in zip(names, combination))
                                            if names else "")  # fmt: skip
                goals.append(_file_goal(product, text, entry.instruction_attributes or [], combination, rng))
    if not products:
        raise WebShopFileError(f"webshop: the products file {products_path} has no product with a valid asin")
    if not goals:
        source = human_goals_path or attributes_path
        raise WebShopFileError(f"webshop: no goals in {source} for the products of {products_path}")
    return products, goals


def _file_goal(product: Product, text: str, attributes, options, rng: np.random.Generator) -> Goal:
    bound = price_bound(product.price, rng)
    if bound < NO_PRICE_BOUND:
        text += f", and price lower than {bound:.2f} dollars"
    return Goal(product.asin, text, tuple(attributes), tuple(str(o) for o in options), bound, product.title,
                product.query, product.product_category)  # fmt: skip
