"""Sequence-masked variants of verl's policy losses (sampo_verl/algorithms/losses.py)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from verl.trainer.ppo.core_algos import (
    compute_policy_loss_cispo,
    compute_policy_loss_gspo,
    compute_policy_loss_sapo,
    compute_policy_loss_vanilla,
    get_policy_loss_fn,
)
from verl.workers.config import ActorConfig, PolicyLossConfig

import sampo_verl  # noqa: F401  (registers the losses)
from sampo_verl.algorithms import losses
from sampo_verl.algorithms.loss_config import SampoPolicyLossConfig, SeqMaskConfig
from sampo_verl.algorithms.losses import rollout_log_probs

BASES = {
    "vanilla": compute_policy_loss_vanilla,
    "gspo": compute_policy_loss_gspo,
    "sapo": compute_policy_loss_sapo,
    "cispo": compute_policy_loss_cispo,
}
MASKED_LOSSES = [f"{name}_seqmask" for name in BASES]
AGG_MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "token-sum"]
SEQ_METRICS = [
    "actor/seq_mask_frac",
    "actor/seq_neg_adv_low_ratio_frac",
    "actor/seq_ratio_mean",
    "actor/seq_ratio_min",
    "actor/seq_ratio_max",
    "actor/seq_clipfrac",
]
VERL_METRICS = ["actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower"]


def actor_config(clip=0.2, delta=0.223, policy_loss=None, normaliser="batch", **kwargs) -> ActorConfig:
    if policy_loss is None:
        seq_mask = SeqMaskConfig(delta=delta, normaliser=normaliser)
        policy_loss = SampoPolicyLossConfig(loss_mode="gspo_seqmask", seq_mask=seq_mask)
    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio_low=clip,
        clip_ratio_high=clip,
        policy_loss=policy_loss,
        **kwargs,
    )


def random_batch(batch=6, length=7, seed=0, empty_rows=(), drift=0.4):
    """Ragged right-padded batch with per-sample constant advantages of both signs."""
    generator = torch.Generator().manual_seed(seed)
    old_log_prob = -torch.rand(batch, length, generator=generator) * 2
    log_prob = old_log_prob + drift * torch.randn(batch, length, generator=generator)
    advantages = torch.randn(batch, 1, generator=generator).expand(batch, length).contiguous()
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[list(empty_rows)] = 0
    response_mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    return old_log_prob, log_prob, advantages, response_mask


def loss_and_grad(loss_fn, old_log_prob, log_prob, advantages, response_mask, agg, config):
    log_prob = log_prob.clone().requires_grad_()
    loss, metrics = loss_fn(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=agg,
        config=config,
    )
    loss.backward()
    return loss.detach(), log_prob.grad, metrics


def hand_batch():
    """Two samples worked out by hand (eps = 0.2).

    Sample 0: token log-ratios [0.3, 0, 0], A = +1 -> log s = 0.1, s = e^0.1, inside the clip range.
    Sample 1: token log-ratios [-0.2, -0.4, pad], A = -2 -> log s = -0.3, D = 0.3 > 0.223,
    s = e^-0.3 = 0.7408 < 0.8: the clipped branch 2 * 0.8 = 1.6 wins (no gradient).
    """
    old_log_prob = torch.full((2, 3), -1.0)
    log_prob = old_log_prob + torch.tensor([[0.3, 0.0, 0.0], [-0.2, -0.4, 0.0]])
    advantages = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]])
    response_mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    return old_log_prob, log_prob, advantages, response_mask


def test_gspo_hand_computed_with_the_sequence_metrics():
    s0 = math.exp(0.1)
    config = actor_config()
    loss, grad, metrics = loss_and_grad(get_policy_loss_fn("gspo"), *hand_batch(), "seq-mean-token-mean", config)
    # seq-mean-token-mean: mean of (-s0, 1.6)
    assert loss.item() == pytest.approx((-s0 + 1.6) / 2, abs=1e-6)
    # stop-gradient trick: every token of sample 0 gets d/dlogp (-A s) = -s0, scaled by 1/2 * 1/3
    torch.testing.assert_close(grad[0], torch.full((3,), -s0 / 6))
    assert torch.count_nonzero(grad[1]) == 0  # clipped
    assert metrics["actor/seq_mask_frac"] == 0.0
    assert metrics["actor/seq_neg_adv_low_ratio_frac"] == 1.0  # diagnostic counts it even when not masking
    assert metrics["actor/seq_ratio_mean"] == pytest.approx((s0 + math.exp(-0.3)) / 2, abs=1e-6)
    assert metrics["actor/seq_ratio_min"] == pytest.approx(math.exp(-0.3), abs=1e-6)
    assert metrics["actor/seq_ratio_max"] == pytest.approx(s0, abs=1e-6)
    assert metrics["actor/seq_clipfrac"] == 0.5
    assert metrics["actor/pg_clipfrac"] == pytest.approx(2 / 5)  # verl's: clipped tokens / valid tokens
    assert all(type(metrics[key]) is float for key in SEQ_METRICS + VERL_METRICS)


def test_gspo_seqmask_hand_computed_keeps_the_batch_normaliser():
    s0 = math.exp(0.1)
    loss, grad, metrics = loss_and_grad(
        get_policy_loss_fn("gspo_seqmask"), *hand_batch(), "seq-mean-token-mean", actor_config()
    )
    assert loss.item() == pytest.approx(-s0 / 2, abs=1e-6)  # sample 1 contributes 0, still divided by 2
    torch.testing.assert_close(grad[0], torch.full((3,), -s0 / 6))
    assert torch.count_nonzero(grad[1]) == 0
    assert metrics["actor/seq_mask_frac"] == 0.5


def test_kept_normaliser_by_hand():
    """The release: the loss is averaged over the kept samples (tokens), so masking does not shrink the step."""
    s0 = math.exp(0.1)
    config = actor_config(normaliser="kept")
    fn = get_policy_loss_fn("gspo_seqmask")
    loss, grad, metrics = loss_and_grad(fn, *hand_batch(), "seq-mean-token-mean", config)
    assert loss.item() == pytest.approx(-s0, abs=1e-6)  # sample 1 dropped: the mean over sample 0 alone
    torch.testing.assert_close(grad[0], torch.full((3,), -s0 / 3))
    assert metrics["actor/seq_mask_frac"] == 0.5
    loss, grad, _ = loss_and_grad(fn, *hand_batch(), "token-mean", config)
    assert loss.item() == pytest.approx(-s0, abs=1e-6)  # 3 kept tokens of -s0 each, divided by 3 (not 5)
    torch.testing.assert_close(grad[0], torch.full((3,), -s0 / 3))


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_on_gspo_masking_drops_only_what_the_sequence_clip_silenced(seed):
    """With D_i > delta >= -log(1 - eps_low) a masked sample's sequence ratio is below 1 - eps_low, where
    GSPO's clip already gives a negative-advantage sample no gradient: masking with the batch normaliser
    leaves GSPO's gradient exactly as it is, and the kept normaliser only scales it by n / n_kept (the
    SAMPO+ preset: clip 3e-3, delta 3e-3)."""
    eps = 0.003
    batch = random_batch(batch=16, length=8, seed=seed, drift=0.01)
    agg, delta = "seq-mean-token-mean", -math.log1p(-eps)
    _, base_grad, _ = loss_and_grad(compute_policy_loss_gspo, *batch, agg, actor_config(clip=eps))
    _, grad, metrics = loss_and_grad(get_policy_loss_fn("gspo_seqmask"), *batch, agg, actor_config(eps, delta))
    masked = metrics["actor/seq_mask_frac"]
    assert 0 < masked < 1
    assert torch.equal(grad, base_grad)
    kept_config = actor_config(eps, delta, normaliser="kept")
    _, kept_grad, _ = loss_and_grad(get_policy_loss_fn("gspo_seqmask"), *batch, agg, kept_config)
    torch.testing.assert_close(kept_grad, base_grad / (1 - masked))


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("name", MASKED_LOSSES)
def test_kept_normaliser_equals_the_base_loss_on_the_kept_rows(name, agg):
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=10, length=8, seed=3, drift=0.1)
    log_prob[:3] -= 0.5
    advantages[:3] = -advantages[:3].abs() - 0.1  # rows 0-2 dropped
    advantages[3:] = advantages[3:].abs()
    batch = (old_log_prob, log_prob, advantages, response_mask)
    base_loss_fn = BASES[name.removesuffix("_seqmask")]
    loss, grad, metrics = loss_and_grad(get_policy_loss_fn(name), *batch, agg, actor_config(0.9, normaliser="kept"))
    kept = tuple(t[3:] for t in batch)
    base_loss, base_grad, _ = loss_and_grad(base_loss_fn, *kept, agg, actor_config(0.9))
    assert metrics["actor/seq_mask_frac"] == pytest.approx(0.3)
    torch.testing.assert_close(loss, base_loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(grad[3:], base_grad, atol=1e-7, rtol=1e-6)
    assert torch.count_nonzero(grad[:3]) == 0


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_kept_normaliser_split_invariance_where_it_holds(agg):
    """verl's global counts for two micro-batches: with nothing masked both normalisers give the batch loss;
    with masking, ``batch`` stays split-invariant and ``kept`` weighs each micro-batch by what it kept."""
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=8, length=6, seed=5, drift=0.05)
    advantages = advantages.abs()  # nothing masked
    batch = (old_log_prob, log_prob, advantages, response_mask)
    info = {
        "dp_size": 1,
        "batch_num_tokens": int(response_mask.sum()),
        "global_batch_size": int((response_mask.sum(-1) > 0).sum()),
        "loss_scale_factor": None,
    }
    fn = get_policy_loss_fn("gspo_seqmask")

    def split_loss(normaliser, tensors):
        config = actor_config(normaliser=normaliser, global_batch_info=info)
        return sum(
            loss_and_grad(fn, *(t[rows] for t in tensors), agg, config)[0] for rows in (slice(0, 4), slice(4, 8))
        )

    whole = loss_and_grad(fn, *batch, agg, actor_config(global_batch_info=info))[0]
    torch.testing.assert_close(split_loss("batch", batch), whole)
    torch.testing.assert_close(split_loss("kept", batch), whole)
    # mask one sample of the first micro-batch: "batch" still equals the one-piece loss, "kept" does not
    log_prob = log_prob.clone()
    log_prob[0] -= 1.0
    advantages = advantages.clone()
    advantages[0] = -1.0
    masked = (old_log_prob, log_prob, advantages, response_mask)
    whole = loss_and_grad(fn, *masked, agg, actor_config(global_batch_info=info))[0]
    torch.testing.assert_close(split_loss("batch", masked), whole)
    assert not torch.isclose(split_loss("kept", masked), whole)


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("name", BASES)
def test_seqmask_with_huge_delta_equals_base_exactly(name, agg):
    batch = random_batch(batch=10, length=9, seed=1, empty_rows=(2,), drift=1.0)
    config = actor_config(delta=1e9)
    loss, grad, metrics = loss_and_grad(get_policy_loss_fn(f"{name}_seqmask"), *batch, agg, config)
    base_loss, base_grad, base_metrics = loss_and_grad(BASES[name], *batch, agg, config)
    assert torch.equal(loss, base_loss)
    assert torch.equal(grad, base_grad)
    assert {key: metrics[key] for key in base_metrics} == base_metrics
    assert metrics["actor/seq_mask_frac"] == 0.0


@pytest.mark.parametrize("name", BASES)
def test_rollout_correction_weights_reach_the_base_loss(name):
    old_log_prob, log_prob, advantages, response_mask = random_batch(seed=8)
    weights = torch.rand(old_log_prob.shape, generator=torch.Generator().manual_seed(9))
    config = actor_config(delta=1e9)
    kwargs = {"old_log_prob": old_log_prob, "log_prob": log_prob, "advantages": advantages, "config": config}
    loss, _ = get_policy_loss_fn(f"{name}_seqmask")(
        response_mask=response_mask, loss_agg_mode="token-mean", rollout_is_weights=weights, **kwargs
    )
    kwargs.update(response_mask=response_mask, loss_agg_mode="token-mean")
    base_loss, _ = BASES[name](rollout_is_weights=weights, **kwargs)
    unweighted, _ = BASES[name](**kwargs)
    assert torch.equal(loss, base_loss) and not torch.equal(loss, unweighted)


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("name", MASKED_LOSSES)
def test_masking_removes_exactly_the_dropped_samples_from_the_gradient(name, agg):
    """Dropped rows get zero gradient; kept rows get the unmasked loss's gradient unchanged."""
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=12, length=8, seed=7, drift=0.1)
    log_prob[:4] -= 0.5  # D about 0.5 for the first four samples
    advantages[:2] = -advantages[:2].abs()  # two of them negative: dropped
    advantages[2:4] = advantages[2:4].abs()  # two positive: kept
    batch = (old_log_prob, log_prob, advantages, response_mask)
    masked_loss_fn = get_policy_loss_fn(name)
    base_loss_fn = BASES[name.removesuffix("_seqmask")]
    _, grad, metrics = loss_and_grad(masked_loss_fn, *batch, agg, actor_config(clip=0.9))
    _, base_grad, _ = loss_and_grad(base_loss_fn, *batch, agg, actor_config(clip=0.9))
    assert torch.count_nonzero(grad[:2]) == 0
    torch.testing.assert_close(grad[2:], base_grad[2:], atol=1e-7, rtol=1e-6)
    assert torch.count_nonzero(base_grad[:2]) > 0
    assert metrics["actor/seq_mask_frac"] == pytest.approx(2 / 12)


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("name", MASKED_LOSSES)
def test_all_samples_masked_gives_zero_loss_and_gradient(name, agg):
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=5, length=6, seed=2)
    log_prob = old_log_prob - 1.0
    advantages = -advantages.abs() - 0.1
    loss, grad, metrics = loss_and_grad(
        get_policy_loss_fn(name), old_log_prob, log_prob, advantages, response_mask, agg, actor_config()
    )
    assert loss.item() == 0.0
    assert torch.count_nonzero(grad) == 0 and not grad.isnan().any()
    assert metrics["actor/seq_mask_frac"] == 1.0
    assert all(math.isfinite(value) for value in metrics.values())


