"""Shell assignments of one environment's GPU-recipe settings, for ``recipes/common.sh``::

    eval "$(python3 -m sampo_verl.envs.recipe sokoban sampo)"   # max_turns=15 batch_size=32 ...

The values come from the environment class (``default_max_turns``, :meth:`TextEnv.recipe_settings`),
so a new environment needs no edit of the recipes. A user's own environments are found too: the modules
named in ``VERL_USE_EXTERNAL_MODULES`` are imported first, as verl imports them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from sampo_verl.envs.base import ENV_REGISTRY, env_class, import_external_modules


def shell_assignments(env: str, method: str = "") -> str:
    """``max_turns``, ``batch_size``, ``max_prompt_length``, ``max_response_length``, ``group_size``,
    ``env_options``, ``val_env_options`` (empty: the train ones) and ``data_name`` of ``env``, one shell
    assignment a line, and the bash array ``method_overrides`` of ``method`` on this environment."""
    cls = env_class(env)
    settings = cls.recipe_settings()
    values = {
        "max_turns": cls.default_max_turns,
        "batch_size": settings.batch_size,
        "max_prompt_length": settings.max_prompt_length,
        "max_response_length": settings.max_response_length,
        "group_size": settings.group_size,
        "env_options": json.dumps(settings.env_options),
        "val_env_options": "" if settings.val_env_options is None else json.dumps(settings.val_env_options),
        "data_name": settings.data_name or env,
    }
    lines = [f"{name}={shlex.quote(str(value))}" for name, value in values.items()]
    overrides = settings.method_overrides.get(method, ())
    lines.append(f"method_overrides=({' '.join(shlex.quote(o) for o in overrides)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sampo_verl.envs.recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("env", help="registered environment name")
    parser.add_argument("method", nargs="?", default="", help="method preset (for its per-environment overrides)")
    args = parser.parse_args(argv)
    import_external_modules()
    if args.env not in ENV_REGISTRY:
        print(f"unknown ENV '{args.env}': registered environments are {sorted(ENV_REGISTRY)}", file=sys.stderr)
        return 2
    print(shell_assignments(args.env, args.method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
