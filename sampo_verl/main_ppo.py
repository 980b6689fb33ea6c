"""Entry point: ``python -m sampo_verl.main_ppo [method=NAME] <verl hydra overrides>``.

The config is verl's own ``ppo_trainer`` with the package's additions on top
(``sampo_verl/conf/sampo_ppo.yaml``): the SAMPO trainer, the ARLArena testbed defaults, and the
``method`` group of presets (``method=sampo``, ``method=gigpo``...). Impossible combinations fail
here, before Ray starts, naming the flags (:mod:`sampo_verl.validation`).
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig

from sampo_verl.conf import CONFIG_DIR
from sampo_verl.processes.launch import EXTERNAL_MODULES_ENV, with_sampo_module


def export_external_module() -> None:
    """Make every Ray process (they inherit this environment) import and register sampo_verl."""
    os.environ[EXTERNAL_MODULES_ENV] = with_sampo_module(os.environ.get(EXTERNAL_MODULES_ENV, ""))


def run(config: DictConfig) -> None:
    """Validate ``config`` and run verl's v1 PPO task runner with it."""
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    import sampo_verl.plugin  # noqa: F401  (registers losses, estimators, agent loop, trainer; fails loudly)
    from sampo_verl.patches import ray_loopback_node
    from sampo_verl.validation import validate_sampo_config, validate_sampo_inputs

    export_external_module()
    ray_loopback_node.apply(config.get("ray_kwargs", {}).get("ray_init", {}))
    validate_sampo_config(config)
    validate_sampo_inputs(config)
    auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    run_ppo(config, task_runner_class=TaskRunnerV1)


@hydra.main(config_path=str(CONFIG_DIR), config_name="sampo_ppo", version_base=None)
def main(config: DictConfig) -> None:
    run(config)


if __name__ == "__main__":
    main()
