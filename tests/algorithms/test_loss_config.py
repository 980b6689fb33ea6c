"""SampoPolicyLossConfig (sampo_verl/config.py): validation and verl's hydra instantiation path."""

import math
import os

import pytest
import torch
import verl
from hydra import compose, initialize_config_dir
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import PolicyLossConfig

import sampo_verl  # noqa: F401  (registers the losses)
from sampo_verl.algorithms.loss_config import SampoPolicyLossConfig, SeqMaskConfig

VERL_CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
POLICY_LOSS = "actor_rollout_ref.actor.policy_loss"


def verl_actor_config(*overrides: str):
    """Compose verl's real ppo_trainer config and build the actor config as verl's worker does."""
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        config = compose(
            config_name="ppo_trainer",
            overrides=["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2", *overrides],
        )
    return omega_conf_to_dataclass(config.actor_rollout_ref.actor)  # engine_workers.py, init_model


def one_negative_sample(seq_kl: float):
    """One sample with A = -1 and D = seq_kl; returns the loss inputs."""
    old_log_prob = torch.full((1, 4), -1.0)
    return old_log_prob, old_log_prob - seq_kl, torch.full((1, 4), -1.0), torch.ones(1, 4, dtype=torch.bool)


def mask_fraction(loss_mode: str, config, seq_kl: float) -> float:
    old_log_prob, log_prob, advantages, response_mask = one_negative_sample(seq_kl)
    _, metrics = get_policy_loss_fn(loss_mode)(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=config.loss_agg_mode,
        config=config,
    )
    return metrics["actor/seq_mask_frac"]


def test_hydra_override_path_builds_our_config_and_the_loss_reads_it():
    config = verl_actor_config(
        f"{POLICY_LOSS}._target_=sampo_verl.algorithms.loss_config.SampoPolicyLossConfig",
        f"+{POLICY_LOSS}.seq_mask.delta=0.05",
        f"{POLICY_LOSS}.loss_mode=gspo_seqmask",
        "actor_rollout_ref.actor.clip_ratio_low=3e-4",
        "actor_rollout_ref.actor.clip_ratio_high=4e-4",
    )
    assert type(config.policy_loss) is SampoPolicyLossConfig
    assert config.policy_loss.seq_mask == SeqMaskConfig(delta=0.05)
    assert config.policy_loss.loss_mode == "gspo_seqmask"
    assert mask_fraction("gspo_seqmask", config, seq_kl=0.1) == 1.0  # 0.1 > 0.05 (would be kept at 0.223)
    assert mask_fraction("gspo", config, seq_kl=1.0) == 0.0  # the unmasked loss never masks


@pytest.mark.parametrize("loss_mode", ["vanilla_seqmask", "gspo_seqmask", "sapo_seqmask", "cispo_seqmask"])
def test_plain_verl_config_uses_the_default_delta(loss_mode):
    config = verl_actor_config(f"{POLICY_LOSS}.loss_mode={loss_mode}")
    assert type(config.policy_loss) is PolicyLossConfig
    assert mask_fraction(loss_mode, config, seq_kl=0.2) == 0.0
    assert mask_fraction(loss_mode, config, seq_kl=0.3) == 1.0


def test_hydra_bad_delta_names_the_flag():
    with pytest.raises(Exception, match=f"{POLICY_LOSS}.seq_mask.delta"):
        verl_actor_config(
            f"{POLICY_LOSS}._target_=sampo_verl.algorithms.loss_config.SampoPolicyLossConfig",
            f"+{POLICY_LOSS}.seq_mask.delta=-0.1",
        )


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"seq_mask": {"delta": -0.1}}, "seq_mask.delta"),
        ({"seq_mask": {"delta": math.nan}}, "seq_mask.delta"),
        ({"seq_mask": {"delta": "big"}}, "seq_mask.delta"),
        ({"seq_mask": {"delta": True}}, "seq_mask.delta"),
        ({"seq_mask": {"enable": True}}, r"seq_mask option\(s\) \['enable'\]"),
        ({"seq_mask": {"normaliser": "tokens"}}, "seq_mask.normaliser"),
        ({"seq_mask": {"threshold": 0.1}}, r"seq_mask option\(s\) \['threshold'\]"),
        ({"seq_mask": 0.1}, "seq_mask must be a mapping"),
        ({"loss_mode": "sampo_typo"}, "loss_mode='sampo_typo'"),
    ],
)
def test_bad_values_name_the_flag(kwargs, flag):
    with pytest.raises(ValueError, match=f"{POLICY_LOSS}.{flag}"):
        SampoPolicyLossConfig(**kwargs)


def test_valid_values_are_accepted():
    config = SampoPolicyLossConfig(loss_mode="gspo_seqmask", seq_mask={"delta": 0, "normaliser": "kept"})
    assert config.seq_mask == SeqMaskConfig(delta=0, normaliser="kept")
    assert SampoPolicyLossConfig().seq_mask == SeqMaskConfig(delta=0.223, normaliser="batch")
