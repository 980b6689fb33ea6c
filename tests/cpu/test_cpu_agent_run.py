"""The CPU agent run's task files: reused while their settings hold, rewritten when they change."""

import pandas as pd

from sampo_verl.cpu.agent_run import AgentRunConfig, agent_overrides, prepare_data


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
    from sampo_verl.testbed import cpu_testbed, rl_config

    tb = cpu_testbed("frozenlake")
    config = rl_config(tb, "sampo", seed=1, steps=2, test_freq=1)
    overrides = agent_overrides(tmp_path / "run", tmp_path / "model", tmp_path / "data", config)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("sampo_ppo", overrides=overrides)
    rollout = cfg.actor_rollout_ref.rollout
    assert (rollout.temperature, rollout.n) == (tb.rl_temperature, tb.rl_group_size) and tb.rl_temperature < 1.0
    assert rollout.val_kwargs.do_sample is False  # held-out success is greedy
    assert cfg.actor_rollout_ref.actor.optim.lr == tb.rl_lr
