"""The package's Hydra configs: ``sampo_ppo.yaml`` (verl's ``ppo_trainer`` plus the package's additions)
and the ``method`` and ``preset`` groups."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