@pytest.mark.parametrize("name", MASKED_LOSSES)
def test_empty_responses_are_neither_masked_nor_counted(name):
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=4, length=5, seed=4, empty_rows=(1, 3))
    advantages[:] = -1.0
    log_prob[0] = old_log_prob[0] - 1.0  # dropped
    log_prob[2] = old_log_prob[2]  # kept
    loss, grad, metrics = loss_and_grad(
        get_policy_loss_fn(name), old_log_prob, log_prob, advantages, response_mask, "token-mean", actor_config()
    )
    assert math.isfinite(loss.item())
    assert torch.count_nonzero(grad[[0, 1, 3]]) == 0
    assert metrics["actor/seq_mask_frac"] == 0.5  # one of the two non-empty samples
    assert metrics["actor/seq_neg_adv_low_ratio_frac"] == 0.5
    assert metrics["actor/seq_ratio_min"] == pytest.approx(math.exp(-1.0), rel=1e-6)
    assert metrics["actor/seq_ratio_max"] == pytest.approx(1.0)


def test_all_responses_empty_gives_neutral_metrics():
    old_log_prob, log_prob, advantages, _ = random_batch(batch=3, length=4)
    response_mask = torch.zeros(3, 4, dtype=torch.bool)
    loss, grad, metrics = loss_and_grad(
        get_policy_loss_fn("gspo_seqmask"), old_log_prob, log_prob, advantages, response_mask, "token-mean",
        actor_config(),
    )
    assert loss.item() == 0.0 and torch.count_nonzero(grad) == 0
    assert metrics["actor/seq_ratio_mean"] == metrics["actor/seq_ratio_min"] == metrics["actor/seq_ratio_max"] == 1.0
    assert metrics["actor/seq_mask_frac"] == metrics["actor/seq_clipfrac"] == 0.0


