"""A trainer's guard: the process that makes a trainer die with whoever launched it.

``python -I .../sampo_verl/processes/guard.py --parent-fd FD --lock PATH -- COMMAND...`` is what
:func:`sampo_verl.processes.launch.run_process` starts (in a session of its own, so a timeout stops the
whole group); run as a file it imports the standard library only, in well under a second. The guard

- takes an exclusive ``flock`` on ``PATH`` (the run folder's :data:`LOCK_FILE`) and writes its pid
  there; the lock is inherited by the trainer's driver, so it is held while either lives and is
  released by the kernel however they end. A second launch on the same folder sees it held and
  refuses (:func:`holder`);
- starts ``COMMAND`` in the guard's process group, with ``PR_SET_PDEATHSIG`` (Linux) so that the driver
  gets SIGTERM if the guard itself is killed;
- watches ``FD``, the read end of a pipe whose write end only the launcher holds: end-of-file means
  the launcher died (``kill -9`` included), and the guard stops the group (SIGTERM, then SIGKILL
  after :data:`GRACE_S`);
- touches the lock file every :data:`HEARTBEAT_S` seconds, so the wall time of an attempt whose
  launcher was killed can still be counted (:func:`last_alive`).

Ray's own processes (GCS, raylet, workers) share the driver's fate: they exit when it dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

LOCK_FILE = ".trainer.lock"
HEARTBEAT_S = 5.0
GRACE_S = 30.0
REFUSED = 75  # exit status when another guard holds the lock (EX_TEMPFAIL)
_PR_SET_PDEATHSIG = 1


def holder(lock: Path) -> int | None:
    """The pid written in ``lock`` while a guard (or its trainer) holds it; None when nobody holds it."""
    if not lock.exists():
        return None
    with lock.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def last_alive(lock: Path) -> float | None:
    """When the guard last touched ``lock`` (wall clock, seconds since the epoch); None without a lock file."""
    return lock.stat().st_mtime if lock.exists() else None


def _acquire(lock, tries: int = 10) -> bool:
    """Take the exclusive lock; a few short retries ride over :func:`holder`'s brief probe."""
    for _ in range(tries):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.1)
    return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the guard dies (Linux; elsewhere the pipe watch alone acts)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM the group (the guard's, which the trainer shares), SIGKILL it after the grace period."""
    os.killpg(os.getpgrp(), signal.SIGTERM)
    try:
        child.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _watch_launcher(fd: int, child: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 1024):
            pass
    if child.poll() is None:
        with contextlib.suppress(OSError):  # stderr may be a pipe to the dead launcher
            print(f"[guard] the launcher of pid {child.pid} is gone: stopping the trainer", file=sys.stderr, flush=True)
        _stop(child)


def guard(command: Sequence[str], lock_path: Path, parent_fd: int | None) -> int:
    """Run ``command`` under the lock until it ends; returns its exit status (:data:`REFUSED` if locked)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path.open("a+")
    if not _acquire(lock):
        lock.seek(0)
        print(f"[guard] {lock_path} is held by pid {lock.read().strip()}: a trainer runs there", file=sys.stderr)
        return REFUSED
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    os.set_inheritable(lock.fileno(), True)  # the driver holds the lock too, should the guard die first
    # SIGTERM/SIGINT reach the whole group; the guard outlives them to report the child's status
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    child = subprocess.Popen(command, pass_fds=(lock.fileno(),), preexec_fn=_die_with_parent)
    if parent_fd is not None:
        threading.Thread(target=_watch_launcher, args=(parent_fd, child), daemon=True).start()
    while True:
        try:
            return child.wait(HEARTBEAT_S)
        except subprocess.TimeoutExpired:
            os.utime(lock_path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guard.py", description=__doc__.split("\n")[0])
    parser.add_argument("--parent-fd", type=int, default=None, help="read end of the launcher's pipe")
    parser.add_argument("--lock", type=Path, required=True, help="lock file of the run folder")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    status = guard(command, args.lock, args.parent_fd)
    if status != REFUSED:
        os.utime(args.lock)  # the end of the attempt
    return status


if __name__ == "__main__":
    sys.exit(main())
