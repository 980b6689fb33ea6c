"""Helpers of the tests that start, kill and watch processes."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def wait_for(condition, seconds: float = 30.0) -> bool:
    """Poll ``condition()`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def state(pid: int) -> str:
    """The state letter of a process (``Z``: exited, not yet reaped), or ``gone``."""
    # a process that exits between open and read raises ESRCH (ProcessLookupError) instead of ENOENT
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return "gone"


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting to be reaped."""
    return state(pid) not in ("gone", "Z")
