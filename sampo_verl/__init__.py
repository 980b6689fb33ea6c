"""sampo-verl: importing the package registers everything it adds into verl's registries.

verl imports it in every Ray process when ``VERL_USE_EXTERNAL_MODULES=sampo_verl`` is set.
"""

from sampo_verl import cpu  # noqa: F401, I001  (first: registers the cpu platform before verl resolves it)
from sampo_verl import losses  # noqa: F401  (policy losses: sampo, *_seqmask)
from sampo_verl.patches import policy_loss_sequence_metrics
from sampo_verl import advantages  # noqa: F401  (estimators: gigpo, empg, grpo_steps)
from sampo_verl import agent_loop  # noqa: F401  (sampo_env_agent agent loop + text environments)
from sampo_verl import trainer  # noqa: F401  (trainer.v1.trainer_mode=sampo)

policy_loss_sequence_metrics.apply()  # verl's vanilla/gspo/sapo/cispo also report actor/seq_* metrics
