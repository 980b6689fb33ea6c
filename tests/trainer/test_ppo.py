"""The SAMPO trainer's mode handling, without Ray."""

import pytest
from hydra import compose, initialize_config_dir
from verl.trainer.ppo.v1 import get_trainer_cls
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

from sampo_verl.main_ppo import CONFIG_DIR
from sampo_verl.trainer.modes import SAMPO_MODES
from sampo_verl.trainer.ppo import SampoHooks
from sampo_verl.trainer.replay_buffer import SampoReplayBuffer, SampoReplayBufferAsync

VERL_BUFFERS = {"sync": ReplayBuffer, "colocate_async": ReplayBufferAsync, "separate_async": ReplayBufferAsync}
FILTERING = {ReplayBuffer: SampoReplayBuffer, ReplayBufferAsync: SampoReplayBufferAsync}


@pytest.mark.parametrize("mode", list(SAMPO_MODES))
@pytest.mark.parametrize("method", ["sampo", "grpo"])
def test_each_mode_runs_verls_own_mode_with_the_filtering_buffer(mode, method):
    """verl's __init__ assigns the configured mode (e.g. "sampo_colocate_async") and builds the replay
    buffer from it: the trainer must take verl's branches for its own mode, read that mode's config section,
    and filtering methods get the filtering form of verl's buffer for that mode."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose("sampo_ppo", overrides=[f"method={method}", f"trainer.v1.trainer_mode={mode}"])
    cls = get_trainer_cls(mode)
    assert issubclass(cls, SampoHooks) and cls.__mro__[1] is SampoHooks
    verl_mode = SAMPO_MODES[mode]
    assert cls.__mro__[2] is get_trainer_cls(verl_mode)  # the hooks sit right above verl's own trainer
    trainer = object.__new__(cls)
    trainer.config = config
    trainer.trainer_mode = config.trainer.v1.trainer_mode  # as verl's PPOTrainerBase.__init__ does
    assert trainer.trainer_mode == verl_mode
    buffer = trainer._build_replay_buffer()
    assert buffer.trainer_mode == verl_mode
    assert buffer.trainer_config == config.trainer.v1[verl_mode]
    verl_buffer = VERL_BUFFERS[verl_mode]
    assert type(buffer) is (FILTERING[verl_buffer] if method == "sampo" else verl_buffer)


HOOKS = ["_balance_batch", "_compute_old_log_prob", "_update_actor", "_compute_advantage", "_build_replay_buffer",
         "_val_metrics_update", "_compute_metrics"]  # fmt: skip


@pytest.mark.parametrize("mode", list(SAMPO_MODES))
def test_every_mode_runs_the_one_implementation_of_the_hooks(mode):
    """The modes share SampoHooks' methods (same advantages, filter verdicts and metrics on the same batch):
    none of them overrides a hook, and each hook still reaches verl's own trainer of that mode via super()."""
    cls = get_trainer_cls(mode)
    for hook in HOOKS:
        assert getattr(cls, hook) is getattr(SampoHooks, hook), hook
        assert hasattr(get_trainer_cls(SAMPO_MODES[mode]), hook)
