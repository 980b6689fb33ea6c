"""The CPU testbed: settings per environment and the cached behaviour-cloned start."""

import numpy as np
import pandas as pd
import pytest

from sampo_verl.agent.action_parser import parse_turn
from sampo_verl.bc import sft_data
from sampo_verl.bc import train as bc
from sampo_verl.runs.agent_run import mark_built
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.runs.testbed import BC_DONE_FILE, _fingerprint, bc_start, cpu_testbed, rl_config


def test_unknown_environment_names_the_known_ones():
    known = "\\['frozenlake', 'sokoban', 'tir_math'\\]"
    with pytest.raises(ValueError, match=f"no CPU testbed for env 'chess'; known: {known}"):
        cpu_testbed("chess")


def test_rl_config_follows_the_testbed():
    tb = cpu_testbed("frozenlake", rl_lr=3e-3, rl_temperature=0.5)
    config = rl_config(tb, "sampo", seed=2, steps=7, test_freq=3)
    assert (config.env, config.method, config.seed, config.steps, config.test_freq) == ("frozenlake", "sampo", 2, 7, 3)
    assert (config.max_turns, config.env_options) == (tb.max_turns, tb.env_options)
    assert (config.lr, config.temperature) == (3e-3, 0.5)
    assert (config.max_prompt_length, config.max_response_length) == (tb.max_prompt_length, tb.max_response_length)
    assert (config.train_batch_size, config.group_size, config.val_before_train) == (
        tb.rl_groups,
        tb.rl_group_size,
        True,
    )


def test_bc_start_is_reused_unless_its_own_settings_change(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sft_data, "write_sft_splits", lambda *a, **k: calls.append("data"))
    monkeypatch.setattr(bc, "run_bc", lambda model, data, out, **k: calls.append(("bc", k["steps"])))
    monkeypatch.setattr("sampo_verl.runs.testbed.prepare_model", lambda path, size: path)
    tb = cpu_testbed("frozenlake", bc_steps=3)
    (tmp_path / "bc").mkdir()
    mark_built(tmp_path / "bc" / BC_DONE_FILE, _fingerprint(tb))
    assert bc_start(tmp_path, cpu_testbed("frozenlake", bc_steps=3, rl_lr=1.0, rl_groups=9)) == tmp_path / "bc"
    assert calls == []  # RL settings do not invalidate the behaviour-cloned start
    bc_start(tmp_path, cpu_testbed("frozenlake", bc_steps=4))
    assert calls == ["data", ("bc", 4)]


SFT_MAX_LENGTH = 1024  # verl's SFT data.max_length (truncation: error), which run_bc keeps


def test_tir_math_testbed_clones_turns_of_varying_length_that_fit(tmp_path):
    """Finding 1 needs turn lengths that vary; every cloned turn must fit verl's SFT and RL lengths."""
    tb = cpu_testbed("tir_math")
    written = sft_data.write_sft_splits(
        str(tmp_path), tb.env, tb.bc_episodes, 0, env_options=tb.env_options, max_turns=tb.max_turns,
        thought=tb.bc_thought,
    )  # fmt: skip
    path, rows, kept = written["train"]
    assert kept == tb.bc_episodes and rows == 2 * kept  # the expert runs one program, then answers
    tokenizer = build_tokenizer(default_corpus())
    lengths = []
    for messages in pd.read_parquet(path)["messages"]:
        messages = [dict(m) for m in messages]
        response = messages[-1]["content"]
        assert parse_turn(response).valid and response.startswith("<think></think>")
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
        full = tokenizer.apply_chat_template(messages, tokenize=True)
        prompt, full = (ids["input_ids"] if hasattr(ids, "keys") else ids for ids in (prompt, full))
        lengths.append(len(full) - len(prompt))
        assert len(full) <= SFT_MAX_LENGTH and len(prompt) <= tb.max_prompt_length
    lengths = np.sort(lengths)
    decile = len(lengths) // 10
    assert lengths[-1] <= tb.max_response_length
    assert lengths[-decile:].mean() >= 4 * lengths[:decile].mean()
