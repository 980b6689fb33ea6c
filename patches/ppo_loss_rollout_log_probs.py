"""Hand the rollout's log-probs to the policy loss (verl 0.9.1's ``verl.workers.utils.losses.ppo_loss``).

Sequence masking against the policy that generated a sample (``policy_loss.seq_mask.reference=rollout``)
needs ``log pi_rollout`` inside the loss. verl's actor fetches every field of the batch, the rollout's
log-probs included, but ``ppo_loss`` calls a registered loss with a fixed set of arguments (old and new
log-probs, advantages, mask, aggregation, config, importance weights) and no hook adds one, so
registration cannot reach them (and verl spreads the actor config's ``global_batch_info`` into its
losses' aggregation as keyword arguments, so no key can be added there). This wrapper calls verl's
``ppo_loss`` unchanged inside :func:`sampo_verl.algorithms.losses.rollout_log_probs` with the batch's
padded rollout log-probs (None for a batch without). Active on every device; only a loss that asks reads them.
"""

from __future__ import annotations

import functools
from typing import Any

import verl.workers.utils.losses as verl_losses

from sampo_verl.algorithms.losses import ROLLOUT_LOG_PROBS, rollout_log_probs
from sampo_verl.patches._rebind import rebind


def with_rollout_log_probs(ppo_loss: Any) -> Any:
    """``ppo_loss`` run with the batch's padded rollout log-probs readable by the policy loss."""

    @functools.wraps(ppo_loss)
    def loss(config: Any, model_output: Any, data: Any, dp_group: Any = None) -> Any:
        values = None
        if ROLLOUT_LOG_PROBS in data.keys():
            values = data.select(ROLLOUT_LOG_PROBS).to_padded_tensor()[ROLLOUT_LOG_PROBS]
        with rollout_log_probs(values):
            return ppo_loss(config, model_output, data, dp_group)

    loss._sampo_rollout_log_probs = True  # type: ignore[attr-defined]
    return loss


def apply() -> None:
    """Wrap verl's ``ppo_loss`` wherever it was imported (idempotent)."""
    if not getattr(verl_losses.ppo_loss, "_sampo_rollout_log_probs", False):
        rebind(verl_losses, "ppo_loss", with_rollout_log_probs(verl_losses.ppo_loss))
