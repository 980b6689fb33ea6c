"""Hydra overrides that select the CPU preset (``sampo_verl/config/preset/cpu.yaml``).

The preset is the ``cpu`` option of a ``preset`` config group, ``# @package _global_``, so on top
of verl's ``ppo_trainer`` (or any config built on it) two overrides select it: one puts
``sampo_verl/config`` on Hydra's search path, the other appends the option to the defaults list.
The search path is a ``file://`` path because ``pkg://sampo_verl.config`` resolves to the module
``sampo_verl/config.py``. The option is written ``+preset@_global_=cpu`` (rather than
``+preset=cpu``) so that a search path missing the group is an error instead of a silently added
``preset: cpu`` key. Later command-line overrides still win over the preset's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
PRESET_OVERRIDE = "+preset@_global_=cpu"


def cpu_overrides(searchpath: Sequence[str] = ()) -> list[str]:
    """Overrides for ``python -m verl.trainer.main_ppo`` (or Hydra ``compose``) selecting the CPU preset.

    Args:
        searchpath: the app's own ``hydra.searchpath`` entries, kept in front (the override
            replaces the list), e.g. ``["pkg://verl.trainer.config"]`` for ``sampo_verl.main_ppo``.
    """
    entries = [*searchpath, f"file://{CONFIG_DIR}"]
    return [f"hydra.searchpath=[{','.join(entries)}]", PRESET_OVERRIDE]
