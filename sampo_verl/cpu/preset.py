"""Hydra overrides that mount the CPU preset (``sampo_verl/config/preset/cpu.yaml``).

The preset is a ``# @package _global_`` config group option, so on top of verl's
``ppo_trainer`` (or any config derived from it) it is selected with two overrides: one adds
``sampo_verl/config`` to Hydra's search path, the other appends ``preset=cpu`` to the defaults.
Later command-line overrides still win over the preset's values.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
PRESET_GROUP = "preset"


def config_searchpath() -> str:
    """The Hydra search-path entry holding the ``preset`` config group."""
    return f"file://{CONFIG_DIR}"


def cpu_overrides() -> list[str]:
    """Overrides for ``python -m verl.trainer.main_ppo`` (or Hydra ``compose``) selecting the CPU preset."""
    return [f"hydra.searchpath=[{config_searchpath()}]", f"+{PRESET_GROUP}=cpu"]
