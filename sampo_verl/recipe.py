"""What a GPU recipe writes its data with, for ``recipes/common.sh``::

    eval "$(python3 -m sampo_verl.recipe sokoban sampo [hydra overrides...])"   # max_turns=15 ...

The recipe's config is composed as ``sampo_verl.main_ppo`` will compose it: ``env=<name>`` (the
environment's file in ``conf/env/``, or ``env=base`` for an environment without one), its official data
(``env_data=<name>_official``) when ``$<NAME>_DATA`` is set and such a file exists, ``method=<method>``
(which also brings ``env_method/<name>_<method>.yaml``) and the user's overrides. Printed, one shell
assignment a line: ``max_turns``, ``batch_size``, ``env_options`` / ``val_env_options`` (JSON; empty:
the train ones), ``data_name`` and the bash array ``config_groups`` that the recipe passes on to training.
A user's environments are found through ``VERL_USE_EXTERNAL_MODULES``, as verl finds them. verl's own
configs are read from its installed folder without importing verl (a recipe starts in ~1 s, not ~9 s).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from sampo_verl.conf import CONFIG_DIR
from sampo_verl.envs import ENV_REGISTRY, env_class, import_external_modules
from sampo_verl.envs.settings import EnvSettings
from sampo_verl.options import read_options


def verl_search_path() -> str:
    """``hydra.searchpath`` with verl's config folder as a file path (``pkg://verl...`` imports verl)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("verl is not installed (pip install -e . installs verl==0.9.1)")
    return f"hydra.searchpath=[file://{Path(next(iter(spec.submodule_search_locations))) / 'trainer' / 'config'}]"


def compose_recipe(env: str, method: str, overrides: Sequence[str] = ()) -> tuple[DictConfig, list[str]]:
    """The composed config of ``env`` x ``method`` with ``overrides``, and the config groups chosen for ``env``."""
    groups = [f"env={env}"]
    if os.environ.get(f"{env.upper()}_DATA"):
        groups.append(f"env_data={env}_official")
    search = [] if any(o.startswith("hydra.searchpath=") for o in overrides) else [verl_search_path()]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        while True:
            try:
                config = compose(
                    "sampo_ppo",
                    overrides=[*search, *groups, f"method={method}", *overrides],
                )
                return config, groups
            except MissingConfigException as error:
                if error.missing_cfg_file == f"env/{env}":
                    groups[0] = "env=base"
                elif error.missing_cfg_file == f"env_data/{env}_official":
                    groups.pop()
                else:
                    raise


def shell_assignments(env: str, method: str, overrides: Sequence[str] = ()) -> str:
    """The recipe's data settings of ``env`` x ``method`` as shell assignments (see the module docstring)."""
    config, groups = compose_recipe(env, method, overrides)
    section = OmegaConf.select(config, "sampo.env")  # only this section's interpolations are resolved
    given = OmegaConf.to_container(section, resolve=True) if section else None
    settings = read_options(EnvSettings, given, "sampo.env")
    values = {
        "max_turns": settings.max_turns or env_class(env).default_max_turns,
        "batch_size": config.data.train_batch_size,
        "env_options": json.dumps(settings.options),
        "val_env_options": "" if settings.val_options is None else json.dumps(settings.val_options),
        "data_name": settings.data_name or env,
    }
    lines = [f"{name}={shlex.quote(str(value))}" for name, value in values.items()]
    lines.append(f"config_groups=({' '.join(shlex.quote(group) for group in groups)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sampo_verl.recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("env", help="registered environment name")
    parser.add_argument("method", help="method preset (sampo_verl/conf/method)")
    parser.add_argument("overrides", nargs="*", help="the recipe's hydra overrides")
    args = parser.parse_args(argv)
    import_external_modules()
    if args.env not in ENV_REGISTRY:
        print(
            f"unknown ENV '{args.env}': registered environments are {sorted(ENV_REGISTRY)}",
            file=sys.stderr,
        )
        return 2
    try:
        print(shell_assignments(args.env, args.method, args.overrides))
    except (HydraException, ValueError, TypeError) as error:
        print(f"{args.env} x {args.method}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