@pytest.mark.parametrize("name", MASKED_LOSSES)
def test_positive_advantages_are_never_masked(name):
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=6, length=5, seed=5)
    log_prob = old_log_prob - 5.0  # D = 5, far beyond delta
    advantages = advantages.abs() + 0.1
    _, grad, metrics = loss_and_grad(
        get_policy_loss_fn(name), old_log_prob, log_prob, advantages, response_mask, "token-mean", actor_config()
    )
    assert metrics["actor/seq_mask_frac"] == 0.0
    assert metrics["actor/seq_neg_adv_low_ratio_frac"] == 0.0


@pytest.mark.parametrize(("drop", "masked"), [(0.25, False), (0.3, True)])
def test_exactly_at_threshold_is_kept(drop, masked):
    """D_i == delta is not masked (strictly greater masks); 0.25 is exact in binary."""
    old_log_prob = torch.full((1, 4), -1.0)
    log_prob = old_log_prob - drop
    advantages = torch.full((1, 4), -1.0)
    response_mask = torch.ones(1, 4, dtype=torch.bool)
    _, grad, metrics = loss_and_grad(
        get_policy_loss_fn("vanilla_seqmask"),
        old_log_prob,
        log_prob,
        advantages,
        response_mask,
        "token-mean",
        actor_config(clip=0.5, delta=0.25),
    )
    assert metrics["actor/seq_mask_frac"] == float(masked)
    assert (torch.count_nonzero(grad) == 0) == masked


