"""The entry point's config: verl's ppo_trainer + sampo_ppo.yaml + method presets, validated."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import sampo_verl  # noqa: F401  (registers losses)
from sampo_verl.algorithms.advantages import EMPGOptions, GiGPOOptions
from sampo_verl.algorithms.loss_config import SampoPolicyLossConfig
from sampo_verl.validation import validate_sampo_config
from verl.utils.config import omega_conf_to_dataclass

CONF = str(Path(sampo_verl.__file__).parent / "conf")
METHODS = sorted(p.stem for p in (Path(CONF) / "method").glob("*.yaml"))


def make(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("sampo_ppo", overrides=list(overrides))


def test_all_arlarena_presets_exist():
    assert set(METHODS) == {
        "grpo", "grpo_seqmean", "gspo", "sapo", "cispo", "sapo_seqmask", "cispo_seqmask",
        "grpo_filter", "gigpo", "gigpo_filter", "empg", "sampo",
    }


@pytest.mark.parametrize("method", METHODS)
def test_every_preset_composes_validates_and_builds_verl_configs(method):
    cfg = make(f"method={method}", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2")
    validate_sampo_config(cfg)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)  # verl's own instantiation path
    assert isinstance(actor.policy_loss, SampoPolicyLossConfig)
    assert actor.policy_loss.loss_mode == cfg.actor_rollout_ref.actor.policy_loss.loss_mode
    assert cfg.trainer.v1.trainer_mode == "sampo" and cfg.trainer.use_v1


def test_preset_values_match_spec():
    sampo = make("method=sampo")
    actor = sampo.actor_rollout_ref.actor
    assert sampo.algorithm.adv_estimator == "gigpo" and sampo.algorithm.gamma == 0.95
    assert actor.policy_loss.loss_mode == "sampo"
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == (3e-4, 4e-4)
    assert sampo.algorithm.filter_groups.enable and sampo.algorithm.filter_groups.criterion == "advantage"
    # testbed: KL loss (k3, 0.01), group size 8, invalid penalty 0.1
    assert actor.use_kl_loss and actor.kl_loss_type == "low_var_kl" and actor.kl_loss_coef == 0.01
    assert sampo.actor_rollout_ref.rollout.n == 8 and sampo.algorithm.gigpo.invalid_penalty == 0.1
    assert make("method=grpo_seqmean").actor_rollout_ref.actor.loss_agg_mode == "seq-mean-token-mean"
    assert make("method=sapo_seqmask").actor_rollout_ref.actor.policy_loss.loss_mode == "sapo_seqmask"
    assert make("method=grpo_filter").algorithm.filter_groups.criterion == "reward"


def test_declared_option_sections_match_estimator_defaults():
    cfg = make()
    assert dict(cfg.algorithm.gigpo) == {k: getattr(GiGPOOptions(), k) for k in cfg.algorithm.gigpo}
    assert dict(cfg.algorithm.empg) == {k: getattr(EMPGOptions(), k) for k in cfg.algorithm.empg}


def test_user_overrides_win_over_presets():
    cfg = make("method=sampo", "actor_rollout_ref.actor.clip_ratio_high=0.001", "algorithm.gigpo.step_weight=0.5")
    assert cfg.actor_rollout_ref.actor.clip_ratio_high == 0.001 and cfg.algorithm.gigpo.step_weight == 0.5


@pytest.mark.parametrize(
    "overrides,flags",
    [
        (["method=gigpo", "actor_rollout_ref.rollout.agent.default_agent_loop=single_turn_agent"],
         ["actor_rollout_ref.rollout.agent.default_agent_loop"]),
        (["method=gigpo", "trainer.v1.trainer_mode=sync"], ["trainer.v1.trainer_mode"]),
        (["method=grpo", "actor_rollout_ref.actor.policy_loss.seq_mask.enable=true"],
         ["seq_mask.enable", "loss_mode=vanilla"]),
        (["method=grpo_filter", "actor_rollout_ref.rollout.n=1"], ["filter_groups.enable", "rollout.n=1"]),
        (["method=empg", "algorithm.filter_groups.enable=true", "algorithm.filter_groups.criterion=advantage"],
         ["filter_groups.criterion=advantage"]),
        (["method=gigpo", "algorithm.use_kl_in_reward=true"], ["algorithm.use_kl_in_reward"]),
        (["trainer.use_v1=false"], ["trainer.use_v1"]),
        (["sampo.collapse.format_drop=2.0"], ["sampo.collapse.format_drop"]),
    ],
)
def test_impossible_combinations_fail_naming_the_flags(overrides, flags):
    with pytest.raises(ValueError) as err:
        validate_sampo_config(make(*overrides))
    for flag in flags:
        assert flag in str(err.value)


def test_valid_seq_mask_combination_passes():
    validate_sampo_config(make("method=sampo", "actor_rollout_ref.actor.policy_loss.seq_mask.enable=true"))
    assert OmegaConf.select(make("method=sampo"), "actor_rollout_ref.actor.policy_loss.seq_mask.delta") == 0.223
