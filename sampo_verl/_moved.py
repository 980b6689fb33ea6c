"""Old dotted paths of modules that moved into subpackages, kept importable and runnable.

``import sampo_verl.config`` returns the module object of ``sampo_verl.algorithms.loss_config``
(the same object, so classes and registries are shared), and ``python -m sampo_verl.quickstart``
runs ``sampo_verl.runs.quickstart`` as ``__main__``. The short names of the command-line tools
(``python -m sampo_verl.quickstart``, ``.evaluate``, ``.serve``, ``.dataset``, ``.sft_data``, ``.assets``,
``.cpu.agent_run``, ``.cpu.toy_run``) are the public interface; the YAML ``_target_`` paths
and imports of earlier releases keep working through the same table.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import CodeType, ModuleType

MOVED: dict[str, str] = {
    "sampo_verl.config": "sampo_verl.algorithms.loss_config",
    "sampo_verl.losses": "sampo_verl.algorithms.losses",
    "sampo_verl.advantages": "sampo_verl.algorithms.advantages",
    "sampo_verl.filtering": "sampo_verl.algorithms.filtering",
    "sampo_verl.diagnostics": "sampo_verl.algorithms.diagnostics",
    "sampo_verl.agent_loop": "sampo_verl.agent.loop",
    "sampo_verl.prompts": "sampo_verl.agent.prompts",
    "sampo_verl.action_parser": "sampo_verl.agent.action_parser",
    "sampo_verl.dataset": "sampo_verl.agent.dataset",
    "sampo_verl.sft_data": "sampo_verl.bc.sft_data",
    "sampo_verl.testbed": "sampo_verl.runs.testbed",
    "sampo_verl.quickstart": "sampo_verl.runs.quickstart",
    "sampo_verl.evaluate": "sampo_verl.runs.evaluate",
    "sampo_verl.serve": "sampo_verl.runs.serve",
    "sampo_verl.assets": "sampo_verl.runs.assets",
    "sampo_verl.cpu.agent_run": "sampo_verl.runs.agent_run",
    "sampo_verl.cpu.toy_run": "sampo_verl.runs.toy_run",
    "sampo_verl.cpu.launch": "sampo_verl.runs.launch",
    "sampo_verl.scripted_server": "sampo_verl.testing.scripted_server",
}


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder that exec_module swaps for the real module

    def exec_module(self, module: ModuleType) -> None:
        # importlib returns whatever sys.modules holds under the name once loading ends
        sys.modules[module.__name__] = importlib.import_module(self.target)

    def get_code(self, fullname: str) -> CodeType | None:
        """The target's code: what ``python -m <old path>`` (runpy) executes as ``__main__``."""
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)


class MovedFinder(importlib.abc.MetaPathFinder):
    """Resolves the old paths of :data:`MOVED` to their new modules."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _MovedLoader(new), origin=importlib.util.find_spec(new).origin)


def install() -> None:
    """Put the finder on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedFinder())
