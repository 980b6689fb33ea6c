"""verl's padding rows spread over the actor's mini-batches (the trainer's ``_balance_batch``)."""

import numpy as np
import pytest
import torch
from verl.trainer.ppo.core_algos import agg_loss

from sampo_verl.trainer.mini_batches import mini_batch_sample_counts, spread_padding

# a TIR-Math step: 258 turn rows, padded by verl to 384 for mini-batches of 16 prompts x 8 episodes
REAL, MINI = 258, 128
VERL_LAYOUT = np.r_[np.zeros(REAL, dtype=bool), np.ones(384 - REAL, dtype=bool)]  # padding appended


def token_weights(is_padding: np.ndarray, length: int = 5) -> np.ndarray:
    """The gradient of verl's token-mean loss w.r.t. each real row's per-token loss, one optimiser step per
    mini-batch of consecutive rows (dp 1): the weight each row gets in its step."""
    weights = []
    for start in range(0, len(is_padding), MINI):
        mask = torch.tensor(~is_padding[start : start + MINI], dtype=torch.float32)[:, None].expand(-1, length)
        loss_mat = torch.zeros(MINI, length, requires_grad=True)
        agg_loss(loss_mat, mask, "token-mean", batch_num_tokens=mask.sum()).backward()
        weights.append(loss_mat.grad[mask.bool()].view(-1, length)[:, 0])
    return torch.cat(weights).numpy()


def test_verls_layout_gives_two_rows_a_whole_step_and_spreading_evens_it_out():
    assert mini_batch_sample_counts(VERL_LAYOUT, 1, MINI).tolist() == [128, 128, 2]
    before = token_weights(VERL_LAYOUT)
    assert before.max() / before.min() == pytest.approx(64.0)  # 1/(2 x 5) against 1/(128 x 5)

    order = spread_padding(VERL_LAYOUT, 1, MINI)
    spread = VERL_LAYOUT[order]
    assert mini_batch_sample_counts(spread, 1, MINI).tolist() == [86, 86, 86]
    after = token_weights(spread)
    assert np.allclose(after, 1 / (86 * 5))
    assert sorted(order) == list(range(384))
    assert order[~spread].tolist() == list(range(REAL))  # the real rows keep their order


def test_rows_stay_on_their_rank_and_each_ranks_mini_batches_are_even():
    # 2 ranks of 8 rows, mini-batches of 4 per rank: rank 0 has padding at 5-7, rank 1 at 11-15
    is_padding = np.zeros(16, dtype=bool)
    is_padding[[5, 6, 7, 11, 12, 13, 14, 15]] = True
    order = spread_padding(is_padding, dp_size=2, mini_batch_size=8)
    assert order.tolist() == [0, 1, 5, 6, 2, 3, 4, 7, 8, 11, 12, 13, 9, 10, 14, 15]
    per_rank_chunks = (~is_padding[order]).reshape(2, 2, 4).sum(axis=2)
    assert per_rank_chunks.tolist() == [[2, 3], [1, 2]]
    assert mini_batch_sample_counts(is_padding[order], 2, 8).tolist() == [3, 5]


def test_no_padding_keeps_the_order_and_a_bad_layout_is_refused():
    assert spread_padding(np.zeros(256, dtype=bool), 1, MINI).tolist() == list(range(256))
    with pytest.raises(ValueError, match="do not split into mini-batches of 128"):
        spread_padding(np.zeros(300, dtype=bool), 1, MINI)
    with pytest.raises(ValueError, match="over 3 data-parallel ranks"):
        mini_batch_sample_counts(np.zeros(256, dtype=bool), 3, MINI)
