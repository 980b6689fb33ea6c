"""The entry point's config: verl's ppo_trainer + sampo_ppo.yaml + method presets, validated."""

import re
from pathlib import Path

import pandas as pd

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import sampo_verl  # noqa: F401  (registers losses)
from sampo_verl.algorithms.multi_turn import EMPGOptions, GiGPOOptions
from sampo_verl.algorithms.loss_config import SampoPolicyLossConfig
from sampo_verl.validation import validate_sampo_config
from verl.utils.config import omega_conf_to_dataclass

CONF = str(Path(sampo_verl.__file__).parent / "conf")
METHODS = sorted(p.stem for p in (Path(CONF) / "method").glob("*.yaml"))


def make(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("sampo_ppo", overrides=list(overrides))


def test_all_arlarena_presets_exist():
    assert set(METHODS) == {
        "grpo", "grpo_seqmean", "gspo", "sapo", "cispo", "sapo_seqmask", "cispo_seqmask",
        "grpo_filter", "gigpo", "gigpo_filter", "empg", "sampo", "sampo_plus",
    }


@pytest.mark.parametrize("method", METHODS)
def test_every_preset_composes_validates_and_builds_verl_configs(method):
    cfg = make(f"method={method}", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2")
    validate_sampo_config(cfg)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)  # verl's own instantiation path
    assert isinstance(actor.policy_loss, SampoPolicyLossConfig)
    assert actor.policy_loss.loss_mode == cfg.actor_rollout_ref.actor.policy_loss.loss_mode
    assert cfg.trainer.v1.trainer_mode == "sampo" and cfg.trainer.use_v1


A, ALG = "actor_rollout_ref.actor.", "algorithm."
GRPO = {ALG + "adv_estimator": "grpo_steps", A + "policy_loss.loss_mode": "vanilla", A + "loss_agg_mode": "token-mean",
        A + "clip_ratio_low": 0.2, A + "clip_ratio_high": 0.2, ALG + "filter_groups.enable": False}  # fmt: skip
GIGPO = {**GRPO, ALG + "adv_estimator": "gigpo", ALG + "gamma": 0.95, ALG + "gigpo.step_weight": 1.0,
         ALG + "gigpo.mode": "mean_std_norm", ALG + "gigpo.penalty_placement": "turn"}  # fmt: skip
DAPO = {ALG + "filter_groups.enable": True, ALG + "filter_groups.criterion": "reward",
        ALG + "filter_groups.max_num_gen_batches": 3, ALG + "filter_groups.cold_start_steps": 15,
        ALG + "filter_groups.topup_order": "arrival"}  # fmt: skip
SEQ_MASK = {A + "policy_loss.seq_mask.delta": 0.003, A + "policy_loss.seq_mask.normaliser": "kept"}
GSPO_LOSS = {A + "policy_loss.loss_mode": "gspo", A + "clip_ratio_low": 0.003, A + "clip_ratio_high": 0.004,
             A + "loss_agg_mode": "seq-mean-token-mean"}  # fmt: skip
SAMPO = {**GIGPO, **DAPO, **GSPO_LOSS}
# the paper's release: what each preset must be
RELEASE = {
    "grpo": GRPO,
    "grpo_seqmean": {**GRPO, A + "loss_agg_mode": "seq-mean-token-mean"},
    "gspo": {**GRPO, **GSPO_LOSS},
    "sapo": {**GRPO, A + "policy_loss.loss_mode": "sapo", A + "tau_pos": 1.0, A + "tau_neg": 1.05},
    "cispo": {**GRPO, A + "policy_loss.loss_mode": "cispo", A + "clip_ratio_low": 1.0, A + "clip_ratio_high": 0.2},
    "sapo_seqmask": {**GRPO, A + "policy_loss.loss_mode": "sapo_seqmask", A + "tau_neg": 1.05, **SEQ_MASK},
    "cispo_seqmask": {**GRPO, A + "policy_loss.loss_mode": "cispo_seqmask", A + "clip_ratio_low": 1.0, **SEQ_MASK},
    "grpo_filter": {**GRPO, **DAPO},
    "gigpo": GIGPO,
    "gigpo_filter": {**GIGPO, **DAPO},
    "empg": {**GRPO, ALG + "adv_estimator": "empg", ALG + "empg.k": 1.0, ALG + "empg.k_f": 1.0,
             ALG + "empg.zeta": 0.05},  # fmt: skip
    "sampo": SAMPO,
    "sampo_plus": {**SAMPO, **SEQ_MASK, A + "policy_loss.loss_mode": "gspo_seqmask",
                   ALG + "filter_groups.criterion": "advantage"},  # fmt: skip
}


@pytest.mark.parametrize("method", sorted(RELEASE))
def test_presets_are_the_release_settings(method):
    cfg = make(f"method={method}")
    got = {key: OmegaConf.select(cfg, key) for key in RELEASE[method]}
    assert got == RELEASE[method]
    # the testbed every preset shares: KL loss (k3, 0.01), group size 8, invalid-action penalty 0.1
    actor = cfg.actor_rollout_ref.actor
    assert actor.use_kl_loss and actor.kl_loss_type == "low_var_kl" and actor.kl_loss_coef == 0.01
    assert cfg.actor_rollout_ref.rollout.n == 8 and cfg.algorithm.gigpo.invalid_penalty == 0.1


def test_every_preset_has_a_release_entry():
    assert set(RELEASE) == set(METHODS)


def test_declared_option_sections_match_estimator_defaults():
    cfg = make()
    assert dict(cfg.algorithm.gigpo) == {k: getattr(GiGPOOptions(), k) for k in cfg.algorithm.gigpo}
    assert dict(cfg.algorithm.empg) == {k: getattr(EMPGOptions(), k) for k in cfg.algorithm.empg}


def test_user_overrides_win_over_presets():
    cfg = make("method=sampo", "actor_rollout_ref.actor.clip_ratio_high=0.001", "algorithm.gigpo.step_weight=0.5")
    assert cfg.actor_rollout_ref.actor.clip_ratio_high == 0.001 and cfg.algorithm.gigpo.step_weight == 0.5


@pytest.mark.parametrize(
    "overrides,flags",
    [
        (["method=gigpo", "actor_rollout_ref.rollout.agent.default_agent_loop=single_turn_agent"],
         ["actor_rollout_ref.rollout.agent.default_agent_loop"]),
        (["method=gigpo", "trainer.v1.trainer_mode=sync"], ["trainer.v1.trainer_mode"]),
        (["method=grpo", "actor_rollout_ref.actor.policy_loss.seq_mask.delta=0.01"],
         ["seq_mask.delta=0.01", "loss_mode=vanilla", "vanilla_seqmask"]),
        (["method=grpo_filter", "actor_rollout_ref.rollout.n=1"], ["filter_groups.enable", "rollout.n=1"]),
        (["method=empg", "algorithm.filter_groups.enable=true", "algorithm.filter_groups.criterion=advantage"],
         ["filter_groups.criterion=advantage"]),
        (["method=gigpo", "algorithm.use_kl_in_reward=true"], ["algorithm.use_kl_in_reward"]),
        (["trainer.use_v1=false"], ["trainer.use_v1"]),
        (["sampo.collapse.format_drop=2.0"], ["sampo.collapse.format_drop"]),
        (["method=sapo_seqmask", "actor_rollout_ref.actor.policy_loss.seq_mask.reference=rollout",
          "actor_rollout_ref.rollout.calculate_log_probs=false"],
         ["seq_mask.reference=rollout", "calculate_log_probs"]),
        (["method=grpo", "actor_rollout_ref.actor.policy_loss.seq_mask.reference=rollout"],
         ["seq_mask.reference=rollout", "loss_mode=vanilla"]),
    ],
)
def test_impossible_combinations_fail_naming_the_flags(overrides, flags):
    with pytest.raises(ValueError) as err:
        validate_sampo_config(make(*overrides))
    for flag in flags:
        assert flag in str(err.value)


def test_valid_seq_mask_combination_passes():
    validate_sampo_config(make("method=sampo_plus"))
    validate_sampo_config(make("method=gigpo", "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla_seqmask",
                               "actor_rollout_ref.actor.policy_loss.seq_mask.delta=0.01"))  # fmt: skip
    assert OmegaConf.select(make(), "actor_rollout_ref.actor.policy_loss.seq_mask.delta") == 0.223


# the bad settings a user's typo or fault produces (issue "Robustness"): each fails at start-up naming
# the flag and the bad value
BAD_SETTINGS = [
    ("algorithm.gamma=nan", "algorithm.gamma=nan"),
    ("algorithm.gamma=1.5", "algorithm.gamma=1.5"),
    ("algorithm.gamma=0", "algorithm.gamma=0"),
    ("actor_rollout_ref.actor.clip_ratio_low=-0.2", "clip_ratio_low=-0.2"),
    ("actor_rollout_ref.actor.clip_ratio_low=1.5", "clip_ratio_low=1.5"),
    ("actor_rollout_ref.actor.clip_ratio_high=-1", "clip_ratio_high=-1"),
    ("actor_rollout_ref.actor.kl_loss_coef=-1", "kl_loss_coef=-1"),
    ("actor_rollout_ref.actor.entropy_coeff=-0.1", "entropy_coeff=-0.1"),
    ("actor_rollout_ref.rollout.n=0", "rollout.n=0"),
    ("algorithm.gigpo.invalid_penalty=inf", "algorithm.gigpo.invalid_penalty must be finite"),
    ("algorithm.empg.k=-1000", "algorithm.empg.k must be finite and >= 0, got -1000"),
    ("algorithm.gigpo.similarity_threshold=1.5", "algorithm.gigpo.similarity_threshold"),
    ("+sampo.colapse.enable=false", "unknown sampo option(s) ['colapse']"),
    ("sampo.sampler.poll_interval_s=0", "sampo.sampler.poll_interval_s must be > 0, got 0"),
    ("+sampo.sampler.poll_s=1", "unknown sampo.sampler option(s) ['poll_s']"),
    ("sampo.old_log_prob.from_rollout=yes", "sampo.old_log_prob.from_rollout must be true or false, got 'yes'"),
    ("+sampo.validation.file=x.jsonl", "unknown sampo.validation option(s) ['file']"),
    ("algorithm.adv_estimator=simply", "algorithm.adv_estimator=simply is not registered; known: ["),
    ("actor_rollout_ref.actor.policy_loss.loss_mode=sampo_typo", "loss_mode='sampo_typo' is not a registered"),
    ("actor_rollout_ref.actor.policy_loss.seq_mask.normaliser=tokens", "seq_mask.normaliser must be one of"),
    ("actor_rollout_ref.actor.policy_loss.seq_mask.reference=behaviour", "seq_mask.reference must be one of"),
]


@pytest.mark.parametrize("override, message", BAD_SETTINGS)
def test_bad_settings_fail_before_ray_naming_flag_and_value(override, message):
    import time

    config = make("method=gigpo", override)
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        validate_sampo_config(config)
    assert time.perf_counter() - start < 5.0
    assert message in str(err.value)


def test_old_log_probs_from_the_rollout_need_the_rollouts_log_probs():
    from_rollout = ["method=gigpo", "sampo.old_log_prob.from_rollout=true"]
    validate_sampo_config(make(*from_rollout))  # verl's rollout reports log-probs by default
    message = "sampo.old_log_prob.from_rollout=true needs the rollout's log-probs: set actor_rollout_ref.rollout."
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_sampo_config(make(*from_rollout, "actor_rollout_ref.rollout.calculate_log_probs=false"))
    assert make("method=gigpo").sampo.old_log_prob.from_rollout is False  # verl's recomputation by default
    assert make("method=gigpo", "preset=cpu").sampo.old_log_prob.from_rollout is True


def test_validation_outcomes_go_to_the_checkpoint_folder_unless_set():
    config = make("method=gigpo", "trainer.default_local_dir=/runs/a")
    assert config.sampo.validation.outcomes_file == "/runs/a/val_outcomes.jsonl"
    assert make("method=gigpo", "sampo.validation.outcomes_file=null").sampo.validation.outcomes_file is None


def test_inputs_that_are_not_there_fail_before_ray(tmp_path):
    from sampo_verl.agent.dataset import write_splits
    from sampo_verl.validation import validate_sampo_inputs

    train, val = write_splits(str(tmp_path / "data"), "frozenlake", 2, 1)
    frame = pd.read_parquet(train)
    frame["extra_info"] = [{**row, "env": "chess"} for row in frame["extra_info"]]
    frame.to_parquet(tmp_path / "chess.parquet")
    ok = [f"data.train_files={train}", f"data.val_files={val}", f"actor_rollout_ref.model.path={tmp_path}"]
    validate_sampo_inputs(make(*ok))
    frame.assign(extra_info=[None, {"seed": 1}]).to_parquet(tmp_path / "no_env.parquet")
    frame.drop(columns=["extra_info"]).to_parquet(tmp_path / "no_column.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    (tmp_path / "weights.bin").write_bytes(b"")
    cases = [
        ("actor_rollout_ref.model.path=/nonexistent/model", "model.path=/nonexistent/model does not exist"),
        (f"actor_rollout_ref.model.path={tmp_path / 'weights.bin'}", "weights.bin is a file, not a model folder"),
        (f"data.train_files={tmp_path / 'missing.parquet'}", "missing.parquet does not exist"),
        (f"data.train_files={tmp_path / 'chess.parquet'}", "environment(s) ['chess'] that are not registered"),
        (f"data.train_files={tmp_path / 'no_env.parquet'}", "no_env.parquet: 2 of 2 rows have no extra_info.env"),
        (f"data.train_files={tmp_path / 'no_column.parquet'}", "no_column.parquet has no extra_info column"),
        (f"data.val_files={tmp_path / 'text.parquet'}", "text.parquet is not a readable parquet file"),
    ]
    for override, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            validate_sampo_inputs(make(*ok, override))
    # a hub id is not a local path: not checked here (verl downloads it)
    validate_sampo_inputs(make(*ok[:2], "actor_rollout_ref.model.path=Qwen/Qwen2.5-1.5B-Instruct"))
