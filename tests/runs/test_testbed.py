"""The CPU testbed: settings per environment and the cached behaviour-cloned start."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from sampo_verl.agent.action_parser import parse_turn
from sampo_verl.bc import sft_data
from sampo_verl.bc import train as bc
from sampo_verl.runs.agent_run import mark_built
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.runs.assets import ModelSize
from sampo_verl.runs.testbed import (
    TESTBEDS, BC_DONE_FILE, TESTBED_DIR, _fingerprint, bc_start, cpu_testbed, load_testbed, rl_config,
)  # fmt: skip


def test_unknown_environment_names_the_known_ones():
    known = "\\['frozenlake', 'frozenlake_long', 'frozenlake_long_big', 'sokoban', 'tir_math', 'webshop'\\]"
    with pytest.raises(ValueError, match=f"no CPU testbed 'chess'; known: {known}"):
        cpu_testbed("chess")


def test_a_testbed_is_one_yaml_file_over_the_defaults(tmp_path):
    assert sorted(TESTBEDS) == sorted(path.stem for path in TESTBED_DIR.glob("*.yaml"))
    lake = TESTBEDS["frozenlake"]
    assert (lake.env, lake.max_turns, lake.rl_val_tasks, lake.rl_lr) == ("frozenlake", 8, 256, 1.5e-4)
    assert lake.model == ModelSize(hidden=64, heads=4, kv_heads=2, head_dim=32, init_std=0.3)
    tir_math = TESTBEDS["tir_math"]
    assert tir_math.model == ModelSize(hidden=128, layers=2, heads=4, kv_heads=4, init_std=0.02)
    assert tir_math.bc_overrides[:2] == (
        "data.custom_cls.path=pkg://sampo_verl.bc.prompt_loss", "data.custom_cls.name=PromptLossSFTDataset"
    )  # fmt: skip
    mine = tmp_path / "sokoban.yaml"  # the environment is the file's name unless the file says otherwise
    mine.write_text("max_turns: 4\nmodel: {hidden: 64, heads: 4, kv_heads: 2, head_dim: 32}\n")
    tb = load_testbed(mine)
    assert (tb.env, tb.max_turns, tb.model.head_dim, tb.bc_steps) == ("sokoban", 4, 32, 150)
    # a second testbed of one environment names it
    lakes = tmp_path / "lakes_6x6.yaml"
    lakes.write_text("env: frozenlake\nenv_options: {size: 6}\n")
    assert (load_testbed(lakes).env, load_testbed(lakes).env_options) == ("frozenlake", {"size": 6})


def test_a_testbed_can_start_from_another(tmp_path):
    """Its values, then the file's; the base's environment unless it names one."""
    (tmp_path / "frozenlake.yaml").write_text("max_turns: 6\nbc_steps: 300\n")
    (tmp_path / "bigger.yaml").write_text("base: frozenlake\nbc_steps: 500\nmodel: {hidden: 128}\n")
    tb = load_testbed(tmp_path / "bigger.yaml")
    assert (tb.env, tb.max_turns, tb.bc_steps, tb.model.hidden, tb.model.layers) == ("frozenlake", 6, 500, 128, 2)
    (tmp_path / "lakes.yaml").write_text("base: bigger\nenv_options: {size: 6}\n")
    lakes = load_testbed(tmp_path / "lakes.yaml")
    assert (lakes.env, lakes.bc_steps, lakes.env_options) == ("frozenlake", 500, {"size": 6})
    assert TESTBEDS["frozenlake_long_big"] == cpu_testbed(
        "frozenlake_long", model=ModelSize(hidden=128, layers=4, heads=4, kv_heads=2, head_dim=32, init_std=0.3)
    )


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"sokoban": "max_turn: 4"}, r"unknown testbed \(.*sokoban.yaml\) option\(s\) \['max_turn'\]"),
        (
            {"sokoban": "model: {hidden: 64, head: 4}"},
            r"unknown testbed \(.*sokoban.yaml\) model option\(s\) \['head'\]",
        ),
        ({"lakes": "env_options: {size: 6}"}, r"lakes.yaml\): env 'lakes' is not an environment; known: \["),
        ({"lakes": "base: bigger", "bigger": "base: lakes"}, r"bigger.yaml\): base 'lakes' is a cycle"),
        ({"lakes": "base: chess"}, r"lakes.yaml\): base 'chess' is not a testbed"),
    ],
)
def test_a_bad_testbed_file_is_named(tmp_path, files, error):
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text + "\n")
    with pytest.raises(ValueError, match=error):
        load_testbed(tmp_path / f"{next(iter(files))}.yaml")


def test_the_committed_starts_stay_valid():
    """A field added to the testbed or the model later must not change the fingerprint of a start built
    before it (studies/*/_start would be rebuilt)."""
    qwen2 = ModelSize(hidden=64, heads=4, kv_heads=2, init_std=0.3)  # the FrozenLake study's start
    built_before = _fingerprint(cpu_testbed("frozenlake", model=qwen2))
    assert "head_dim" not in built_before["model"] and "bc_overrides" not in built_before
    assert _fingerprint(TESTBEDS["frozenlake"])["model"]["head_dim"] == 32


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
    monkeypatch.setattr("sampo_verl.runs.testbed.build_assets", lambda out, *a, **k: out)
    tb = cpu_testbed("frozenlake", bc_steps=3)
    (tmp_path / "bc").mkdir()
    mark_built(tmp_path / "bc" / BC_DONE_FILE, _fingerprint(tb))
    assert bc_start(tmp_path, cpu_testbed("frozenlake", bc_steps=3, rl_lr=1.0, rl_groups=9)) == tmp_path / "bc"
    assert calls == []  # RL settings do not invalidate the behaviour-cloned start
    bc_start(tmp_path, cpu_testbed("frozenlake", bc_steps=4))
    assert calls == ["data", ("bc", 4)]


def cloned_turn_lengths(tb, out, episodes=300) -> list[tuple[int, int]]:
    """(prompt, response) token counts of the testbed's behaviour-cloning turns (at most ``episodes``),
    as verl's SFT tokenises them with the testbed's tokenizer."""
    tb = dataclasses.replace(tb, bc_episodes=min(tb.bc_episodes, episodes))
    written = sft_data.write_sft_splits(
        str(out), tb.env, tb.bc_episodes, 0, env_options=tb.env_options, max_turns=tb.max_turns,
        thought=tb.bc_thought, last_turn_repeats=tb.bc_last_turn_repeats,
    )  # fmt: skip
    path, rows, kept = written["train"]
    assert kept == tb.bc_episodes  # the expert wins every episode within the testbed's turns
    corpus = sft_data.message_texts(path) if tb.tokenizer_from_data else default_corpus()
    tokenizer = build_tokenizer(corpus, tb.vocab_size, qwen2_split=tb.tokenizer_from_data)
    lengths = []
    for messages in pd.read_parquet(path)["messages"]:
        messages = [dict(m) for m in messages]
        assert parse_turn(messages[-1]["content"]).valid
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
        full = tokenizer.apply_chat_template(messages, tokenize=True)
        prompt, full = (ids["input_ids"] if hasattr(ids, "keys") else ids for ids in (prompt, full))
        lengths.append((len(prompt), len(full) - len(prompt)))
    return lengths


@pytest.mark.parametrize("env", sorted(TESTBEDS))
def test_every_cloned_turn_fits_the_testbeds_lengths(env, tmp_path):
    """verl's SFT fails on a row longer than data.max_length; RL truncates prompts and responses."""
    tb = cpu_testbed(env)
    lengths = cloned_turn_lengths(tb, tmp_path)
    assert max(p + r for p, r in lengths) <= tb.bc_max_length <= tb.model.max_positions
    assert max(p for p, _ in lengths) <= tb.max_prompt_length and max(r for _, r in lengths) <= tb.max_response_length


def test_tir_math_testbed_clones_turns_of_varying_length(tmp_path):
    """Finding 1 (sample-level aggregation) needs turns whose lengths vary. The kinds the tiny model learns
    to solve give ~2x between the deciles (answers ~16 tokens, programs ~30-35); the generator's full mix
    gives more (tests/envs/test_tir_math.py), but the cloned model does not solve it at CPU scale."""
    tb = cpu_testbed("tir_math")
    lengths = np.sort([r for _, r in cloned_turn_lengths(tb, tmp_path, episodes=200)])
    decile = len(lengths) // 10
    assert len(lengths) == (1 + tb.bc_last_turn_repeats) * 200  # the expert runs one program, then answers
    assert lengths[-decile:].mean() >= 2 * lengths[:decile].mean()


def test_the_long_frozenlake_testbed_clones_long_episodes_of_varying_turn_lengths(tmp_path):
    """The long-horizon testbed: every expert episode takes 10 or more turns (6x6 lakes), and the planning
    thought makes the last decile of cloned turns over twice as long as the first (25-81 tokens)."""
    tb = cpu_testbed("frozenlake_long")
    lengths = np.sort([r for _, r in cloned_turn_lengths(tb, tmp_path, episodes=50)])
    decile = len(lengths) // 10
    assert len(lengths) >= 10 * 50
    assert lengths[-decile:].mean() >= 2 * lengths[:decile].mean()


def test_starts_built_before_the_tokenizer_and_override_settings_keep_their_fingerprint():
    fingerprint = _fingerprint(cpu_testbed("frozenlake"))
    assert not {"bc_overrides", "vocab_size", "tokenizer_from_data", "bc_last_turn_repeats"} & set(fingerprint)
    changed = _fingerprint(cpu_testbed("frozenlake", vocab_size=1024, bc_overrides=("optim.lr=1",)))
    assert (changed["vocab_size"], changed["bc_overrides"]) == (1024, ("optim.lr=1",))
    assert "tokenizer_from_data" not in changed
