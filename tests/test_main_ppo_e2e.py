"""Every method preset trains end to end: ``python -m sampo_verl.main_ppo preset=cpu method=M`` on the
tiny local model with the Sokoban agent loop, 2 steps each (real verl trainer, Ray, hf rollout).

``grpo``, ``gigpo`` and ``sampo_plus`` run in the default suite (about a minute each on 2 cores); the
other presets are marked slow. The ``grpo`` run also exercises the collapse detector's stop: a rule
made to fire at step 2 ends a 3-step run there, with a message and a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sampo_verl.runs.agent_run import AgentRunConfig, prepare_model, run_agent

METHODS = [
    "grpo",
    "grpo_seqmean",
    "gspo",
    "sapo",
    "cispo",
    "sapo_seqmask",
    "cispo_seqmask",
    "grpo_filter",
    "gigpo",
    "gigpo_filter",
    "empg",
    "sampo",
    "sampo_plus",
]
DEFAULT_SUITE = {"grpo", "gigpo", "sampo_plus"}  # sampo itself trains in the quickstart's smoke test
MAX_TURNS = 3
SEQUENCE_MASKING = {"sampo_plus", "sapo_seqmask", "cispo_seqmask"}
FILTERING = {"grpo_filter", "gigpo_filter", "sampo", "sampo_plus"}
# gigpo: the option of the penalty's placement reaches the estimator (with the release's placement an
# all-invalid group has equal returns and zero advantages, which would test nothing); and verl's own
# old-log-prob forward instead of the CPU preset's rollout log-probs, to measure the gap between the two
GIGPO_OPTIONS = ["algorithm.gigpo.penalty_placement=discounted", "sampo.old_log_prob.from_rollout=false"]
# the old policy's log-probs are recomputed for gigpo (the option above) and for empg (it reads the old
# policy's token entropy); every other preset takes the rollout's (the CPU preset's default)
RECOMPUTED_OLD_LOG_PROBS = {"gigpo", "empg"}
# grpo: stop the 3-step run at step 2 with a rule that must fire there (global step 2 > 1.5 x 1)
COLLAPSE_STOP = [
    "trainer.total_training_steps=3",
    "sampo.collapse.stop_on_collapse=true",
    "sampo.collapse.warmup_steps=1",
    "sampo.collapse.grad_norm_metric=training/global_step",
    "sampo.collapse.grad_spike=1.5",
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("main_ppo_e2e")
    return prepare_model(root / "model"), root / "data"


def train_steps(history: dict[int, dict]) -> dict[int, dict]:
    return {step: metrics for step, metrics in history.items() if "training/global_step" in metrics}


@pytest.mark.parametrize(
    "method", [m if m in DEFAULT_SUITE else pytest.param(m, marks=pytest.mark.slow) for m in METHODS]
)
def test_preset_trains_two_steps(method, shared, tmp_path):
    model_dir, data_dir = shared
    # gigpo also validates at step 2: verl's validation reports success per environment (greedy)
    test_freq = 2 if method == "gigpo" else -1
    # the filtering presets wait 15 cold-start steps (the release's); these 2-step runs filter from step 1
    config = AgentRunConfig(
        env="sokoban", method=method, steps=2, max_turns=MAX_TURNS, test_freq=test_freq, filter_cold_start_steps=0
    )
    extra = {"grpo": COLLAPSE_STOP, "gigpo": GIGPO_OPTIONS}.get(method, [])
    history = run_agent(tmp_path, model_dir, config, extra, data_dir=data_dir, timeout=900)
    steps = train_steps(history)
    assert sorted(steps) == [1, 2]
    for metrics in steps.values():
        # verl's own training metrics; the policy's entropy from the old-log-prob pass or the update's
        assert metrics["actor/grad_norm"] > 0 and metrics["actor/entropy"] > 0 and "actor/kl_loss" in metrics
        if method in RECOMPUTED_OLD_LOG_PROBS:  # rollout and trainer log-probs agree (fp32 on CPU)
            assert metrics["training/rollout_probs_diff_max"] < 1e-4
        else:  # no old-log-prob pass ran
            assert "training/rollout_probs_diff_max" not in metrics and metrics["timing_s/old_log_prob"] < 1.0
        # the agent loop's per-turn diagnostics
        for rate in ("sampo/format_valid_rate", "sampo/action_valid_rate", "sampo/success_rate"):
            assert 0.0 <= metrics[rate] <= 1.0
        assert 1 <= metrics["sampo/episode_length"] <= MAX_TURNS
        assert metrics["collapse/num_events"] >= 0
        # verl's padding rows are spread over the mini-batches: each optimiser step gets an even share
        assert 0 < metrics["sampo/mini_batch_samples_min"] <= metrics["sampo/mini_batch_samples_max"]
        assert metrics["sampo/mini_batch_samples_max"] - metrics["sampo/mini_batch_samples_min"] <= 1
        # every loss reports the sequence diagnostics; only masking methods can drop samples
        assert 0.0 <= metrics["actor/seq_neg_adv_low_ratio_frac"] <= 1.0
        assert metrics["actor/seq_ratio_min"] <= metrics["actor/seq_ratio_mean"] <= metrics["actor/seq_ratio_max"]
        if method not in SEQUENCE_MASKING:
            assert metrics["actor/seq_mask_frac"] == 0.0
        assert ("filter/kept_groups" in metrics) == (method in FILTERING)
        if method in FILTERING:
            assert metrics["filter/kept_groups"] + metrics["filter/topped_up_groups"] == config.train_batch_size
        if method in FILTERING:
            assert metrics["filter/active"] == 1.0
        if method == "gigpo":
            # the random model's turns are mostly invalid stand-stills: one anchor state, and with the
            # penalty discounted into earlier turns, different returns: step advantages of both signs
            assert metrics["critic/advantages/max"] > 0 > metrics["critic/advantages/min"]
    if method == "gigpo":
        assert 0.0 <= steps[2]["val-core/sokoban/acc/mean@1"] <= 1.0
        assert steps[2]["val-aux/sokoban/episode_length/mean@1"] <= MAX_TURNS
    if method == "grpo":
        assert steps[2]["collapse/grad_spike"] == 1.0 and steps[1]["collapse/any"] == 0.0
        ckpt = tmp_path / "ckpt"
        assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
        assert (ckpt / "global_step_2" / "actor").is_dir()
