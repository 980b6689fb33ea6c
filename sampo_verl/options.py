"""One reader for every options section of the package (``algorithm.gigpo``, ``algorithm.filter_groups``,
``sampo.collapse``, ``actor_rollout_ref.actor.policy_loss.seq_mask``, ...).

A section arrives as a DictConfig, a dict, one of verl's config dataclasses or ``None`` (absent:
the defaults). :func:`read_options` builds the section's options dataclass from it and fails on a
key the dataclass does not have, naming the full flag, so that a typo never passes silently.
Range checks live on the dataclass: in ``__post_init__`` for a section with one fixed flag
prefix, or in a ``check(prefix)`` method for a dataclass shared by several sections (the
estimators' options), which the reader calls with the section's prefix.

Every section is registered (:func:`options_section`) with its flag prefix: start-up validation reads
each registered section of a config (:func:`section_errors`) and the documentation's configuration
reference is generated from the same registry, so neither can miss a section.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class OptionsSection:
    """A registered section: its flag prefix, options dataclass and the keys that belong to verl."""

    prefix: str
    options: type
    ignore: tuple[str, ...] = ()

    def read(self, config: Any) -> Any:
        """This section of the whole config (absent: the defaults), checked as :func:`read_options` does."""
        section = config
        for key in self.prefix.split("."):
            section = section_of(section, key)
        return read_options(self.options, section, self.prefix, self.ignore)


OPTIONS_SECTIONS: dict[str, OptionsSection] = {}


def options_section(prefix: str, ignore: Collection[str] = ()) -> Callable[[type[T]], type[T]]:
    """Class decorator: register an options dataclass as the config section ``prefix``."""

    def register(cls: type[T]) -> type[T]:
        OPTIONS_SECTIONS[prefix] = OptionsSection(prefix, cls, tuple(ignore))
        return cls

    return register


def section_errors(config: Any) -> list[str]:
    """The message of every registered section of ``config`` that does not read."""
    errors = []
    for section in OPTIONS_SECTIONS.values():
        try:
            section.read(config)
        except (TypeError, ValueError) as error:
            errors.append(str(error))
    return errors


def read_options(cls: type[T], section: Mapping[str, Any] | None, prefix: str, ignore: Collection[str] = ()) -> T:
    """The options dataclass ``cls`` of the config section ``prefix`` (keys in ``ignore`` are skipped)."""
    values = {key: section[key] for key in (section or {}) if key not in ignore}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {prefix} option(s) {unknown}; known: {sorted(known)}")
    options = cls(**values)
    check = getattr(options, "check", None)
    if callable(check):
        check(prefix)
    return options


def section_of(config: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    """``config[key]`` when present and not null, else None (works on DictConfig and verl's dataclasses)."""
    return (config or {}).get(key, None) or None


def reference_markdown() -> str:
    """The configuration reference of the documentation: every registered section, its class's docstring
    and a table of its flags with their types and defaults."""
    parts = []
    for prefix, section in sorted(OPTIONS_SECTIONS.items()):
        rows = ["| flag | type | default |", "|---|---|---|"]
        for option in fields(section.options):
            if option.name.startswith("_") or option.name in section.ignore:
                continue
            if option.default is not MISSING:
                default = option.default
            elif option.default_factory is not MISSING:
                default = option.default_factory()
            else:
                default = "(required)"
            kind = option.type if isinstance(option.type, str) else getattr(option.type, "__name__", str(option.type))
            rows.append(f"| `{prefix}.{option.name}` | `{kind}` | `{default!r}` |")
        doc = inspect.cleandoc(section.options.__doc__ or "")
        parts.append(f"### `{prefix}`\n\n{doc}\n\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"
