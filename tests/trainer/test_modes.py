"""Start-up checks of the SAMPO trainer's async modes: each impossible setting fails before Ray, naming the flag."""

import pytest
from hydra import compose, initialize_config_dir

from sampo_verl.main_ppo import CONFIG_DIR
from sampo_verl.trainer.modes import SAMPO_MODES
from sampo_verl.validation import validate_sampo_config


def make(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("sampo_ppo", overrides=["method=sampo", *overrides])


def test_colocate_async_with_every_preset_setting_validates():
    validate_sampo_config(make("trainer.v1.trainer_mode=sampo_colocate_async"))
    validate_sampo_config(
        make(
            "trainer.v1.trainer_mode=sampo_colocate_async",
            "trainer.v1.sampler.max_off_policy_threshold=2",
            "trainer.v1.sampler.max_off_policy_strategy=wait",
        )
    )


@pytest.mark.parametrize("mode", ["sampo", "sampo_colocate_async"])
def test_verls_own_modes_are_refused_for_the_multi_turn_methods(mode):
    """gigpo/filtering need the SAMPO hooks: verl's colocate_async by its own name is refused, ours is not."""
    validate_sampo_config(make(f"trainer.v1.trainer_mode={mode}"))
    with pytest.raises(ValueError, match=r"trainer.v1.trainer_mode to one of \['sampo'"):
        validate_sampo_config(make(f"trainer.v1.trainer_mode={SAMPO_MODES[mode]}"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.v1.sampler.max_off_policy_threshold=0"], "trainer.v1.sampler.max_off_policy_threshold=0 must be"),
        (["trainer.v1.sampler.max_off_policy_threshold=1.5"], "max_off_policy_threshold=1.5 must be an integer"),
        (["trainer.v1.sampler.max_off_policy_strategy=skip"], "max_off_policy_strategy=skip must be one of"),
        (["+trainer.v1.colocate_async.parameter_sync_step=2"], "trainer.v1.colocate_async.parameter_sync_step=2"),
    ],
)
def test_bad_colocate_async_settings_fail_naming_the_flag(overrides, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("[", r"\[")):
        validate_sampo_config(make("trainer.v1.trainer_mode=sampo_colocate_async", *overrides))


def test_sync_mode_ignores_the_async_sampler_settings():
    """verl's sync sampling is on-policy: its staleness settings are no-ops there, not errors."""
    validate_sampo_config(make("trainer.v1.sampler.max_off_policy_strategy=wait"))


def test_separate_async_on_cpu_fails_naming_what_it_needs(monkeypatch):
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    with pytest.raises(ValueError) as err:
        validate_sampo_config(make("trainer.v1.trainer_mode=sampo_separate_async"))
    text = str(err.value)
    assert "sampo_separate_async needs GPUs" in text
    # 1024 prompts in mini-batches of 256 and verl's default of 4 local updates per sync fit: no message
    assert "must equal" not in text
    assert "actor_rollout_ref.rollout.nnodes=0" in text
    with pytest.raises(ValueError, match=r"data.train_batch_size=512 must equal .*parameter_sync_step=4 x .*=256"):
        validate_sampo_config(make("trainer.v1.trainer_mode=sampo_separate_async", "data.train_batch_size=512"))
    assert "actor_rollout_ref.rollout.nnodes=0" in text


def test_separate_async_on_gpus_needs_a_gpu_checkpoint_engine(monkeypatch):
    monkeypatch.setenv("VERL_PLATFORM", "cuda")
    fitting = [
        "actor_rollout_ref.rollout.nnodes=1",
        "actor_rollout_ref.rollout.n_gpus_per_node=4",
    ]
    with pytest.raises(ValueError, match=r"checkpoint_engine.backend=naive only syncs weights within one pool"):
        validate_sampo_config(make("trainer.v1.trainer_mode=sampo_separate_async", *fitting))
    with pytest.raises(ValueError, match=r"checkpoint_engine.backend=nccl: Checkpoint engine nccl not registered"):
        validate_sampo_config(
            make(
                "trainer.v1.trainer_mode=sampo_separate_async",
                *fitting,
                "actor_rollout_ref.rollout.checkpoint_engine.backend=nccl",
            )
        )  # this machine has no cupy: nccl's module does not import
