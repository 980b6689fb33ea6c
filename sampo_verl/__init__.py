"""sampo-verl: multi-turn agent RL methods, environments and tools for verl.

Commands: ``sampo-verl COMMAND`` (:mod:`sampo_verl.cli`; also ``python -m sampo_verl COMMAND``);
training: ``python -m sampo_verl.main_ppo <verl overrides>``. Importing the package imports nothing
else: environments (:mod:`sampo_verl.envs`) load without torch, verl or Ray. verl loads the
registrations (:mod:`sampo_verl.plugin`) in every process that imports it; in a process where verl
is already imported (verl's ``VERL_USE_EXTERNAL_MODULES=sampo_verl``), importing the package loads
them too.

Layout: ``envs/`` (text environments), ``agent/`` (the environment agent loop, its per-turn schema,
prompts, action parser, task datasets), ``algorithms/`` (losses, loss config, advantages, filtering,
diagnostics), ``trainer/`` (the SAMPO trainer and its replay buffer), ``cpu/`` (the CPU backend),
``bc/`` (behaviour cloning), ``runs/`` (launcher, CPU runs, testbed, quickstart, evaluation),
``arena/``, ``tools/`` (the sandbox), ``testing/`` (a scripted LLM server); patches of verl live in
the top-level ``patches/`` folder, installed as ``sampo_verl.patches``.
"""

import sys

if "verl" in sys.modules:
    from sampo_verl import plugin  # noqa: F401