def test_global_batch_info_from_verl_is_kept():
    """With verl's global counts (dp_size=2) the normaliser is the global one, not the local kept count."""
    old_log_prob, log_prob, advantages, response_mask = hand_batch()
    info = {"dp_size": 2, "batch_num_tokens": 20, "global_batch_size": 8, "loss_scale_factor": None}
    config = actor_config(global_batch_info=info)
    loss, _, metrics = loss_and_grad(
        get_policy_loss_fn("gspo_seqmask"), old_log_prob, log_prob, advantages, response_mask, "token-mean", config
    )
    assert metrics["actor/seq_mask_frac"] == 0.5
    assert loss.item() == pytest.approx(3 * -math.exp(0.1) / 20 * 2, abs=1e-6)
    assert config.global_batch_info == info  # not mutated


def test_plain_verl_policy_loss_config_uses_defaults():
    """verl's own PolicyLossConfig (no seq_mask field): the masked losses use delta 0.223."""
    config = actor_config(policy_loss=PolicyLossConfig(loss_mode="gspo_seqmask"))
    loss, _, metrics = loss_and_grad(get_policy_loss_fn("gspo_seqmask"), *hand_batch(), "seq-mean-token-mean", config)
    assert metrics["actor/seq_mask_frac"] == 0.5
    assert loss.item() == pytest.approx(-math.exp(0.1) / 2, abs=1e-6)
    _, _, metrics = loss_and_grad(get_policy_loss_fn("sapo_seqmask"), *hand_batch(), "token-mean", config)
    assert metrics["actor/seq_mask_frac"] == 0.5


