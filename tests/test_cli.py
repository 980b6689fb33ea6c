"""The ``sampo-verl`` command: every command reaches its module; usage and unknown commands."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from sampo_verl import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_reaches_its_modules_parser(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--help"])
    assert stopped.value.code == 0 and f"usage: sampo-verl {command}" in capsys.readouterr().out


@pytest.mark.parametrize("subcommand", ["run", "report", "compare"])
def test_arena_help_prints_percent_signs_once(subcommand, capsys):
    # argparse %-formats help strings but prints descriptions as written: a doubled % shows doubled
    with pytest.raises(SystemExit):
        cli.main(["arena", subcommand, "--help"])
    printed = capsys.readouterr().out
    assert f"usage: sampo-verl arena {subcommand}" in printed and "%%" not in printed


def test_a_command_runs_with_its_arguments(tmp_path):
    assert cli.main(["dataset", "--env", "frozenlake", "--train", "3", "--val", "2", "--out", str(tmp_path)]) == 0
    assert len(pd.read_parquet(tmp_path / "train.parquet")) == 3 and len(pd.read_parquet(tmp_path / "val.parquet")) == 2


def test_usage_and_unknown_commands(capsys):
    assert cli.main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert all(f"  {name} " in printed for name in cli.COMMANDS)
    assert cli.main([]) == 2
    assert cli.main(["quickstrat"]) == 2 and "unknown command 'quickstrat'" in capsys.readouterr().err


def test_the_console_script_and_python_dash_m_are_the_same_command():
    script = shutil.which("sampo-verl") or pytest.skip("the console script is not on PATH (package not installed)")
    for command in ([script, "--help"], [sys.executable, "-m", "sampo_verl", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        assert result.stdout.startswith("usage: sampo-verl COMMAND")
