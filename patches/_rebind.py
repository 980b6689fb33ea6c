"""Replace a module-level verl function everywhere it has been imported by name."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


def rebind(module: ModuleType, name: str, replacement: Any) -> None:
    """Set ``module.name = replacement`` and update every loaded ``verl`` module that did
    ``from module import name`` (they hold their own reference to the original object)."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    for module_name, loaded in list(sys.modules.items()):
        if module_name.startswith("verl.") and getattr(loaded, name, None) is original:
            setattr(loaded, name, replacement)
