"""The CPU agent run's task files: reused while their settings hold, rewritten when they change."""

import pandas as pd

from sampo_verl.cpu.agent_run import AgentRunConfig, prepare_data


def test_task_files_follow_the_run_settings(tmp_path):
    train, val = prepare_data(tmp_path, AgentRunConfig(env="frozenlake", train_tasks=3, val_tasks=2))
    written = train.stat().st_mtime_ns
    assert prepare_data(tmp_path, AgentRunConfig(env="frozenlake", train_tasks=3, val_tasks=2, lr=0.5)) == (train, val)
    assert train.stat().st_mtime_ns == written  # RL-only settings reuse the tasks
    prepare_data(tmp_path, AgentRunConfig(env="sokoban", train_tasks=4, val_tasks=2))
    rows = pd.read_parquet(train)
    assert len(rows) == 4 and set(rows["data_source"]) == {"sokoban"}  # other environment: rewritten
    assert len(pd.read_parquet(val)) == 2
