"""Launch a verl entry point (``verl.trainer.main_ppo`` or ``sampo_verl.main_ppo``) as a subprocess.

Shared by the toy run, the end-to-end tests, the quickstart and the arena: the child gets
``VERL_USE_EXTERNAL_MODULES=sampo_verl`` (every Ray process registers the package) and verl's file
logger path, and a run that overruns ``timeout`` is stopped with its whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch


def read_metrics(metrics_file: Path) -> list[dict]:
    """The records ``{"step": N, "data": {...}}`` of verl's file logger (empty if there is no file)."""
    if not metrics_file.exists():
        return []
    return [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]


def run_main_ppo(
    workdir: Path,
    overrides: list[str],
    metrics_file: Path,
    capture: bool = True,
    module: str = "verl.trainer.main_ppo",
    timeout: float | None = None,
) -> list[dict]:
    """Run ``python -m <module> <overrides>`` in ``workdir`` and return the file logger's records.

    Raises ``RuntimeError`` with the output tail when the run fails or overruns ``timeout`` seconds.
    """
    env = {
        **os.environ,
        "VERL_USE_EXTERNAL_MODULES": "sampo_verl",
        "VERL_FILE_LOGGER_PATH": str(metrics_file),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if torch.cuda.is_available():  # these runs exercise the CPU backend even on a GPU host
        env["VERL_PLATFORM"] = "cpu"
    pipe = subprocess.PIPE if capture else None
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *overrides],
        cwd=workdir,
        env=env,
        stdout=pipe,
        stderr=pipe,
        text=True,
        start_new_session=True,  # one process group: a timeout stops the driver and what it started
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        tail = (stdout or "")[-3000:] + (stderr or "")[-6000:]
        raise RuntimeError(f"{module} overran {timeout:.0f} s and was stopped\n{tail}") from None
    if proc.returncode != 0:
        tail = (stdout or "")[-3000:] + (stderr or "")[-6000:]
        raise RuntimeError(f"{module} exited with {proc.returncode}\n{tail}")
    return read_metrics(metrics_file)
