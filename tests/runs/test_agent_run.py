"""The CPU agent run: task files reused while their settings hold, the overrides it composes, the
child environment it launches with, and a user's environment module reaching the trainer's workers."""

import argparse
import os
from pathlib import Path

import pandas as pd
import pytest

from sampo_verl.runs.agent_run import AgentRunConfig, agent_overrides, engine_list, prepare_data, run_agent
from sampo_verl.processes.launch import EXTERNAL_MODULES_ENV, child_env, with_sampo_module

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_engine_lists_name_known_engines_only():
    assert engine_list("hf,vllm") == ["hf", "vllm"] and engine_list("vllm") == ["vllm"]
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown engines \['sglang'\]; known: \['hf', 'vllm'\]"):
        engine_list("hf,sglang")


def test_task_files_follow_the_run_settings(tmp_path):
    train, val = prepare_data(tmp_path, AgentRunConfig(env="frozenlake", train_tasks=3, val_tasks=2))
    written = train.stat().st_mtime_ns
    assert prepare_data(tmp_path, AgentRunConfig(env="frozenlake", train_tasks=3, val_tasks=2, lr=0.5)) == (train, val)
    assert train.stat().st_mtime_ns == written  # RL-only settings reuse the tasks
    prepare_data(tmp_path, AgentRunConfig(env="sokoban", train_tasks=4, val_tasks=2))
    rows = pd.read_parquet(train)
    assert len(rows) == 4 and set(rows["data_source"]) == {"sokoban"}  # other environment: rewritten
    assert len(pd.read_parquet(val)) == 2


def test_overrides_sample_at_the_run_temperature_and_validate_greedily(tmp_path):
    from hydra import compose, initialize_config_dir

    from sampo_verl.main_ppo import CONFIG_DIR
    from sampo_verl.runs.testbed import cpu_testbed, rl_config

    tb = cpu_testbed("frozenlake")
    config = rl_config(tb, "sampo", seed=1, steps=2, test_freq=1)
    overrides = agent_overrides(tmp_path / "run", tmp_path / "model", tmp_path / "data", config)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("sampo_ppo", overrides=overrides)
    rollout = cfg.actor_rollout_ref.rollout
    assert (rollout.temperature, rollout.n) == (tb.rl_temperature, tb.rl_group_size) and tb.rl_temperature < 1.0
    assert rollout.val_kwargs.do_sample is False  # held-out success is greedy
    assert cfg.actor_rollout_ref.actor.optim.lr == tb.rl_lr


def test_sampo_verl_is_appended_to_the_users_modules():
    assert with_sampo_module("") == "sampo_verl"
    assert with_sampo_module("custom_env") == "custom_env,sampo_verl"
    assert with_sampo_module("b_env,a_env") == "b_env,a_env,sampo_verl"  # the user's order is kept
    assert with_sampo_module("sampo_verl,custom_env") == "sampo_verl,custom_env"  # listed once
    assert with_sampo_module("custom_env,,custom_env, sampo_verl") == "custom_env,sampo_verl"


def test_child_env_keeps_the_environment_and_adds_the_extra_variables(monkeypatch):
    monkeypatch.setenv(EXTERNAL_MODULES_ENV, "custom_env")
    monkeypatch.setenv("SOME_USER_SETTING", "1")
    env = child_env(VERL_FILE_LOGGER_PATH="/tmp/m.jsonl")
    assert env[EXTERNAL_MODULES_ENV] == "custom_env,sampo_verl"
    assert env["SOME_USER_SETTING"] == "1" and env["VERL_FILE_LOGGER_PATH"] == "/tmp/m.jsonl"
    assert os.environ[EXTERNAL_MODULES_ENV] == "custom_env"  # this process's environment is left alone


def test_a_custom_environment_module_reaches_the_trainer(tiny_model_dir, tmp_path, monkeypatch):
    """examples/custom_env.py's guess_number, named only in VERL_USE_EXTERNAL_MODULES, plays in the workers."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv(EXTERNAL_MODULES_ENV, "custom_env")
    import custom_env  # noqa: F401  (registers guess_number here too: the task files are written in-process)

    config = AgentRunConfig(env="guess_number", method="grpo", steps=1, max_turns=3, train_tasks=4, val_tasks=2)
    history = run_agent(tmp_path, tiny_model_dir, config, timeout=600)
    trained = [metrics for metrics in history.values() if "training/global_step" in metrics]
    assert len(trained) == 1 and 1 <= trained[0]["sampo/episode_length"] <= 3


def test_training_goes_on_through_environment_faults_and_counts_them(tiny_model_dir, tmp_path, monkeypatch):
    """The real trainer on the faulty environment (a fault on 25% of its calls): both steps train.

    The untrained tiny model's turns are all invalid, so the environment is never stepped here: the
    faults that reach the trainer are at reset (episodes dropped, counted by later ones) and close.
    Step faults are covered through the loop (tests/agent/test_env_calls.py) and the soak.
    """
    monkeypatch.setenv(EXTERNAL_MODULES_ENV, "sampo_verl.testing.faulty_env")
    import sampo_verl.testing.faulty_env  # noqa: F401  (the task files are written in-process)

    loops = tmp_path / "agent_loops.yaml"  # a hang costs env_timeout_s: 1 s here
    loops.write_text("- name: sampo_env_agent\n  _target_: sampo_verl.agent.loop.EnvAgentLoop\n  env_timeout_s: 1\n")
    options = {"fault_rate": 0.25, "fault_seed": 1}
    config = AgentRunConfig(env="faulty", method="grpo", steps=2, max_turns=4, env_options=options, train_tasks=8)
    override = f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops}"
    history = run_agent(tmp_path / "run", tiny_model_dir, config, [override], timeout=600)
    trained = [metrics for metrics in history.values() if "training/global_step" in metrics]
    assert len(trained) == 2
    assert sum(m["sampo/env_reset_failures"] for m in trained) > 0
    assert sum(m["sampo/env_close_failures"] for m in trained) > 0
    assert all(m["sampo/env_error_rate"] == 0.0 for m in trained)  # no step was taken
