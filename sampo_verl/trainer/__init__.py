"""The SAMPO trainer (``trainer.v1.trainer_mode=sampo``): :class:`.ppo.SampoTrainer` and its
filtering replay buffer (:mod:`.replay_buffer`)."""

from sampo_verl.trainer.ppo import SampoTrainer

__all__ = ["SampoTrainer"]
