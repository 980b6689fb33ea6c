"""sampo-verl: importing the package registers everything it adds into verl's registries.

verl imports it in every Ray process when ``VERL_USE_EXTERNAL_MODULES=sampo_verl`` is set.

Layout: ``algorithms/`` (losses, loss config, advantages, filtering, diagnostics), ``agent/``
(the environment agent loop, its per-turn schema, prompts, action parser, task datasets),
``envs/`` (text environments), ``trainer/`` (the SAMPO trainer and its replay buffer), ``cpu/``
(the CPU backend plugin), ``bc/`` (behaviour cloning), ``runs/`` (launcher, CPU runs, testbed,
quickstart, evaluation), ``arena/``, ``testing/`` (a scripted LLM server); patches of verl live in
the top-level ``patches/`` folder, installed as ``sampo_verl.patches``.
"""

import os
import warnings

# Importing verl imports vLLM where it is installed, and vLLM logs to stdout by default: its lines would
# mix into what the package's commands print for other programs (recipe settings, arena commands).
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")

from sampo_verl import _moved  # noqa: E402

# importing verl announces each optional training engine it cannot load (torchtitan, veomni, megatron, ...)
warnings.filterwarnings("ignore", message=r"\w+ engine is not available: ", category=UserWarning)

_moved.install()  # old module paths (sampo_verl.config, sampo_verl.agent_loop, ...) keep working

from sampo_verl import cpu  # noqa: E402, F401, I001  (first of verl's users: registers the cpu platform)
from sampo_verl.algorithms import losses  # noqa: E402, F401  (policy losses: sampo, *_seqmask)
from sampo_verl.patches import policy_loss_sequence_metrics  # noqa: E402
from sampo_verl.algorithms import advantages  # noqa: E402, F401  (estimators: gigpo, empg, grpo_steps)
from sampo_verl.agent import loop  # noqa: E402, F401  (sampo_env_agent agent loop + text environments)
from sampo_verl.trainer import ppo  # noqa: E402, F401  (trainer.v1.trainer_mode=sampo)

policy_loss_sequence_metrics.apply()  # verl's vanilla/gspo/sapo/cispo also report actor/seq_* metrics
