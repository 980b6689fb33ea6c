"""Hydra overrides that select the CPU preset (``sampo_verl/conf/preset/cpu.yaml``).

The preset is the ``cpu`` option of the ``preset`` config group, ``# @package _global_``.
``python -m sampo_verl.main_ppo`` has the group in its defaults list: there it is ``preset=cpu``.
On top of verl's own ``ppo_trainer`` (``python -m verl.trainer.main_ppo`` or Hydra ``compose``)
two overrides select it: one puts ``sampo_verl/conf`` on Hydra's search path, the other appends the
option to the defaults list. The search path is a ``file://`` path because ``sampo_verl/conf`` is
package data, not an importable package. The option is written ``+preset@_global_=cpu`` (rather
than ``+preset=cpu``) so that a search path missing the group is an error instead of a silently
added ``preset: cpu`` key. Later command-line overrides still win over the preset's values.
"""

from __future__ import annotations

from collections.abc import Sequence

from sampo_verl.conf import CONFIG_DIR

PRESET_OVERRIDE = "+preset@_global_=cpu"


def cpu_overrides(searchpath: Sequence[str] = ()) -> list[str]:
    """Overrides for ``python -m verl.trainer.main_ppo`` (or Hydra ``compose``) selecting the CPU preset.

    Args:
        searchpath: the app's own ``hydra.searchpath`` entries, kept in front (the override
            replaces the list).
    """
    entries = [*searchpath, f"file://{CONFIG_DIR}"]
    return [f"hydra.searchpath=[{','.join(entries)}]", PRESET_OVERRIDE]
