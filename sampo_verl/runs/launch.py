"""Launch verl's trainers (``verl.trainer.main_ppo``, ``sampo_verl.main_ppo``, verl's SFT trainer) as subprocesses.

Shared by the toy run, the end-to-end tests, the quickstart, behaviour cloning and the arena: the
child's environment (:func:`child_env`) lists ``sampo_verl`` in ``VERL_USE_EXTERNAL_MODULES`` after
the modules the user listed there (every Ray or torchrun process imports them all, so a custom
environment module is registered too), and a run that overruns ``timeout`` is stopped with its
whole process group (:func:`run_process`, which the arena also uses for the GPU recipes' shell launcher).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from sampo_verl.metrics import History, read_metrics

EXTERNAL_MODULES_ENV = "VERL_USE_EXTERNAL_MODULES"
PACKAGE = "sampo_verl"


def with_sampo_module(modules: str) -> str:
    """A comma-separated ``VERL_USE_EXTERNAL_MODULES`` value with ``sampo_verl`` appended unless listed.

    The user's modules stay first, in their order; empty entries and repeats are dropped.
    """
    return ",".join(dict.fromkeys([*filter(None, (m.strip() for m in modules.split(","))), PACKAGE]))


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a trainer subprocess: ``sampo_verl`` added to the external
    modules (:func:`with_sampo_module`), then the ``extra`` variables."""
    return {
        **os.environ,
        EXTERNAL_MODULES_ENV: with_sampo_module(os.environ.get(EXTERNAL_MODULES_ENV, "")),
        **extra,
    }


def run_process(
    command: list[str], workdir: Path, env: dict[str, str], capture: bool = True, timeout: float | None = None
) -> None:
    """Run ``command`` in ``workdir`` as its own process group (the driver and whatever it starts).

    The group is stopped when the run overruns ``timeout`` seconds or the caller is interrupted
    (Ctrl-C, or SIGTERM turned into an exception). Raises ``RuntimeError`` with the output tail
    when the run fails or overruns.
    """
    pipe = subprocess.PIPE if capture else None
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=pipe, stderr=pipe, text=True, start_new_session=True)
    name = " ".join([Path(command[0]).name, *command[1:3]])  # e.g. "python3 -m sampo_verl.main_ppo"
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _stop_group(proc)
        tail = (stdout or "")[-3000:] + (stderr or "")[-6000:]
        raise RuntimeError(f"{name} overran {timeout:.0f} s and was stopped\n{tail}") from None
    except BaseException:
        _stop_group(proc)
        raise
    if proc.returncode != 0:
        tail = (stdout or "")[-3000:] + (stderr or "")[-6000:]
        raise RuntimeError(f"{name} exited with {proc.returncode}\n{tail}")


def _stop_group(proc: subprocess.Popen) -> tuple[str | None, str | None]:
    """SIGTERM the process group of ``proc``, SIGKILL it after 30 s; return the remaining output."""
    with contextlib.suppress(ProcessLookupError):  # the whole group may have exited already
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()


def run_main_ppo(
    workdir: Path,
    overrides: list[str],
    metrics_file: Path,
    capture: bool = True,
    module: str = "verl.trainer.main_ppo",
    timeout: float | None = None,
) -> History:
    """Run ``python -m <module> <overrides>`` in ``workdir``; return the file logger's metrics, step -> values
    (:func:`sampo_verl.metrics.read_metrics`; empty when the run logged no file).

    Raises ``RuntimeError`` with the output tail when the run fails or overruns ``timeout`` seconds.
    """
    import torch

    env = child_env(VERL_FILE_LOGGER_PATH=str(metrics_file), TOKENIZERS_PARALLELISM="false")
    if torch.cuda.is_available():  # these runs exercise the CPU backend even on a GPU host
        env["VERL_PLATFORM"] = "cpu"
    run_process([sys.executable, "-m", module, *overrides], workdir, env, capture=capture, timeout=timeout)
    return read_metrics(metrics_file) if metrics_file.exists() else {}


def format_duration(seconds: float) -> str:
    """``42s``, ``12m05s``, ``3h07m``."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"
