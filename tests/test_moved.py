"""Old module paths (before the subpackage layout) still import, resolve as hydra targets and run."""

import importlib
import subprocess
import sys

import pytest
from hydra.utils import get_class

import sampo_verl  # noqa: F401  (installs the finder of old paths)
from sampo_verl._moved import MOVED


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_path_is_the_new_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_yaml_targets_of_earlier_releases_resolve_to_the_same_classes():
    from sampo_verl.agent.loop import EnvAgentLoop
    from sampo_verl.algorithms.loss_config import SampoPolicyLossConfig

    assert get_class("sampo_verl.config.SampoPolicyLossConfig") is SampoPolicyLossConfig
    assert get_class("sampo_verl.agent_loop.EnvAgentLoop") is EnvAgentLoop
    from sampo_verl.agent_loop import EnvAgentLoop as old_name  # noqa: PLC0415

    assert old_name is EnvAgentLoop


@pytest.mark.parametrize("module", ["sampo_verl.cpu.agent_run", "sampo_verl.bc"])  # a moved path; a package
def test_python_dash_m_of_the_public_short_paths_runs_the_tool(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
    assert "RuntimeWarning" not in result.stderr  # runpy warns when a module is imported before it runs
