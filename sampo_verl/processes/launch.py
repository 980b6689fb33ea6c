"""Launch verl's trainers (``verl.trainer.main_ppo``, ``sampo_verl.main_ppo``, verl's SFT trainer) as subprocesses.

Shared by the toy run, the end-to-end tests, the quickstart, behaviour cloning and the arena: the
child's environment (:func:`child_env`) lists ``sampo_verl`` in ``VERL_USE_EXTERNAL_MODULES`` after
the modules the user listed there (every Ray or torchrun process imports them all, so a custom
environment module is registered too), and every trainer runs under a guard that stops it when its
launcher dies and keeps a second trainer out of the same folder; a run that overruns ``timeout`` is
stopped with its whole process group (:func:`run_process`, which the arena also uses for the GPU
recipes' shell launcher).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sampo_verl.envs.base import EXTERNAL_MODULES_ENV, external_modules
from sampo_verl.metrics import History, read_metrics
from sampo_verl.patches import ray_loopback_node
from sampo_verl.processes import guard
from sampo_verl.processes.guard import GRACE_S, LOCK_FILE, REFUSED, holder

PACKAGE = "sampo_verl"
RELEASE_WAIT_S = GRACE_S + 10  # a guard whose launcher died stops its trainer within GRACE_S

VERL_LOG = "verl.log"  # in a run folder: verl's console output when the package's commands keep it quiet


def with_sampo_module(modules: str) -> str:
    """A comma-separated ``VERL_USE_EXTERNAL_MODULES`` value with ``sampo_verl`` appended unless listed.

    The user's modules stay first, in their order; empty entries and repeats are dropped.
    """
    return ",".join(dict.fromkeys([*external_modules(modules), PACKAGE]))


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a trainer subprocess: ``sampo_verl`` added to the external
    modules (:func:`with_sampo_module`), then the ``extra`` variables."""
    return {
        **os.environ,
        EXTERNAL_MODULES_ENV: with_sampo_module(os.environ.get(EXTERNAL_MODULES_ENV, "")),
        **extra,
    }


class TrainerRunning(RuntimeError):
    """A trainer launched by another process still holds the run folder's lock."""


def run_process(
    command: list[str],
    workdir: Path,
    env: dict[str, str],
    capture: bool = True,
    timeout: float | None = None,
    lock_dir: Path | None = None,
    log_file: Path | None = None,
) -> None:
    """Run ``command`` in ``workdir`` under a guard (:mod:`sampo_verl.processes.guard`), as its own process group.

    The guard holds the lock file (:data:`~sampo_verl.processes.guard.LOCK_FILE`) of the run's folder
    (``lock_dir``, default ``workdir``) and stops the group when this process dies, however it dies.
    This process stops the group when the run overruns ``timeout`` seconds or the caller is
    interrupted (Ctrl-C, or SIGTERM turned into an exception). Raises :class:`TrainerRunning` when
    a trainer launched earlier still holds that folder's lock (waiting first for one that is being
    stopped), ``RuntimeError`` with the output tail when the run fails or overruns.

    Output: kept in memory (``capture``), shown live (``capture=False``), or appended to ``log_file``
    (stdout and stderr together; the error's tail then comes from that file).
    """
    lock = Path(lock_dir or workdir) / LOCK_FILE
    wait_for_release(lock)
    read_end, write_end = os.pipe()  # the guard sees end-of-file when this process is gone
    guarded = [sys.executable, "-I", guard.__file__, "--parent-fd", str(read_end), "--lock", str(lock)]
    log = open(log_file, "a") if log_file is not None else None
    pipe = log or (subprocess.PIPE if capture else None)
    try:
        proc = subprocess.Popen(
            [*guarded, "--", *command],
            cwd=workdir,
            env=env,
            stdout=pipe,
            stderr=subprocess.STDOUT if log else pipe,
            text=True,
            start_new_session=True,
            pass_fds=(read_end,),
        )
    finally:
        os.close(read_end)
        if log is not None:
            log.close()  # the child holds its own descriptor
    name = " ".join([Path(command[0]).name, *command[1:3]])  # e.g. "python3 -m sampo_verl.main_ppo"
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _stop_group(proc)
        tail = _tail(stdout, stderr, log_file)
        raise RuntimeError(f"{name} overran {timeout:.0f} s and was stopped\n{tail}") from None
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        os.close(write_end)
    if proc.returncode == REFUSED:
        raise TrainerRunning(f"{name}: {stderr.strip() if stderr else 'another trainer holds ' + str(lock)}")
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited with {proc.returncode}\n{_tail(stdout, stderr, log_file)}")


def _tail(stdout: str | None, stderr: str | None, log_file: Path | None) -> str:
    """The end of a failed run's output: its log file's last 9000 characters, or those of its streams."""
    if log_file is not None:
        with open(log_file, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 9000))
            return log.read().decode(errors="replace") + f"\n(the whole output: {log_file})"
    return (stdout or "")[-3000:] + (stderr or "")[-6000:]


def wait_for_release(lock: Path) -> None:
    """Wait for a trainer that is being stopped to let go of ``lock``; raise if it is still there."""
    deadline = time.monotonic() + RELEASE_WAIT_S
    while (pid := holder(lock)) is not None:
        if time.monotonic() > deadline:
            raise TrainerRunning(
                f"a trainer (guard pid {pid}) still runs in {lock.parent}: wait for it, or stop it with "
                f"kill -TERM -{pid}, then rerun"
            )
        time.sleep(1.0)


def _stop_group(proc: subprocess.Popen) -> tuple[str | None, str | None]:
    """SIGTERM the process group of ``proc``, SIGKILL it after the guard's grace period; return the remaining output."""
    with contextlib.suppress(ProcessLookupError):  # the whole group may have exited already
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=GRACE_S)
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
    log_file: Path | None = None,
) -> History:
    """Run ``python -m <module> <overrides>`` in ``workdir``; return the file logger's metrics, step -> values
    (:func:`sampo_verl.metrics.read_metrics`; empty when the run logged no file).

    Raises ``RuntimeError`` with the output tail when the run fails or overruns ``timeout`` seconds.
    Output: as :func:`run_process` (``capture``, or appended to ``log_file``).
    """
    import torch

    env = child_env(
        VERL_FILE_LOGGER_PATH=str(metrics_file),
        TOKENIZERS_PARALLELISM="false",
        **{ray_loopback_node.ENV_VAR: "0"},  # the local cluster stays on loopback (patches/ray_loopback_node.py)
    )
    if torch.cuda.is_available():  # these runs exercise the CPU backend even on a GPU host
        env["VERL_PLATFORM"] = "cpu"
    command = [sys.executable, "-m", module, *overrides]
    run_process(command, workdir, env, capture=capture, timeout=timeout, log_file=log_file)
    return read_metrics(metrics_file) if metrics_file.exists() else {}


def format_duration(seconds: float) -> str:
    """``42s``, ``12m05s``, ``3h07m``."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"
