"""Where verl's synthetic padding rows go among the actor's mini-batches.

verl 0.9.1's v1 trainer appends padding rows (``upsample_batch_to_divisible_size``, tagged
``is_padding``) until the batch divides into mini-batches of ``ppo_mini_batch_size * rollout.n`` rows;
each data-parallel rank then gets one contiguous share and cuts it into consecutive mini-batches, one
optimiser step each. The padding is appended at the end, so it all lands in the last mini-batch. With one
row per trajectory that never happens (the batch is already a multiple), but the multi-turn agent loop
emits one row per turn, so the row count is almost never a multiple: 258 rows become 384, and the third
optimiser step trains on 2 real rows and 126 padding rows.

The two loss aggregations then disagree about that step. ``token-mean`` divides by the mini-batch's own
valid tokens, so the 2 rows get the weight of a whole mini-batch: a full-size (clipped) step along two
samples, seen as gradient-norm spikes of 5-30x. ``seq-mean-*`` divide by the nominal mini-batch size
(128), so the same step is 64x smaller than the others. Either way one optimiser step in three is noise,
and it biases any comparison of the two aggregations (ARLArena's finding 1).

:func:`spread_padding` reorders the rows so that every mini-batch of every rank holds the same number of
real rows (to within one) and keeps the real rows' order; the trainer applies it after verl's balancing.
"""

from __future__ import annotations

import numpy as np


def _rank_rows(num_rows: int, dp_size: int, mini_batch_size: int) -> tuple[int, int]:
    """Rows per rank and rows per rank's mini-batch, checking the layout verl guarantees."""
    if mini_batch_size % dp_size or num_rows % mini_batch_size:
        raise ValueError(
            f"{num_rows} rows do not split into mini-batches of {mini_batch_size} over {dp_size} data-parallel ranks"
        )
    return num_rows // dp_size, mini_batch_size // dp_size


def spread_padding(is_padding: np.ndarray, dp_size: int, mini_batch_size: int) -> np.ndarray:
    """Row order that spreads the padding rows evenly over each rank's mini-batches.

    ``is_padding``: (rows,) bool, in the order verl dispatches (rank ``r`` gets the ``r``-th contiguous
    share of ``rows / dp_size`` rows and cuts it into mini-batches of ``mini_batch_size / dp_size``).
    Rows never move between ranks, so verl's sequence-length balance across ranks is kept. Returns a
    permutation of ``range(rows)``: row indices in their new order.
    """
    is_padding = np.asarray(is_padding, dtype=bool)
    per_rank, per_mini = _rank_rows(len(is_padding), dp_size, mini_batch_size)
    num_mini = per_rank // per_mini
    order = []
    for start in range(0, len(is_padding), per_rank):
        rows = np.arange(start, start + per_rank)
        real, pad = rows[~is_padding[rows]], rows[is_padding[rows]]
        real_cuts = np.arange(num_mini + 1) * len(real) // num_mini  # mini-batch k: real[cuts[k]:cuts[k+1]]
        pad_cuts = np.arange(num_mini + 1) * per_mini - real_cuts
        for k in range(num_mini):
            order += [real[real_cuts[k] : real_cuts[k + 1]], pad[pad_cuts[k] : pad_cuts[k + 1]]]
    return np.concatenate(order)


def mini_batch_sample_counts(is_padding: np.ndarray, dp_size: int, mini_batch_size: int) -> np.ndarray:
    """Real (non-padding) rows in each optimiser step's mini-batch, summed over the ranks: (num_mini,)."""
    is_padding = np.asarray(is_padding, dtype=bool)
    per_rank, per_mini = _rank_rows(len(is_padding), dp_size, mini_batch_size)
    return (~is_padding).reshape(dp_size, per_rank // per_mini, per_mini).sum(axis=(0, 2))
