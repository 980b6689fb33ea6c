"""From TransferQueue rows to the multi-turn estimators: verl's padding rows, verl's rollout correction."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from turn_samples import TABLE

from sampo_verl.trainer.turn_batch import multi_turn_advantages, rollout_correction


def test_padding_rows_are_left_out_of_the_estimator_and_get_zero_advantage():
    """verl pads a batch with copies of its first row's metadata (same traj_uid and step): the
    estimator must see only the real rows, and the padding rows must not carry any advantage."""
    config = OmegaConf.create({"adv_estimator": "gigpo", "gamma": 0.9, "gigpo": {"mode": "mean_norm"}})
    extra = [TABLE[key] for key in TABLE]
    uid = np.array([key.split("_")[0] for key in TABLE], dtype=object)
    n, length = len(extra), 3
    tensors = {"rm_scores": torch.zeros(n, length), "response_mask": torch.ones(n, length)}
    real_adv, real_returns = multi_turn_advantages(config, uid, extra, tensors, np.ones(n, dtype=bool))

    padded_extra = extra + [extra[0], extra[0]]
    padded_uid = np.concatenate([uid, np.array(["pad1", "pad1"], dtype=object)])
    padded_tensors = {k: torch.cat([v, v[:2]]) for k, v in tensors.items()}
    real = np.r_[np.ones(n, dtype=bool), False, False]
    adv, returns = multi_turn_advantages(config, padded_uid, padded_extra, padded_tensors, real)
    assert torch.equal(adv[:n], real_adv) and torch.equal(returns[:n], real_returns)
    assert not adv[n:].any() and not returns[n:].any()
    assert real_adv.abs().sum() > 0
    with pytest.raises(ValueError, match="share the same"):  # what verl's padding did before
        multi_turn_advantages(config, padded_uid, padded_extra, padded_tensors, np.ones(n + 2, dtype=bool))


def test_rollout_correction_weights_each_token_by_the_old_over_the_rollout_policy():
    """Token importance weights exp(old - rollout), truncated at the threshold (2.0), on the response only."""
    old = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.3, 0.6, 0.1]]))
    rollout = torch.log(torch.tensor([[0.5, 0.4, 0.3], [0.6, 0.2, 0.1]]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    tensors = {"old_log_probs": old, "rollout_log_probs": rollout, "response_mask": mask}
    config = OmegaConf.create({"rollout_correction": {"rollout_is": "token", "rollout_is_threshold": 2.0}})
    corrected, metrics = rollout_correction(config, tensors)
    expected = torch.tensor([[1.0, 0.5, 2.0], [0.5, 2.0, 0.0]])  # 0.9/0.3 = 3 -> 2; 0.6/0.2 = 3 -> 2
    assert torch.allclose(corrected["rollout_is_weights"], expected)
    assert torch.equal(corrected["response_mask"], mask)  # no rejection asked for
    assert any(key.startswith("rollout_corr/") for key in metrics)


def test_rollout_correction_is_off_without_rollout_log_probs_or_in_bypass_mode():
    tensors = {"old_log_probs": torch.zeros(1, 2), "response_mask": torch.ones(1, 2)}
    config = OmegaConf.create({"rollout_correction": {"rollout_is": "token"}})
    assert rollout_correction(config, tensors) == ({}, {})
    bypass = OmegaConf.create({"rollout_correction": {"rollout_is": "token", "bypass_mode": True}})
    assert rollout_correction(bypass, {**tensors, "rollout_log_probs": torch.zeros(1, 2)}) == ({}, {})
