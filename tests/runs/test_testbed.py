"""The CPU testbed: settings per environment and the cached behaviour-cloned start."""

import pytest

from sampo_verl.bc import sft_data
from sampo_verl.bc import train as bc
from sampo_verl.runs.agent_run import mark_built
from sampo_verl.runs.testbed import BC_DONE_FILE, _fingerprint, bc_start, cpu_testbed, rl_config


def test_unknown_environment_names_the_known_ones():
    with pytest.raises(ValueError, match="no CPU testbed for env 'chess'; known: \\['frozenlake', 'sokoban'\\]"):
        cpu_testbed("chess")


def test_rl_config_follows_the_testbed():
    tb = cpu_testbed("frozenlake", rl_lr=3e-3, rl_temperature=0.5)
    config = rl_config(tb, "sampo", seed=2, steps=7, test_freq=3)
    assert (config.env, config.method, config.seed, config.steps, config.test_freq) == ("frozenlake", "sampo", 2, 7, 3)
    assert (config.max_turns, config.env_options) == (tb.max_turns, tb.env_options)
    assert (config.lr, config.temperature) == (3e-3, 0.5)
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
