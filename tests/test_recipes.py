"""GPU recipes (recipes/*.sh): every flag they pass exists and the composed config validates.

Each recipe runs with ``SAMPO_DRY_RUN=1``, which prints its two commands one argument per line; the
``sampo_verl.main_ppo`` overrides are composed with hydra exactly as the entry point would, then go
through sampo-verl's and verl's start-up validation and verl's dataclass conversion. The dataset
arguments are run for real (with a few tasks). No GPU needed.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import DictConfig
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config

import sampo_verl  # registers losses and estimators before the configs are built
from sampo_verl.agent import dataset
from sampo_verl.agent.loop import EnvAgentLoop
from sampo_verl.validation import validate_sampo_config

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
CONF = str(Path(sampo_verl.__file__).parent / "conf")
METHODS = ("grpo", "gspo", "sapo", "gigpo", "sampo")
# TIR-Math: the release's methods on it that need no step-level grouping, and grpo_seqmean (finding 1)
TIR_MATH_METHODS = ("grpo", "grpo_seqmean", "gspo")
CELLS = [(env, m) for env in ("sokoban", "frozenlake", "alfworld", "webshop") for m in METHODS] + [
    ("tir_math", m) for m in TIR_MATH_METHODS
]
ENVS = tuple(dict.fromkeys(env for env, _ in CELLS))
MAX_TURNS = {"sokoban": 15, "frozenlake": 15, "alfworld": 50, "tir_math": 5, "webshop": 15}
BATCH_SIZE = {"sokoban": 32, "frozenlake": 32, "alfworld": 16, "tir_math": 512, "webshop": 16}
GROUP_SIZE = {"tir_math": 5}  # the release; else the testbed's 8
RESPONSE_LENGTH = {"tir_math": 4096}  # else 512
DATA_MODULE, TRAIN_MODULE = "sampo_verl dataset", "sampo_verl.main_ppo"


def dry_run(script: str, *args: str, home: Path, **env: str) -> dict[str, list[str]]:
    """Arguments of each command a recipe would run, keyed by module (no user variables leak in)."""
    return {module: list(argv) for module, argv in _dry_run(script, args, home, tuple(sorted(env.items()))).items()}


@cache
def _dry_run(script: str, args: tuple[str, ...], home: Path, env: tuple[tuple[str, str], ...]):
    result = subprocess.run(
        ["bash", str(RECIPES / script), *args],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "SAMPO_DRY_RUN": "1", **dict(env)},
        capture_output=True,
        text=True,
        check=True,
    )
    commands: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("$ python3 -m "):
            module = line.removeprefix("$ python3 -m ")
            commands[module] = []
        else:
            commands[module].append(line)
    return {module: tuple(argv) for module, argv in commands.items()}


@cache
def compose_overrides(overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("sampo_ppo", overrides=list(overrides))


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    # each dry run starts Python once (the environment's settings, sampo_verl.recipe): run them side by side
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(lambda cell: dry_run(f"{cell[0]}_{cell[1]}.sh", home=home), CELLS))
    return home


def test_one_script_per_environment_and_preset_listed_in_the_docs():
    scripts = {p.name for p in RECIPES.glob("*.sh")} - {"common.sh"}
    assert scripts == {f"{env}_{method}.sh" for env, method in CELLS}
    readme = (RECIPES.parent / "docs" / "gpu-recipes.md").read_text()
    for script in scripts:
        assert script in readme
        assert os.access(RECIPES / script, os.X_OK)


def test_a_recipe_on_one_gpu_composes_and_validates(home):
    """The docs' single-GPU override: one trainer rank and one vLLM replica on the same GPU."""
    cfg = compose_overrides(tuple(dry_run("sokoban_sampo.sh", home=home, NGPUS_PER_NODE="1")[TRAIN_MODULE]))
    validate_sampo_config(cfg)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (1, 1)


