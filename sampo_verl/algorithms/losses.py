"""Advantage-conditioned sequence masking for verl's policy losses: the ``<loss>_seqmask`` modes.

ARLArena (arXiv 2602.21534) traces training collapse to negative-advantage samples whose
importance ratio is already low, and drops them from the policy-gradient term::

    D_i  = (1/|y_i|) sum_t m_{i,t} (log pi_old(y_{i,t}) - log pi_theta(y_{i,t}))
    drop sample i  iff  A_i < 0  and  D_i > delta          (D_i == delta is kept)

``A_i`` is the mean advantage over the sample's valid tokens (the constant value for GRPO-like
estimators). One mechanism, :func:`sequence_masked_policy_loss`, serves every loss here: it
zeroes the dropped samples' rows of ``response_mask`` and calls verl's own loss function on it.
Registered modes: ``vanilla_seqmask``, ``gspo_seqmask``, ``sapo_seqmask``, ``cispo_seqmask``: verl's
loss of that name, masked, with the aggregation verl passes (``actor.loss_agg_mode``) unchanged.

Normalisers (``policy_loss.seq_mask.normaliser``). verl's engine actor passes the global counts in
``config.global_batch_info`` (``batch_num_tokens``, ``global_batch_size``, counted over the mini-batch
on all dp ranks before masking); when a caller passes none (dp_size 1), the local pre-mask counts of
the micro-batch are filled in (non-empty samples; at least 1).

- ``batch`` (default): dropped samples contribute zero and the aggregation still divides by those
  pre-mask counts (tokens for ``token-mean``, samples for ``seq-mean-*``), as if they were in the batch
  with zero loss. The loss does not depend on how the mini-batch is split into micro-batches or ranks
  and its scale matches the (unmasked) entropy and KL terms; the price is that masking shrinks the
  policy-gradient step by the kept fraction.
- ``kept`` (the ARLArena release): each micro-batch is averaged over what it kept. The counts are
  scaled by the micro-batch's kept fraction (kept tokens / its tokens for ``token-mean``, kept samples
  / its samples for ``seq-mean-*``): with equal micro-batches this is the release's loss, the mean
  over the kept tokens (samples) of the micro-batch divided by the number of micro-batches. The step
  no longer shrinks with masking, but the loss now depends on how the dropped samples fall into
  micro-batches (split invariance holds only where every micro-batch keeps the same fraction).

A micro-batch where every sample is dropped gives loss 0 with zero gradient under both (0, not 0/0).

Reference (``policy_loss.seq_mask.reference``): ``old`` measures ``D_i`` against the update's old
policy; ``rollout`` against the policy that generated the sample, ``log pi_rollout`` in place of
``log pi_old`` in ``D_i`` only (the clipped ratio keeps ``pi_old``). They differ where the old policy is
recomputed on stale data (asynchronous trainers, ``sampo.old_log_prob.from_rollout=false``). verl
passes no rollout log-probs to a loss: ``patches/ppo_loss_rollout_log_probs.py`` makes them readable
inside verl's loss call (:func:`rollout_log_probs`).

With one mini-batch and one PPO epoch, ``pi_theta == pi_old`` at the update, so ``D_i == 0`` and
neither clipping nor masking (delta >= 0) has anything to act on.
"""

import contextlib
import copy
import functools
import inspect
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import (
    PolicyLossFn,
    compute_policy_loss_cispo,
    compute_policy_loss_gspo,
    compute_policy_loss_sapo,
    compute_policy_loss_vanilla,
    register_policy_loss,
)
from verl.workers.config import ActorConfig

from sampo_verl.algorithms.loss_config import seq_mask_config

ROLLOUT_LOG_PROBS = "rollout_log_probs"  # verl's field name
_ROLLOUT_LOG_PROBS: ContextVar[torch.Tensor | None] = ContextVar(ROLLOUT_LOG_PROBS, default=None)


