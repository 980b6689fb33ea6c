"""From TransferQueue rows to the multi-turn estimators: verl's padding rows."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from turn_samples import TABLE

from sampo_verl.trainer.turn_batch import multi_turn_advantages


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