@pytest.mark.parametrize(
    ("field", "value"), [("clip_ratio_low", 1.5), ("clip_ratio_low", -0.1), ("clip_ratio_high", -1.0)]
)
def test_bad_clip_range_names_the_flag(field, value):
    config = actor_config()
    object.__setattr__(config, field, value)
    with pytest.raises(ValueError, match=f"actor_rollout_ref.actor.{field}"):
        loss_and_grad(get_policy_loss_fn("gspo_seqmask"), *hand_batch(), "token-mean", config)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    deltas=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=2).map(sorted),
    name=st.sampled_from(MASKED_LOSSES),
)
def test_property_larger_delta_never_masks_more(seed, deltas, name):
    batch = random_batch(batch=8, length=6, seed=seed, empty_rows=(seed % 8,), drift=1.0)
    loss_fn = get_policy_loss_fn(name)
    _, grad_small, metrics_small = loss_and_grad(loss_fn, *batch, "token-mean", actor_config(delta=deltas[0]))
    _, grad_large, metrics_large = loss_and_grad(loss_fn, *batch, "token-mean", actor_config(delta=deltas[1]))
    _, grad_off, _ = loss_and_grad(loss_fn, *batch, "token-mean", actor_config(delta=1e9))
    assert metrics_large["actor/seq_mask_frac"] <= metrics_small["actor/seq_mask_frac"]
    contributing = [set(torch.nonzero(g.abs().sum(-1)).flatten().tolist()) for g in (grad_small, grad_large, grad_off)]
    assert contributing[0] <= contributing[1] <= contributing[2]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.floats(0.01, 100.0),
    name=st.sampled_from(MASKED_LOSSES),
    agg=st.sampled_from(AGG_MODES),
)
def test_property_scaling_advantages_scales_the_loss(seed, scale, name, agg):
    old_log_prob, log_prob, advantages, response_mask = random_batch(batch=8, length=6, seed=seed, drift=0.5)
    loss_fn = get_policy_loss_fn(name)
    config = actor_config(delta=0.1)
    loss, _, metrics = loss_and_grad(loss_fn, old_log_prob, log_prob, advantages, response_mask, agg, config)
    scaled, _, scaled_metrics = loss_and_grad(
        loss_fn, old_log_prob, log_prob, scale * advantages, response_mask, agg, config
    )
    # float32: the rounding error grows with the terms' size, which scales with `scale` (seen: 3e-6 at scale 29
    # on a loss of -0.137, where its terms partly cancel)
    torch.testing.assert_close(scaled, scale * loss, rtol=1e-5, atol=1e-6 * max(1.0, scale))
    assert scaled_metrics["actor/seq_mask_frac"] == metrics["actor/seq_mask_frac"]


