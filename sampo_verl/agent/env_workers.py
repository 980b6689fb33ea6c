"""Environments in worker processes, for engines that are not thread-safe or hold the GIL (ALFWorld).

An environment class with ``worker_processes > 0`` (or the agent loop's ``env_workers`` option)
is not built in the agent loop's process: :class:`RemoteEnv` stands in for it, with the same
methods, and every call runs in one of a pool of worker processes (:func:`worker_pool`, one pool
per process and size). A worker hosts many environments and runs one call at a time, so an engine
with module-level state (TextWorld's PDDL parser, fast_downward's ``sys.argv``/``sys.stdout``
rewriting) is never entered twice at once, and the pool's processes use as many cores.

A call waits its turn on the worker (queueing does not count against the timeout), then has
``timeout`` seconds to answer; a worker that overruns is killed and restarted, which also ends the
other environments it hosted (their next call fails: "restarted"). A worker is
``python -m sampo_verl.agent.env_workers FD`` talking over a socket pair (not ``multiprocessing``,
whose spawn and forkserver modes re-import the parent's ``__main__``: a Ray worker's, pytest's);
it imports the module that registered each environment it builds (a user's own too), neither torch
nor verl, and starts in under a second (``benchmarks/bench_envs.py``); it exits when the socket
closes, and within a second of this process dying even when a call hangs.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

from sampo_verl.envs import env_class

ORPHAN_POLL_S = 1.0
WORKER_START_S = 300.0  # a generous bound on a loaded machine
READY = "ready"
_POOLS: dict[int, "EnvWorkerPool"] = {}
_POOLS_LOCK = threading.Lock()


class EnvCallTimeout(RuntimeError):
    """A call in a worker process overran its timeout; the worker was killed."""


class RemoteEnvError(RuntimeError):
    """The environment raised in its worker process (the message carries its type and text)."""


def _serve(conn: Connection) -> None:
    """The worker process: build environments and answer calls on them, one at a time, until the pipe closes."""
    from sampo_verl.envs import make_env

    conn.send(READY)  # imports done: from here on calls are timed
    envs: dict[str, Any] = {}
    while True:
        try:
            op, key, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "make":
                module, name, options = args
                importlib.import_module(module)  # registers the environment (a user's module too)
                envs[key] = make_env(name, **options)
                result = None
            elif op == "close":
                env = envs.pop(key, None)
                result = env.close() if env is not None else None
            else:
                result = getattr(envs[key], op)(*args)
            reply = (True, result)
        except Exception as error:  # noqa: BLE001  (sent back to the episode, which ends failed)
            reply = (False, f"{type(error).__name__}: {error}")
        try:
            conn.send(reply)
        except Exception as error:  # noqa: BLE001  (a result that does not pickle)
            conn.send((False, f"{op} returned something that cannot be sent back: {error}"))


class EnvWorker:
    """One worker process and the pipe to it; calls are serialised by a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: Any = None
        self.conn: Connection | None = None
        self.generation = 0  # bumped at every (re)start: environments of an earlier one are gone
        self.hosted = 0

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sampo_verl.agent.env_workers", str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
            self.conn = Connection(os.dup(ours.fileno()))
        self.generation += 1
        try:
            ready = self.conn.poll(WORKER_START_S) and self.conn.recv() == READY
        except (EOFError, OSError):  # it died while importing
            ready = False
        if not ready:
            self._kill()
            raise RemoteEnvError(f"an environment worker process did not start within {WORKER_START_S:g} s")

    def _kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        if self.conn is not None:
            self.conn.close()
        self.process = self.conn = None

    def call(self, op: str, key: str, args: tuple, timeout: float | None, generation: int | None) -> tuple[Any, int]:
        """Run ``op`` on environment ``key`` in the worker; returns (result, the worker's generation)."""
        with self.lock:  # waiting here is queueing, not part of ``timeout``
            if self.process is None or self.process.poll() is not None:
                self._kill()
                self._start()
            if generation is not None and generation != self.generation:
                raise RemoteEnvError("the environment's worker process was restarted: its state is lost")
            self.conn.send((op, key, args))
            if not self.conn.poll(timeout):
                self._kill()
                raise EnvCallTimeout(f"{op} took over {timeout:g} s in its worker process, which was killed")
            try:
                ok, result = self.conn.recv()
            except (EOFError, OSError):
                self._kill()
                raise RemoteEnvError(f"the worker process died during {op}") from None
            generation = self.generation
        if not ok:
            raise RemoteEnvError(result)
        return result, generation

    def stop(self) -> None:
        with self.lock:
            self._kill()


class EnvWorkerPool:
    """``size`` workers; a new environment goes to the one hosting the fewest."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"env_workers must be >= 1, got {size}")
        self.workers = [EnvWorker() for _ in range(size)]
        self.lock = threading.Lock()

    def pick(self) -> EnvWorker:
        with self.lock:
            worker = min(self.workers, key=lambda w: w.hosted)
            worker.hosted += 1
            return worker

    def release(self, worker: EnvWorker) -> None:
        with self.lock:
            worker.hosted -= 1

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def worker_pool(size: int) -> EnvWorkerPool:
    """This process's pool of ``size`` workers (made on first use; the workers start on their first call)."""
    with _POOLS_LOCK:
        if size not in _POOLS:
            _POOLS[size] = EnvWorkerPool(size)
        return _POOLS[size]


def default_workers(requested: int, sharing: int = 1) -> int:
    """``requested`` workers, at most this machine's cores divided among ``sharing`` processes
    that each run a pool (verl's agent-loop workers, ``rollout.agent.num_workers``); at least 1."""
    return max(1, min(requested, (os.cpu_count() or 1) // max(1, sharing)))


class RemoteEnv:
    """An environment living in a worker process; the methods of :class:`sampo_verl.envs.TextEnv`.

    Construction and every call may raise :class:`RemoteEnvError` or :class:`EnvCallTimeout`.
    """

    def __init__(self, pool: EnvWorkerPool, name: str, options: dict[str, Any], timeout: float | None):
        self.pool, self.worker, self.timeout = pool, pool.pick(), timeout
        self.key, self.closed = uuid.uuid4().hex, False
        try:
            module = env_class(name).__module__
            _, self.generation = self.worker.call("make", self.key, (module, name, options), timeout, None)
        except BaseException:
            self._release()
            raise

    def _call(self, op: str, *args: Any) -> Any:
        try:
            return self.worker.call(op, self.key, args, self.timeout, self.generation)[0]
        except EnvCallTimeout:  # the episode abandons this environment without closing it
            self._release()
            raise

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> Any:
        return self._call("reset", seed, task)

    def step(self, action: str) -> Any:
        return self._call("step", action)

    def expert_action(self) -> str:
        return self._call("expert_action")

    def close(self) -> None:
        try:
            self._call("close")
        finally:
            self._release()

    def _release(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.release(self.worker)


def _exit_when_orphaned(parent: int) -> None:
    """Leave as soon as the agent loop's process is gone, even in the middle of a hung call.

    (``PR_SET_PDEATHSIG`` would fire when the *thread* that started the worker ends: an episode's.)
    """
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    os._exit(1)


def _main(argv: list[str]) -> None:
    """Worker entry point: ``python -m sampo_verl.agent.env_workers FD PARENT_PID``."""
    fd, parent = int(argv[0]), int(argv[1])
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    _serve(Connection(fd))


if __name__ == "__main__":
    _main(sys.argv[1:])
