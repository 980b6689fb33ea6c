"""From verl's TransferQueue rows to the inputs of the multi-turn estimators.

verl only hands ``index`` and tensors to a registered advantage estimator; the per-turn fields
(:mod:`sampo_verl.agent.turns`) live in each sample's ``extra_fields``. The trainer's advantage
step and the replay buffer's ``advantage`` filter criterion both go through
:func:`multi_turn_advantages`; the advantage step also runs verl's rollout correction
(:func:`rollout_correction`) first, as verl's own does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_add_to_batch

from sampo_verl.agent import turns
from sampo_verl.algorithms import advantages  # noqa: F401  (registers the estimators)
from sampo_verl.algorithms import multi_turn


def pop_extra_fields(data: Any) -> list[dict[str, Any]]:
    """The per-sample ``extra_fields`` dicts of a TransferQueue read, removed from ``data``."""
    return [getattr(ef, "data", ef) for ef in data.pop("extra_fields").tolist()]


def real_rows(tags: list[dict[str, Any]]) -> np.ndarray:
    """Rows that are not verl's synthetic padding (``upsample_batch_to_divisible_size`` appends copies
    of the first row's metadata, tagged ``is_padding``, to make the batch divisible by the mini-batch)."""
    return np.array([not tag.get("is_padding", False) for tag in tags], dtype=bool)


def multi_turn_advantages(
    algorithm_config: Any,
    uid: np.ndarray,
    extra_fields: list[dict[str, Any]],
    tensors: dict[str, torch.Tensor],
    real: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of the configured multi-turn estimator, (bs, response_length).

    ``tensors`` holds ``rm_scores``, ``response_mask`` and the estimator's extra tensors. The
    estimator sees the real rows only (a padding row repeats a real turn's ``traj_uid`` and ``step``);
    padding rows get zero advantages and returns, so they add nothing to the loss.
    """
    name = algorithm_config.adv_estimator
    all_real = bool(real.all())
    rows = torch.from_numpy(np.flatnonzero(real))
    non_tensor_batch = turns.columns([extra_fields[i] for i in rows.tolist()], multi_turn.required_fields(name))
    non_tensor_batch["uid"] = uid[real]
    selected = tensors if all_real else {field: tensor[rows] for field, tensor in tensors.items()}
    estimator_tensors = {f: selected[f] for f in multi_turn.required_tensor_fields(name)}
    multi_turn.validate_fields(name, non_tensor_batch, estimator_tensors)
    adv, returns = core_algos.get_adv_estimator_fn(name)(
        token_level_rewards=selected["rm_scores"],
        response_mask=selected["response_mask"],
        index=non_tensor_batch["uid"],
        config=algorithm_config,
        non_tensor_batch=non_tensor_batch,
        batch=estimator_tensors,
    )
    if all_real:
        return adv, returns
    full_adv = torch.zeros(tensors["response_mask"].shape, dtype=adv.dtype)
    full_returns = torch.zeros_like(full_adv)
    full_adv[rows] = adv
    full_returns[rows] = returns
    return full_adv, full_returns


def group_advantages(algorithm_config: Any, uid: np.ndarray, extra_fields: list[dict[str, Any]]) -> np.ndarray:
    """Per-row advantages of the configured multi-turn estimator (filter criterion ``advantage``)."""
    ones = torch.ones(len(uid), 1)
    tensors = {"rm_scores": torch.zeros_like(ones), "response_mask": ones}
    adv, _ = multi_turn_advantages(algorithm_config, uid, extra_fields, tensors, np.ones(len(uid), dtype=bool))
    return adv[:, 0].numpy()


def rollout_correction(
    algorithm_config: Any, tensors: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """verl's ``algorithm.rollout_correction`` on a batch, as verl's own advantage step runs it: importance
    weights between the old policy and the rollout (``rollout_is_weights``, when ``rollout_is`` is set) and
    rejection sampling (a new ``response_mask``), with their ``rollout_corr/*`` metrics.

    ``tensors``: ``old_log_probs``, ``rollout_log_probs``, ``response_mask``, (bs, response_length). Nothing
    is computed (empty results) without the rollout's log-probs or in verl's ``bypass_mode``.
    """
    config = algorithm_config.get("rollout_correction", None)
    if config is None or config.get("bypass_mode", False) or "rollout_log_probs" not in tensors:
        return {}, {}
    fields = ("old_log_probs", "rollout_log_probs", "response_mask")
    data = DataProto.from_dict(tensors={field: tensors[field] for field in fields})
    data, metrics = compute_rollout_correction_and_add_to_batch(data, config)
    corrected = {"response_mask": data.batch["response_mask"]}
    if "rollout_is_weights" in data.batch:
        corrected["rollout_is_weights"] = data.batch["rollout_is_weights"]
    return corrected, metrics
