"""The old policy's log-probs taken from the rollout instead of a second forward pass
(``sampo.old_log_prob.from_rollout=true``; the CPU preset's default).

In synchronous PPO the "old" policy of a step is the policy that generated the step's rollouts:
verl recomputes its log-probs with one trainer forward over every sample before the update.
When the rollout engine already reports the log-probs of the same distribution, in the same
precision (the ``hf`` rollout in fp32: ``training/rollout_probs_diff_max`` ~1e-5 on the CPU
testbed), that forward repeats the rollout's numbers at the price of a third of the trainer's time.
verl's ``algorithm.rollout_correction.bypass_mode`` skips it as well, but then nothing measures the
policy's entropy, and EMPG's advantages need the old policy's token entropy. This option skips the
forward only for estimators that do not read that entropy, and the entropy of the step's policy
is measured in the update's forward instead (``actor.calculate_entropy``; the first mini-batch sees
the rollout's weights, so with one mini-batch per step it is the same number), reported under
verl's ``actor/entropy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sampo_verl.algorithms import advantages  # noqa: F401  (registers the estimators)
from sampo_verl.algorithms import multi_turn
from sampo_verl.options import options_section, read_options, section_of

UPDATE_ENTROPY_METRIC = "actor/entropy_loss"  # verl's loss reports the update's entropy under this name
ENTROPY_METRIC = "actor/entropy"  # ... and the old-log-prob pass under this one


@options_section("sampo.old_log_prob")
@dataclass(frozen=True)
class OldLogProbOptions:
    """``sampo.old_log_prob``.

    from_rollout: use the rollout's log-probs as the old policy's (needs
        ``actor_rollout_ref.rollout.calculate_log_probs=true``); estimators that read the old
        policy's token entropy (EMPG) still get the forward pass.
    """

    from_rollout: bool = False

    def check(self, prefix: str) -> None:
        if not isinstance(self.from_rollout, bool):
            raise ValueError(f"{prefix}.from_rollout must be true or false, got {self.from_rollout!r}")


def old_log_prob_options(sampo_config: Mapping[str, Any] | None) -> OldLogProbOptions:
    """``sampo.old_log_prob`` of the ``sampo`` config section (absent: the defaults)."""
    return read_options(OldLogProbOptions, section_of(sampo_config, "old_log_prob"), "sampo.old_log_prob")


def skips_forward(options: OldLogProbOptions, adv_estimator: str) -> bool:
    """Whether the old-log-prob forward pass is skipped: asked for, and ``adv_estimator`` does not read
    the old policy's token entropy."""
    reads_entropy = adv_estimator in multi_turn.MULTI_TURN_ESTIMATORS and multi_turn.ENTROPY in (
        multi_turn.required_tensor_fields(adv_estimator)
    )
    return options.from_rollout and not reads_entropy


def config_errors(options: OldLogProbOptions, calculate_log_probs: bool) -> list[str]:
    """What makes ``from_rollout`` impossible under this rollout config."""
    if options.from_rollout and not calculate_log_probs:
        return [
            "sampo.old_log_prob.from_rollout=true needs the rollout's log-probs: set "
            "actor_rollout_ref.rollout.calculate_log_probs=true"
        ]
    return []