@contextlib.contextmanager
def rollout_log_probs(values: torch.Tensor | None) -> Iterator[None]:
    """Within: ``values``, (bs, response_length), are the rollout's log-probs of the batch the policy loss
    is called on (``seq_mask.reference=rollout`` reads them)."""
    token = _ROLLOUT_LOG_PROBS.set(values)
    try:
        yield
    finally:
        _ROLLOUT_LOG_PROBS.reset(token)


def sequence_mask_statistics(
    old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ``D_i``, ``A_i`` and response length ``|y_i|``, all shape (bs,), no gradient.

    Inputs are (bs, response_length); ``D_i = -log s_i`` where ``s_i`` is GSPO's sequence ratio.
    Empty responses get ``D_i = A_i = 0``.
    """
    with torch.no_grad():  # fp32 even for half-precision log-probs (.float() is free on fp32)
        mask = response_mask.float()
        lengths = mask.sum(-1)
        per_token = 1.0 / lengths.clamp(min=1)
        seq_kl = (old_log_prob - log_prob).float().mul_(mask).sum(-1) * per_token
        seq_advantage = (advantages.float() * mask).sum(-1) * per_token
    return seq_kl, seq_advantage, lengths


def sequence_masked_policy_loss(
    base_loss_fn: PolicyLossFn,
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str,
    config: ActorConfig,
    rollout_is_weights: Optional[torch.Tensor],
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run ``base_loss_fn`` (a verl policy loss) with sequence masking and add sequence metrics.

    Args:
        base_loss_fn: verl policy loss, called unchanged with the masked ``response_mask``.
        old_log_prob, log_prob, advantages, response_mask: (bs, response_length).
        loss_agg_mode: passed through to ``base_loss_fn``.
        config: the actor config; reads ``clip_ratio_low/high``, ``policy_loss.seq_mask`` and, for
            ``reference=rollout``, the rollout's log-probs of :func:`rollout_log_probs`.
        rollout_is_weights: passed through.

    Returns:
        The base loss and its metrics, plus ``actor/seq_*`` metrics (python floats).
    """
    if config is None:
        raise ValueError("sequence-masked policy losses need the actor config (actor_rollout_ref.actor)")
    seq_mask = seq_mask_config(config.get("policy_loss"))
    clip_low, clip_high = _clip_range(config)

    reference_log_prob, gap_metrics = old_log_prob, {}
    if seq_mask.reference == "rollout":
        reference_log_prob = _ROLLOUT_LOG_PROBS.get()
        if reference_log_prob is None:
            raise ValueError(
                "policy_loss.seq_mask.reference=rollout needs the rollout's log-probs in the loss: "
                "actor_rollout_ref.rollout.calculate_log_probs=true and the sampo_verl plugin loaded"
            )
        gap, _, gap_lengths = sequence_mask_statistics(old_log_prob, reference_log_prob, advantages, response_mask)
        valid_gap = gap[gap_lengths > 0].abs()
        gap_metrics["actor/seq_rollout_gap_abs"] = float(valid_gap.mean()) if valid_gap.numel() else 0.0
    seq_kl, seq_advantage, lengths = sequence_mask_statistics(reference_log_prob, log_prob, advantages, response_mask)
    valid = lengths > 0
    dropped = valid & (seq_advantage < 0) & (seq_kl > seq_mask.delta)
    kept_mask = response_mask * ~dropped.unsqueeze(-1)  # keeps response_mask's dtype

    pg_loss, pg_metrics = base_loss_fn(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=kept_mask,
        loss_agg_mode=loss_agg_mode,
        config=_with_normalisers(config, lengths, dropped, seq_mask.normaliser),
        rollout_is_weights=rollout_is_weights,
    )
    pg_metrics.update(_sequence_metrics(seq_kl, seq_advantage, lengths, dropped, dropped, clip_low, clip_high))
    pg_metrics.update(gap_metrics)
    return pg_loss, pg_metrics


def with_sequence_metrics(base_loss_fn: PolicyLossFn) -> PolicyLossFn:
    """verl's ``base_loss_fn`` called exactly as given (same value and gradient), plus the
    ``actor/seq_*`` metrics of :func:`sequence_masked_policy_loss` with nothing dropped.

    ``actor/seq_neg_adv_low_ratio_frac`` then says how many samples masking *would* drop, so runs
    with and without masking can be compared (ARLArena's collapse diagnosis).
    """
    signature = inspect.signature(base_loss_fn)

    @functools.wraps(base_loss_fn)
    def loss_fn(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        pg_loss, pg_metrics = base_loss_fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        config = a["config"]
        if config is not None:
            delta = seq_mask_config(config.get("policy_loss")).delta
            seq_kl, seq_advantage, lengths = sequence_mask_statistics(
                a["old_log_prob"], a["log_prob"], a["advantages"], a["response_mask"]
            )
            low_ratio_negative = (lengths > 0) & (seq_advantage < 0) & (seq_kl > delta)
            dropped = torch.zeros_like(low_ratio_negative)
            metrics = _sequence_metrics(
                seq_kl, seq_advantage, lengths, dropped, low_ratio_negative, *_clip_range(config)
            )
            pg_metrics = {**pg_metrics, **metrics}
        return pg_loss, pg_metrics

    loss_fn._sampo_sequence_metrics = True  # type: ignore[attr-defined]
    return loss_fn


def _seqmask_variant(base_loss_fn: PolicyLossFn, name: str, default_agg_mode: str) -> PolicyLossFn:
    """Register ``{name}_seqmask``: verl's ``name`` loss with sequence masking always on."""

    def loss_fn(
        old_log_prob: torch.Tensor,
        log_prob: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        loss_agg_mode: str = default_agg_mode,
        config: Optional[ActorConfig] = None,
        rollout_is_weights: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        return sequence_masked_policy_loss(
            base_loss_fn,
            old_log_prob,
            log_prob,
            advantages,
            response_mask,
            loss_agg_mode=loss_agg_mode,
            config=config,
            rollout_is_weights=rollout_is_weights,
        )

    loss_fn.__name__ = loss_fn.__qualname__ = f"compute_policy_loss_{name}_seqmask"
    loss_fn.__doc__ = (
        f"verl's ``{name}`` policy loss ({base_loss_fn.__name__}) with sequence masking: samples with "
        "A_i < 0 and D_i > policy_loss.seq_mask.delta are dropped from the policy-gradient term. "
        "Same arguments and shapes as the base loss."
    )
    return register_policy_loss(f"{name}_seqmask")(loss_fn)


# verl's losses that compose with sequence masking, with the aggregation their ``*_seqmask`` mode defaults to
MASKABLE_BASE_LOSSES: dict[str, tuple[PolicyLossFn, str]] = {
    "vanilla": (compute_policy_loss_vanilla, "token-mean"),
    "gspo": (compute_policy_loss_gspo, "seq-mean-token-mean"),
    "sapo": (compute_policy_loss_sapo, "seq-mean-token-mean"),
    "cispo": (compute_policy_loss_cispo, "token-mean"),
}
SEQ_MASK_LOSSES = tuple(f"{name}_seqmask" for name in MASKABLE_BASE_LOSSES)  # read policy_loss.seq_mask
for _name, (_base_loss_fn, _agg_mode) in MASKABLE_BASE_LOSSES.items():
    _seqmask_variant(_base_loss_fn, _name, _agg_mode)


def _clip_range(config: ActorConfig) -> tuple[float, float]:
    clip_low = config.get("clip_ratio_low")
    clip_high = config.get("clip_ratio_high")
    clip_low = config.clip_ratio if clip_low is None else clip_low
    clip_high = config.clip_ratio if clip_high is None else clip_high
    if not 0 <= clip_low <= 1:  # 1: no lower bound (CISPO as released)
        raise ValueError(f"actor_rollout_ref.actor.clip_ratio_low must be in [0, 1], got {clip_low}")
    if not clip_high >= 0:
        raise ValueError(f"actor_rollout_ref.actor.clip_ratio_high must be >= 0, got {clip_high}")
    return clip_low, clip_high


def _with_normalisers(
    config: ActorConfig, lengths: torch.Tensor, dropped: torch.Tensor, normaliser: str
) -> ActorConfig:
    """``config`` with the counts of ``global_batch_info`` the masked loss divides by (module docstring).

    ``batch``: verl's pre-mask counts as they are (the local ones of this micro-batch filled in when a
    caller passes none); ``kept``: those counts scaled by the micro-batch's kept fraction. A shallow copy
    carries any change; ``config`` itself is returned when nothing changes.
    """
    info = config.global_batch_info
    tokens, samples = info.get("batch_num_tokens"), info.get("global_batch_size")
    if info.get("dp_size", 1) > 1 and (tokens is None or samples is None):
        return config  # verl itself raises: dp_size > 1 needs the global counts
    non_empty = lengths > 0
    local_tokens, local_samples = lengths.sum().clamp(min=1), non_empty.sum().clamp(min=1)
    filled = {
        "batch_num_tokens": local_tokens if tokens is None else tokens,
        "global_batch_size": local_samples if samples is None else samples,
    }
    if normaliser == "kept":
        kept_tokens = (lengths * ~dropped).sum()
        kept_samples = (non_empty & ~dropped).sum()
        if kept_samples > 0:  # nothing kept: the loss is 0 whatever it is divided by
            filled["batch_num_tokens"] = filled["batch_num_tokens"] * kept_tokens / local_tokens
            filled["global_batch_size"] = filled["global_batch_size"] * kept_samples / local_samples
    if filled["batch_num_tokens"] is tokens and filled["global_batch_size"] is samples:
        return config
    out = copy.copy(config)
    object.__setattr__(out, "global_batch_info", {**info, **filled})  # BaseConfig fields are frozen
    return out


def _sequence_metrics(
    seq_kl: torch.Tensor,
    seq_advantage: torch.Tensor,
    lengths: torch.Tensor,
    dropped: torch.Tensor,
    low_ratio_negative: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> dict[str, float]:
    """Sequence-level metrics over the samples with a non-empty response.

    The five (bs,) vectors go to the host in one transfer (the only device sync) and the
    statistics are taken there with numpy: a dozen tiny device kernels would cost more.
    seq_clipfrac counts samples whose sequence ratio sits outside the clip range on the side
    where clipping removes the gradient (A > 0 above 1 + eps_high, A < 0 below 1 - eps_low).
    With no valid sample the ratio statistics read 1 (no policy change) and fractions 0.
    """
    per_sample = torch.stack([seq_kl, seq_advantage, lengths, dropped, low_ratio_negative]).float()
    seq_kl_np, advantage, length, dropped_np, low_ratio_negative_np = per_sample.cpu().numpy().astype(np.float64)
    valid = length > 0
    n_valid = max(int(valid.sum()), 1)
    n_negative = max(int((valid & (advantage < 0)).sum()), 1)
    ratio = np.exp(np.minimum(-seq_kl_np[valid], 10.0))  # GSPO's clamp
    advantage = advantage[valid]
    clipped = ((advantage > 0) & (ratio > 1 + clip_high)) | ((advantage < 0) & (ratio < 1 - clip_low))
    return {
        "actor/seq_mask_frac": float(dropped_np.sum() / n_valid),
        "actor/seq_neg_adv_low_ratio_frac": float(low_ratio_negative_np.sum() / n_negative),
        "actor/seq_ratio_mean": float(ratio.mean()) if ratio.size else 1.0,
        "actor/seq_ratio_min": float(ratio.min()) if ratio.size else 1.0,
        "actor/seq_ratio_max": float(ratio.max()) if ratio.size else 1.0,
        "actor/seq_clipfrac": float(clipped.sum() / n_valid),
    }
