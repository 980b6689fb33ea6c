"""Config dataclasses of the sequence-masked policy losses (``<loss>_seqmask``).

verl builds the actor config with ``omega_conf_to_dataclass(config.actor)``, i.e. a recursive
``hydra.utils.instantiate(..., _convert_="partial")``: every node carrying ``_target_`` becomes
that class, so pointing ``actor_rollout_ref.actor.policy_loss._target_`` at
:class:`SampoPolicyLossConfig` swaps verl's ``PolicyLossConfig`` for ours. The nested
``seq_mask`` node has no ``_target_`` and arrives as a plain ``dict``; ``__post_init__`` turns
it into a :class:`SeqMaskConfig`.

Flags (all under ``actor_rollout_ref.actor.policy_loss``), as written for ``sampo_verl.main_ppo``,
whose config already selects this class and has the ``seq_mask`` node::

    loss_mode=gspo_seqmask                # vanilla_seqmask / gspo_seqmask / sapo_seqmask / cispo_seqmask
    seq_mask.delta=0.223                  # mask A_i < 0 and D_i > delta (strictly greater)
    seq_mask.normaliser=kept              # average over the kept samples (the release) instead of all
    seq_mask.reference=rollout            # D_i against the policy that generated the sample

On verl's own ``verl.trainer.main_ppo`` add ``_target_=sampo_verl.algorithms.loss_config.SampoPolicyLossConfig``
and write the new keys with ``+`` (``+seq_mask.delta=0.223``).

The clip range and the aggregation are verl's own (``actor_rollout_ref.actor.clip_ratio_low/high``,
``actor_rollout_ref.actor.loss_agg_mode``); no loss here changes either.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from verl.base_config import BaseConfig
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
from verl.workers.config import PolicyLossConfig

from sampo_verl.options import options_section, read_options

FLAG_PREFIX = "actor_rollout_ref.actor.policy_loss"

SEQ_MASK_NORMALISERS = ("batch", "kept")
SEQ_MASK_REFERENCES = ("old", "rollout")


@options_section(f"{FLAG_PREFIX}.seq_mask", ignore=("_target_",))
@dataclass
class SeqMaskConfig(BaseConfig):
    """Advantage-conditioned sequence masking: drop sample i when ``A_i < 0 and D_i > delta``.

    Args:
        delta: threshold on ``D_i = mean_t (log pi_old - log pi_theta)``; 0.223 is about ln 1.25 (the
            ARLArena release's scripts ran 3e-3).
        normaliser: ``batch``: the loss keeps the pre-mask normaliser (dropped samples count as zero loss,
            so the step shrinks by the kept fraction; independent of the micro-batch split); ``kept``: as
            the release, each micro-batch's loss is averaged over its kept tokens (``token-mean``) or kept
            samples (``seq-mean-*``), so masking does not shrink the step (but the loss then depends on
            how the masked samples fall into micro-batches). See :mod:`sampo_verl.algorithms.losses`.
        reference: the policy ``D_i`` is measured against: ``old`` (the old policy of the update, as the
            release) or ``rollout`` (the policy that generated the sample, from the rollout's log-probs:
            differs from ``old`` when the old policy is recomputed on stale data, e.g. in the async trainers).
    """

    delta: float = 0.223
    normaliser: str = "batch"
    reference: str = "old"

    def __post_init__(self):
        is_number = isinstance(self.delta, int | float) and not isinstance(self.delta, bool)
        if not is_number or math.isnan(self.delta) or self.delta < 0:
            raise ValueError(f"{FLAG_PREFIX}.seq_mask.delta must be a number >= 0, got {self.delta!r}")
        if self.normaliser not in SEQ_MASK_NORMALISERS:
            raise ValueError(
                f"{FLAG_PREFIX}.seq_mask.normaliser must be one of {SEQ_MASK_NORMALISERS}, got {self.normaliser!r}"
            )
        if self.reference not in SEQ_MASK_REFERENCES:
            raise ValueError(
                f"{FLAG_PREFIX}.seq_mask.reference must be one of {SEQ_MASK_REFERENCES}, got {self.reference!r}"
            )


@dataclass
class SampoPolicyLossConfig(PolicyLossConfig):
    """verl's ``PolicyLossConfig`` plus ``seq_mask``, the settings of the ``<loss>_seqmask`` modes (a
    dict from hydra is accepted)."""

    seq_mask: SeqMaskConfig = field(default_factory=SeqMaskConfig)

    def __post_init__(self):
        if isinstance(self.seq_mask, dict):
            object.__setattr__(self, "seq_mask", _seq_mask_from_dict(self.seq_mask))
        elif not isinstance(self.seq_mask, SeqMaskConfig):
            raise ValueError(f"{FLAG_PREFIX}.seq_mask must be a mapping of its settings, got {self.seq_mask!r}")
        if self.loss_mode not in POLICY_LOSS_REGISTRY:
            raise ValueError(
                f"{FLAG_PREFIX}.loss_mode={self.loss_mode!r} is not a registered policy loss; "
                f"known: {sorted(POLICY_LOSS_REGISTRY)}"
            )


DEFAULT_SEQ_MASK = SeqMaskConfig()


def _seq_mask_from_dict(values: Any) -> SeqMaskConfig:
    return read_options(SeqMaskConfig, values, f"{FLAG_PREFIX}.seq_mask", ignore=("_target_",))


def seq_mask_config(policy_loss: Any) -> SeqMaskConfig:
    """The sequence-mask settings of any policy-loss config: ours, verl's plain one, or a DictConfig.

    verl's own ``PolicyLossConfig`` has no ``seq_mask`` field; it gets the defaults.
    """
    seq_mask = policy_loss.get("seq_mask") if policy_loss is not None else None
    if seq_mask is None:
        return DEFAULT_SEQ_MASK
    if isinstance(seq_mask, SeqMaskConfig):
        return seq_mask
    return _seq_mask_from_dict(seq_mask)
