"""Add the sequence diagnostics to verl's own maskable losses (``vanilla``, ``gspo``, ``sapo``, ``cispo``).

ARLArena's stability panel compares every method on the same signals: sequence-ratio statistics,
sequence clip fraction, and the fraction of negative-advantage samples with a low ratio (the ones
sequence masking drops). verl 0.9.1's losses return their own metrics only, and its
``POLICY_LOSS_REGISTRY`` has no hook to add metrics to a registered loss, so the entries of the base
losses in ``MASKABLE_BASE_LOSSES`` are replaced by
:func:`sampo_verl.algorithms.losses.with_sequence_metrics` wrappers: the original function is called
with the same arguments (same loss value and gradient) and the ``actor/seq_*`` metrics are added.
Unlike the CPU patches this one is active on every device; it changes metrics only. The functions
themselves (``core_algos.compute_policy_loss_*``) are untouched.
"""

from __future__ import annotations

from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY


def apply() -> None:
    """Wrap the registered losses of :data:`sampo_verl.algorithms.losses.MASKABLE_BASE_LOSSES` (idempotent)."""
    from sampo_verl.algorithms.losses import MASKABLE_BASE_LOSSES, with_sequence_metrics

    for name in MASKABLE_BASE_LOSSES:
        loss_fn = POLICY_LOSS_REGISTRY[name]
        if not getattr(loss_fn, "_sampo_sequence_metrics", False):
            POLICY_LOSS_REGISTRY[name] = with_sequence_metrics(loss_fn)