def test_verl_actor_ppo_loss_runs_a_masked_loss_with_global_counts():
    """verl's engine actor loss (workers/utils/losses.ppo_loss) calls gspo_seqmask through the registry."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import ppo_loss

    batch, prompt_len, response_len = 3, 2, 4
    lengths = torch.tensor([4, 2, 3])
    response_mask = torch.arange(response_len).unsqueeze(0) < lengths.unsqueeze(1)
    old_log_prob = -torch.rand(batch, response_len, generator=torch.Generator().manual_seed(0))
    log_prob = (old_log_prob - torch.tensor([[0.0], [0.5], [0.0]])).requires_grad_()  # sample 1: D = 0.5
    advantages = torch.tensor([[1.0], [-1.0], [-1.0]]).expand(batch, response_len).contiguous()
    # the engine's packed log-probs: each sequence is prompt + response, shifted left by one token
    starts = torch.cat([torch.zeros(1, dtype=torch.long), (prompt_len + lengths).cumsum(0)[:-1]])
    positions = (starts.unsqueeze(1) + prompt_len - 1 + torch.arange(response_len))[response_mask]
    packed = torch.zeros(int((prompt_len + lengths).sum())).index_put((positions,), log_prob[response_mask])
    data = TensorDict(
        {
            "prompts": torch.ones(batch, prompt_len, dtype=torch.long),
            "responses": torch.ones(batch, response_len, dtype=torch.long),
            "attention_mask": torch.cat([torch.ones(batch, prompt_len, dtype=torch.long), response_mask.long()], 1),
            "response_mask": response_mask.long(),
            "old_log_probs": old_log_prob,
            "advantages": advantages,
        },
        batch_size=[batch],
    )
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=batch)
    config = actor_config(policy_loss=PolicyLossConfig(loss_mode="gspo_seqmask"), loss_agg_mode="seq-mean-token-mean")

    loss, metrics = ppo_loss(config, {"log_probs": packed}, data)
    loss.backward()

    assert loss.item() == pytest.approx((-1.0 + 0.0 + 1.0) / 3, abs=1e-6)  # sample 1 masked, still counted
    expected_grad = torch.tensor([[-1 / 12] * 4, [0.0] * 4, [1 / 9] * 3 + [0.0]])
    torch.testing.assert_close(log_prob.grad, expected_grad)
    assert metrics["actor/seq_mask_frac"].aggregate() == pytest.approx(1 / 3)


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("name", BASES)
def test_verl_registered_losses_add_sequence_metrics_and_change_nothing_else(name, agg):
    """patches/policy_loss_sequence_metrics: verl's own names keep their value and gradient exactly."""
    batch = random_batch(batch=10, length=9, seed=4, empty_rows=(3,), drift=1.0)
    config = actor_config(delta=0.223, policy_loss=PolicyLossConfig(loss_mode=name))
    loss, grad, metrics = loss_and_grad(get_policy_loss_fn(name), *batch, agg, config)
    base_loss, base_grad, base_metrics = loss_and_grad(BASES[name], *batch, agg, config)
    assert torch.equal(loss, base_loss) and torch.equal(grad, base_grad)
    assert {key: metrics[key] for key in base_metrics} == base_metrics
    # the same sequence statistics as the masked variant reports, with nothing dropped
    _, _, masked_metrics = loss_and_grad(get_policy_loss_fn(f"{name}_seqmask"), *batch, agg, config)
    assert metrics["actor/seq_mask_frac"] == 0.0
    for key in SEQ_METRICS[1:]:
        assert metrics[key] == masked_metrics[key]
    assert masked_metrics["actor/seq_neg_adv_low_ratio_frac"] > 0  # the batch has samples masking would drop


def test_sequence_metrics_patch_is_idempotent():
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    from sampo_verl.patches import policy_loss_sequence_metrics

    before = dict(POLICY_LOSS_REGISTRY)
    policy_loss_sequence_metrics.apply()
    assert POLICY_LOSS_REGISTRY == before
    assert POLICY_LOSS_REGISTRY["vanilla"].__wrapped__ is compute_policy_loss_vanilla


