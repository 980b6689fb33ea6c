"""Text environments for multi-turn agent RL; importing this package registers the built-in ones."""

from sampo_verl.envs.base import (
    ENV_REGISTRY,
    TextEnv,
    env_class,
    import_external_modules,
    make_env,
    register_env,
)
from sampo_verl.envs.settings import EnvSettings
from sampo_verl.envs import alfworld, frozenlake, sokoban, tir_math, webshop  # noqa: F401  (registration)

__all__ = ["ENV_REGISTRY", "EnvSettings", "TextEnv", "env_class", "import_external_modules", "make_env", "register_env"]
