"""What verl loads of sampo-verl: the registrations, in every process that imports verl.

verl imports this module through the ``verl.plugins`` entry point (setup.py) while it is imported
itself, in the driver and every Ray worker alike; ``VERL_USE_EXTERNAL_MODULES=sampo_verl`` loads it
too (:mod:`sampo_verl`). It registers the policy losses (``*_seqmask``, ``sampo``), the advantage
estimators (``gigpo``, ``empg``, ``grpo_steps``), the environment agent loop and the trainer modes
(``sampo``, ``sampo_colocate_async``, ``sampo_separate_async``), and, only where the CPU platform is in
use (:mod:`sampo_verl.accelerators`), the CPU backend with its patches. verl logs a plugin that fails to
import at debug level only; ``sampo_verl.main_ppo`` imports this module itself, so a broken installation
fails there, loudly.
"""

import os
import warnings

# Importing verl's workers imports vLLM where it is installed, and vLLM logs to stdout by default: its
# lines would mix into what the package's commands print for other programs (recipe settings, arena).
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
# importing verl announces each optional training engine it cannot load (torchtitan, veomni, megatron, ...)
warnings.filterwarnings("ignore", message=r"\w+ engine is not available: ", category=UserWarning)

from sampo_verl.accelerators import cpu_platform_in_use  # noqa: E402

if cpu_platform_in_use():
    # first of verl's users: the platform must be registered before a verl module resolves it
    from sampo_verl import cpu  # noqa: F401

from sampo_verl.algorithms import losses  # noqa: E402, F401  (policy losses: sampo, *_seqmask)
from sampo_verl.patches import policy_loss_sequence_metrics, ppo_loss_rollout_log_probs  # noqa: E402
from sampo_verl.algorithms import advantages  # noqa: E402, F401, I001  (estimators: gigpo, empg, grpo_steps)
from sampo_verl.agent import loop  # noqa: E402, F401  (sampo_env_agent agent loop + text environments)
from sampo_verl.trainer import ppo  # noqa: E402, F401  (trainer.v1.trainer_mode=sampo, sampo_*_async)

policy_loss_sequence_metrics.apply()  # verl's vanilla/gspo/sapo/cispo also report actor/seq_* metrics
ppo_loss_rollout_log_probs.apply()  # the rollout's log-probs reach the loss (seq_mask.reference=rollout)
