"""The cpu Hydra preset composes onto verl's ppo_trainer and validates as verl's dataclasses."""

from pathlib import Path

import pytest
import verl.trainer
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from verl.utils.config import omega_conf_to_dataclass

from sampo_verl.cpu import cpu_overrides
from sampo_verl.cpu.overrides import CONFIG_DIR

VERL_CONFIG_DIR = str(Path(verl.trainer.__file__).parent / "config")


def compose_ppo(*overrides, preset=None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        return compose("ppo_trainer", overrides=[*(cpu_overrides() if preset is None else preset), *overrides])


def test_preset_sets_cpu_run():
    config = compose_ppo()
    assert config.trainer.device == "cpu"
    assert config.actor_rollout_ref.rollout.name == "hf"
    assert config.actor_rollout_ref.actor.strategy == "fsdp2" and config.actor_rollout_ref.ref.strategy == "fsdp2"
    assert config.actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype == "fp32"
    assert config.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert config.transfer_queue.backend.SimpleStorage.num_data_storage_units == 1
    assert config.ray_kwargs.ray_init.num_gpus == config.trainer.n_gpus_per_node == 1
    rollout = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    assert (rollout.dtype, rollout.tensor_model_parallel_size, rollout.checkpoint_engine.backend) == (
        "float32",
        1,
        "naive",
    )


@pytest.mark.parametrize("ranks", [1, 2])
def test_later_overrides_win_and_gpu_slots_follow_ranks(ranks):
    config = compose_ppo(f"trainer.n_gpus_per_node={ranks}", "actor_rollout_ref.rollout.agent.num_workers=2")
    assert config.ray_kwargs.ray_init.num_gpus == ranks
    assert config.actor_rollout_ref.rollout.agent.num_workers == 2


def test_app_search_path_is_kept():
    overrides = cpu_overrides(searchpath=["pkg://verl.trainer.config"])
    assert overrides[0] == f"hydra.searchpath=[pkg://verl.trainer.config,file://{CONFIG_DIR}]"
    assert compose_ppo(preset=overrides).trainer.device == "cpu"


def test_sampo_main_ppo_selects_the_preset_by_group_name():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose("sampo_ppo", overrides=["preset=cpu", "method=sampo"])
        default = compose("sampo_ppo")
    assert config.trainer.device == "cpu" and config.actor_rollout_ref.rollout.name == "hf"
    assert config.trainer.v1.trainer_mode == "sampo"
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"  # the release's SAMPO: GSPO loss
    assert "preset" not in config and default.trainer.device != "cpu"


def test_preset_without_its_search_path_fails_loudly():
    with pytest.raises(ConfigCompositionException, match="preset"):
        compose_ppo(preset=cpu_overrides()[1:])
