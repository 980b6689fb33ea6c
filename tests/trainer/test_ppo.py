"""The SAMPO trainer's mode handling, without Ray."""

import pytest
from hydra import compose, initialize_config_dir
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

from sampo_verl.main_ppo import CONFIG_DIR
from sampo_verl.trainer.ppo import SampoTrainer
from sampo_verl.trainer.replay_buffer import SampoReplayBuffer


@pytest.mark.parametrize("method", ["sampo", "grpo"])
def test_trainer_runs_verl_sync_mode_with_the_filtering_buffer(method):
    """verl's __init__ assigns the configured mode ("sampo") and builds the replay buffer from it:
    the trainer must still take every "sync" branch, and filtering methods get SampoReplayBuffer."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose("sampo_ppo", overrides=[f"method={method}"])
    trainer = object.__new__(SampoTrainer)
    trainer.config = config
    trainer.trainer_mode = config.trainer.v1.trainer_mode  # as verl's PPOTrainerBase.__init__ does
    assert config.trainer.v1.trainer_mode == "sampo" and trainer.trainer_mode == "sync"
    buffer = trainer._build_replay_buffer()
    assert buffer.trainer_mode == "sync"
    assert type(buffer) is (SampoReplayBuffer if method == "sampo" else ReplayBuffer)