@pytest.mark.parametrize("env,method", CELLS)
def test_recipe_composes_and_validates(env, method, home):
    commands = dry_run(f"{env}_{method}.sh", home=home)
    cfg = compose_overrides(tuple(commands[TRAIN_MODULE]))

    # the entry point's start-up checks (sampo_verl.main_ppo.run), then verl's dataclasses
    validate_sampo_config(cfg)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert need_reference_policy(cfg) and not need_critic(cfg)

    # the method preset is untouched by the recipe, but for the release's changes on this task (env_method/)
    preset = compose_overrides((f"env={env}", f"method={method}"))
    for key in ("adv_estimator", "gamma", "filter_groups"):
        assert cfg.algorithm[key] == preset.algorithm[key], key
    for key in ("policy_loss", "clip_ratio_low", "clip_ratio_high", "loss_agg_mode", "tau_pos", "tau_neg"):
        assert cfg.actor_rollout_ref.actor[key] == preset.actor_rollout_ref.actor[key], key

    # hardware and engines: 1 node x 8 GPUs, FSDP2 actor and reference, vLLM rollout, default model
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (1, 8)
    assert actor.strategy == "fsdp2" and actor.engine.strategy == "fsdp2"
    assert cfg.actor_rollout_ref.ref.strategy == "fsdp2"
    assert rollout.name == "vllm" and rollout.mode == "async" and rollout.tensor_model_parallel_size == 1
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-1.5B-Instruct"

    # testbed: group size 8, KL loss low_var_kl 0.01, invalid-action penalty 0.1, history window 2
    assert rollout.n == GROUP_SIZE.get(env, 8) and cfg.data.max_response_length == RESPONSE_LENGTH.get(env, 512)
    assert actor.use_kl_loss and actor.kl_loss_type == "low_var_kl" and actor.kl_loss_coef == 0.01
    # the release's scripts: entropy coefficient 0.001, validation sampled at T 0.6 / top-p 0.95 / top-k 20
    assert actor.entropy_coeff == 0.001 and actor.optim.lr == 1e-6
    val = rollout.val_kwargs
    assert (val.do_sample, val.temperature, val.top_p, val.top_k) == (True, 0.6, 0.95, 20)
    assert cfg.algorithm[cfg.algorithm.adv_estimator].invalid_penalty == 0.1
    assert rollout.agent.default_agent_loop == dataset.AGENT_NAME
    loops = yaml.safe_load(Path(rollout.agent.agent_loop_config_path).read_text())
    (loop,) = [entry for entry in loops if entry["name"] == dataset.AGENT_NAME]
    assert get_class(loop["_target_"]) is EnvAgentLoop and loop["history_length"] == 2
    assert int(option(commands[DATA_MODULE], "--max-turns")) == MAX_TURNS[env]

    # batch sizes: one task group batch per mini-batch; token-packed micro-batches that fit a whole turn
    assert cfg.data.train_batch_size == actor.ppo_mini_batch_size == BATCH_SIZE[env]
    ref = cfg.actor_rollout_ref.ref
    assert actor.use_dynamic_bsz and rollout.log_prob_use_dynamic_bsz and ref.log_prob_use_dynamic_bsz
    budgets = (
        actor.ppo_max_token_len_per_gpu,
        rollout.log_prob_max_token_len_per_gpu,
        ref.log_prob_max_token_len_per_gpu,
    )
    assert min(budgets) >= cfg.data.max_prompt_length + cfg.data.max_response_length
    assert rollout.prompt_length == cfg.data.max_prompt_length

    data_dir = home / "data" / "sampo_verl" / env
    assert option(commands[DATA_MODULE], "--out") == str(data_dir)
    assert cfg.data.train_files == str(data_dir / "train.parquet")
    assert int(option(commands[DATA_MODULE], "--train")) == cfg.trainer.total_training_steps * BATCH_SIZE[env]


@pytest.mark.parametrize("env", ENVS)
def test_dataset_command_writes_the_episodes_the_recipe_trains_on(env, home, tmp_path):
    args = dry_run(next(f"{env}_{m}.sh" for e, m in CELLS if e == env), home=home)[DATA_MODULE]
    args[args.index("--train") + 1], args[args.index("--val") + 1] = "3", "2"
    args[args.index("--out") + 1] = str(tmp_path)
    dataset.main(args)
    train = pd.read_parquet(tmp_path / "train.parquet")
    assert len(train) == 3 and len(pd.read_parquet(tmp_path / "val.parquet")) == 2
    extra = train.iloc[0]["extra_info"]
    assert extra["env"] == env and extra["max_turns"] == MAX_TURNS[env]
    assert set(train["agent_name"]) == {dataset.AGENT_NAME}