@pytest.mark.parametrize("name", ["cispo", "cispo_seqmask"])
def test_cispo_without_lower_bound_as_released(name):
    """clip_ratio_low 1.0 (the release's CISPO): the IS weight is clipped from above only."""
    batch = random_batch(batch=6, length=5, seed=4, drift=1.0)
    config = actor_config()
    object.__setattr__(config, "clip_ratio_low", 1.0)
    loss, grad, metrics = loss_and_grad(get_policy_loss_fn(name), *batch, "token-mean", config)
    assert math.isfinite(loss.item()) and torch.isfinite(grad).all()
    assert 0.0 <= metrics["actor/seq_clipfrac"] <= 1.0


def test_masking_against_the_rollout_policy_by_hand():
    """hand_batch's sample 1 (A = -2) is D = 0.3 > delta away from the old policy: masked. The policy that
    generated it gave its tokens log-probs 0.3 lower than the old policy did, so against that policy
    D = mean(-0.1, +0.1) = 0: kept. The clipped ratio is the old policy's either way."""
    old_log_prob, log_prob, advantages, response_mask = hand_batch()
    rollout = old_log_prob - torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.3, 0.0]])
    fn = get_policy_loss_fn("gspo_seqmask")
    old_ref = loss_and_grad(fn, *hand_batch(), "seq-mean-token-mean", actor_config())  # reference=old
    rollout_config = actor_config(
        policy_loss=SampoPolicyLossConfig(loss_mode="gspo_seqmask", seq_mask=SeqMaskConfig(reference="rollout"))
    )
    with rollout_log_probs(rollout):
        loss, grad, metrics = loss_and_grad(fn, old_log_prob, log_prob, advantages, response_mask,
                                            "seq-mean-token-mean", rollout_config)  # fmt: skip
    assert old_ref[2]["actor/seq_mask_frac"] == 0.5 and metrics["actor/seq_mask_frac"] == 0.0
    unmasked = loss_and_grad(compute_policy_loss_gspo, *hand_batch(), "seq-mean-token-mean", actor_config())
    torch.testing.assert_close(loss, unmasked[0])
    torch.testing.assert_close(grad, unmasked[1])
    assert metrics["actor/seq_rollout_gap_abs"] == pytest.approx((0.0 + 0.3) / 2)


def test_masking_against_the_rollout_policy_without_its_log_probs_names_the_flag():
    config = actor_config(
        policy_loss=SampoPolicyLossConfig(loss_mode="gspo_seqmask", seq_mask=SeqMaskConfig(reference="rollout"))
    )
    with pytest.raises(ValueError, match="seq_mask.reference=rollout needs the rollout's log-probs"):
        loss_and_grad(get_policy_loss_fn("gspo_seqmask"), *hand_batch(), "token-mean", config)


def test_verl_ppo_loss_hands_the_rollout_log_probs_to_the_loss():
    """patches/ppo_loss_rollout_log_probs.py: verl's ppo_loss, given a batch with the rollout's log-probs (as
    verl's actor fetches it: nested, one row per sample), runs the loss with them padded, and with none for a
    batch without."""
    from tensordict import TensorDict
    from verl.workers.utils import losses as verl_losses

    from sampo_verl.patches import ppo_loss_rollout_log_probs

    ppo_loss_rollout_log_probs.apply()
    ppo_loss_rollout_log_probs.apply()  # idempotent
    assert getattr(verl_losses.ppo_loss, "_sampo_rollout_log_probs", False)
    assert not getattr(verl_losses.ppo_loss.__wrapped__, "_sampo_rollout_log_probs", False)

    seen = []
    patched = ppo_loss_rollout_log_probs.with_rollout_log_probs(
        lambda config, model_output, data, dp_group=None: seen.append(losses._ROLLOUT_LOG_PROBS.get())
    )
    rows = [torch.tensor([-0.1, -0.2, -0.3]), torch.tensor([-0.4])]
    data = TensorDict({"rollout_log_probs": torch.nested.as_nested_tensor(rows, layout=torch.jagged)}, batch_size=[2])
    config = actor_config()
    patched(config, {}, data)
    torch.testing.assert_close(seen[0], torch.tensor([[-0.1, -0.2, -0.3], [-0.4, 0.0, 0.0]]))
    patched(config, {}, TensorDict({}, batch_size=[2]))
    assert seen[1] is None and losses._ROLLOUT_LOG_PROBS.get() is None  # nothing left behind