def test_model_hardware_and_pass_through_overrides(home):
    commands = dry_run(
        "sokoban_sampo.sh",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.5",
        home=home,
        MODEL="Qwen/Qwen3-4B",
        NGPUS_PER_NODE="4",
        ROLLOUT_TP="2",
    )
    overrides = commands[TRAIN_MODULE]
    assert overrides[-1] == "actor_rollout_ref.rollout.gpu_memory_utilization=0.5"
    cfg = compose_overrides(tuple(overrides))
    validate_config(cfg, use_reference_policy=True, use_critic=False)
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen3-4B"
    assert cfg.trainer.experiment_name == "sokoban_sampo_Qwen3-4B"
    assert cfg.trainer.n_gpus_per_node == 4 and cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    assert cfg.actor_rollout_ref.rollout.gpu_memory_utilization == 0.5


def test_a_misspelt_flag_fails_before_anything_runs(home):
    result = subprocess.run(
        ["bash", str(RECIPES / "sokoban_grpo.sh"), "actor_rollout_ref.rollout.gpu_memory_utilisation=0.5"],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "SAMPO_DRY_RUN": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "gpu_memory_utilisation" in result.stderr and "Traceback" not in result.stderr


def test_alfworld_official_games(home):
    args = dry_run("alfworld_gigpo.sh", home=home, ALFWORLD_DATA="/games")[DATA_MODULE]
    assert yaml.safe_load(option(args, "--env-options")) == {"game_files": "/games/json_2.1.1/train"}
    assert yaml.safe_load(option(args, "--val-env-options")) == {"game_files": "/games/json_2.1.1/valid_unseen"}
    assert option(args, "--out") == str(home / "data" / "sampo_verl" / "alfworld_official")
    offline = dry_run("alfworld_gigpo.sh", home=home)[DATA_MODULE]
    assert option(offline, "--env-options") == "{}" and "--val-env-options" not in offline


def test_webshop_files_from_the_environment_variable(home):
    args = dry_run("webshop_sampo.sh", home=home, WEBSHOP_DATA="/ws")[DATA_MODULE]
    files = {"products_path": "/ws/items_shuffle.json", "attributes_path": "/ws/items_ins_v2.json",
             "human_goals_path": "/ws/items_human_ins.json"}  # fmt: skip
    assert yaml.safe_load(option(args, "--env-options")) == {**files, "goal_range": [1500, None]}
    assert yaml.safe_load(option(args, "--val-env-options")) == {**files, "goal_range": [0, 500]}
    assert option(args, "--out") == str(home / "data" / "sampo_verl" / "webshop_official")


def test_common_launcher_rejects_an_unknown_environment(home):
    result = subprocess.run(
        ["bash", str(RECIPES / "common.sh"), "chess", "grpo"],
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "SAMPO_DRY_RUN": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "unknown ENV 'chess'" in result.stderr


@pytest.mark.parametrize("mode", ["sampo_colocate_async", "sampo_separate_async"])
def test_a_recipe_on_an_async_trainer_composes_and_validates(mode, home, monkeypatch):
    """TRAINER_MODE switches any recipe to verl's async trainers; separate_async splits the node's GPUs,
    the batch into SYNC_STEPS mini-batches, and syncs over NCCL (registered here as on a GPU machine)."""
    from verl.checkpoint_engine import CheckpointEngineRegistry

    monkeypatch.setenv("VERL_PLATFORM", "cuda")
    monkeypatch.setitem(CheckpointEngineRegistry._registry, "nccl", object)
    args = dry_run("sokoban_sampo.sh", home=home, TRAINER_MODE=mode, ROLLOUT_GPUS="2")[TRAIN_MODULE]
    cfg = compose_overrides(tuple(args))
    validate_sampo_config(cfg)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert cfg.trainer.v1.trainer_mode == mode and cfg.trainer.v1.sampler.max_off_policy_threshold == 2
    if mode == "sampo_separate_async":
        assert cfg.trainer.n_gpus_per_node == 6 and cfg.actor_rollout_ref.rollout.n_gpus_per_node == 2
        assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size * 4 == cfg.data.train_batch_size
        assert cfg.actor_rollout_ref.rollout.checkpoint_engine.backend == "nccl"
    else:
        assert cfg.trainer.n_gpus_per_node == 8


def test_an_unknown_trainer_mode_fails_before_anything_runs(home):
    result = subprocess.run(
        ["bash", str(RECIPES / "sokoban_sampo.sh")],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "SAMPO_DRY_RUN": "1", "TRAINER_MODE": "async"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "TRAINER_MODE=async: one of sampo" in result.stderr
