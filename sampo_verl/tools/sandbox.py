"""Run untrusted Python code (an LLM's tool call) in a sandboxed process.

``run_python(code, timeout_s)`` runs ``code`` in a fresh interpreter and returns its stdout, stderr,
exit code and whether it timed out; it never raises for what the code is or does (a NUL byte, a lone
surrogate or megabytes of code come back as the interpreter's ``SyntaxError``: the code reaches it on
stdin, never on the command line). Every call gets:

- its own network namespace (no network, not even the host's loopback), its own PID namespace (the
  whole process tree dies with the call) and its own mount namespace: the file system is read-only
  except for private, size-capped tmpfs mounts (:attr:`Limits.tmpfs_bytes` each) at ``/tmp``, which
  holds the call's working directory (also ``HOME``), and ``/dev/shm`` (and ``/var/tmp`` under
  ``unshare``); they vanish with the call, so nothing it wrote outlives it;
- a cleared environment (``PATH``, ``HOME``, ``LANG`` only) and ``python -I`` (no ``PYTHON*`` variables,
  no user site);
- resource limits (:class:`Limits`: CPU seconds, address space, processes, file size, open files);
  run as root, the code runs as an unprivileged uid of its own (``UID_BASE`` + pid x slot): the
  process limit then holds per call (the kernel does not apply it to uid 0), and whatever is left of
  that uid after the call is killed;
- a wall-clock timeout that kills the process tree, and output bounded to ``max_output_bytes``
  (beyond it the program is stopped and ``truncated`` is set).

Mechanisms (``mode``): ``bwrap`` (bubblewrap, Debian's ``bubblewrap`` package), ``unshare``
(util-linux; as root, the same namespaces and mounts as ``bwrap``; not as root, the mounts that a user
namespace may not change stay writable where the user may write), ``auto`` (the first of these that
works here, probed once) and ``unsandboxed`` (limits, timeout, a working directory in the host's temp
folder and a cleared environment only: the code can reach the network and the file system). ``auto``
never falls back to ``unsandboxed``: where neither mechanism works it raises
:class:`SandboxUnavailable`; opt in by name (``mode="unsandboxed"`` or ``SAMPO_SANDBOX=unsandboxed``).

The interpreter is ``SAMPO_SANDBOX_PYTHON`` or the first of this Python's base interpreter and
``/usr/bin/python3`` that the sandbox's uid can run (a pyenv under ``/root`` is not readable by it).
"""

from __future__ import annotations

import collections
import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable

MODES = ("auto", "bwrap", "unshare", "unsandboxed")
MODE_VAR = "SAMPO_SANDBOX"
PYTHON_VAR = "SAMPO_SANDBOX_PYTHON"
CONCURRENCY_VAR = "SAMPO_SANDBOX_CONCURRENCY"
UID_BASE = 1 << 29  # + pid * SLOTS + slot: a uid no account uses, one per concurrent call
SLOTS = 256  # concurrent calls per process
MAX_OUTPUT_BYTES = 1 << 20
KILL_WAIT_S = 5.0
READ_CHUNK = 1 << 16
WORKDIR_PREFIX = "sampo_sandbox_"


class SandboxUnavailable(RuntimeError):
    """No sandbox mechanism works on this machine (and ``unsandboxed`` was not asked for)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one call (``setrlimit``); ``processes`` counts the call's own processes."""

    memory_bytes: int = 1 << 30
    processes: int = 32
    file_bytes: int = 16 << 20
    open_files: int = 64
    tmpfs_bytes: int = 64 << 20  # each private tmpfs (/tmp with the working directory, /dev/shm, /var/tmp)
    cpu_grace_s: int = 1  # CPU seconds allowed beyond the wall timeout


@dataclass(frozen=True)
class SandboxResult:
    """What a call produced; ``exit_code`` is negative for a signal (e.g. -9 when killed)."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    wall_s: float = 0.0
    mode: str = ""


# uids ----------------------------------------------------------------------------------------------


class _UidSlots:
    """Hands out this process's per-call uids (only when running as root), least recently used first:
    bubblewrap leaves an orphaned zombie that init may reap seconds later, and zombies count against
    the uid's process limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: collections.deque[int] = collections.deque()
        self._pid = -1

    def acquire(self) -> int:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: its own range
                self._pid, self._free = os.getpid(), collections.deque(range(SLOTS))
            if not self._free:
                raise RuntimeError(f"sandbox: more than {SLOTS} concurrent calls in one process")
            return UID_BASE + self._pid * SLOTS + self._free.popleft()

    def release(self, uid: int) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._free.append((uid - UID_BASE) % SLOTS)


_UIDS = _UidSlots()


def _drops_privileges() -> bool:
    return os.geteuid() == 0


def _processes_of(uid: int, zombies: bool = False) -> list[int]:
    """Processes of ``uid``, live ones only unless ``zombies`` (they hold nothing but their pid)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    if zombies or stat.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                        pids.append(int(entry))
            except (OSError, IndexError):
                pass
    return pids


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` until none is left (a fork bomb keeps forking for a while)."""
    deadline = time.monotonic() + KILL_WAIT_S
    while (pids := _processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


# the interpreter and the mechanisms ----------------------------------------------------------------


def _others_can_run(path: str) -> bool:
    """Whether a uid other than the owner's may execute ``path`` (every parent directory searchable)."""
    path = os.path.realpath(path)
    try:
        if os.stat(path).st_mode & 0o005 != 0o005:
            return False
        parent = os.path.dirname(path)
        while True:
            if os.stat(parent).st_mode & 0o001 == 0:
                return False
            if parent == "/":
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


@functools.cache
def sandbox_python() -> str:
    """The interpreter the sandbox runs (module docstring)."""
    if os.environ.get(PYTHON_VAR):
        return os.environ[PYTHON_VAR]
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)), "/usr/bin/python3"]
    for candidate in candidates:
        if os.path.exists(candidate) and (not _drops_privileges() or _others_can_run(candidate)):
            return candidate
    raise SandboxUnavailable(
        f"sandbox: none of {candidates} can be run by an unprivileged uid; install python3 (apt) or set "
        f"{PYTHON_VAR} to a world-readable Python 3"
    )


# mounts the unshare mode makes as root inside its mount namespace, then runs the rest as the call:
# every mount read-only, a capped private tmpfs at each writable temp folder, the working directory
_UNSHARE_MOUNTS = """set -e
size=$1 workdir=$2 owner=$3
shift 3
awk '{print $2}' /proc/self/mounts | while read -r point; do mount -o remount,bind,ro "$point" 2>/dev/null || true; done
for folder in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o "size=$size,mode=1777,nosuid,nodev" sandbox "$folder"; done
mkdir "$workdir"
[ -z "$owner" ] || chown "$owner:$owner" "$workdir"
cd "$workdir"
unset OLDPWD
exec "$@"
"""


def _wrapper(mode: str, workdir: str, uid: int | None, limits: Limits) -> list[str]:
    """The command that runs the interpreter in ``mode``'s sandbox as ``uid`` (None: as we are).
    ``setpriv`` drops the privileges (``Popen(user=...)`` would also make Python fork, not vfork);
    ``unshare`` needs root for the namespaces and mounts, so it drops them inside, after mounting."""
    owner = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    size = str(limits.tmpfs_bytes)
    if mode == "bwrap":
        return [
            *owner, "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/",
            "--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--size", size, "--tmpfs", "/tmp", "--tmpfs", "/run", "--dir", workdir, "--chdir", workdir,
            "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", workdir,
            "--setenv", "LANG", "C.UTF-8", "--",
        ]  # fmt: skip
    if mode == "unshare":
        namespaces = ["unshare", "--net", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc"]
        if uid is None:
            namespaces.insert(1, "--map-root-user")
        mounts = ["sh", "-c", _UNSHARE_MOUNTS, "sh", size, workdir, "" if uid is None else str(uid)]
        return [*namespaces, "--", *mounts, *owner]
    return owner


@functools.cache
def _probe(mode: str) -> str:
    """'' when ``mode`` runs a program here, else why not."""
    for tool in (mode, "prlimit", *(["setpriv"] if _drops_privileges() else [])):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        result = _run("print('ok')", 10.0, mode, Limits(), MAX_OUTPUT_BYTES)
    except (OSError, SandboxUnavailable) as error:
        return str(error)
    if result.stdout.strip() != "ok":
        return f"exit code {result.exit_code}: {result.stderr.strip()[-300:]}"
    return ""


def resolve_mode(mode: str | None = None) -> str:
    """The mechanism a call with ``mode`` uses (``None``: ``SAMPO_SANDBOX``, else ``auto``)."""
    mode = mode or os.environ.get(MODE_VAR) or "auto"
    if mode not in MODES:
        raise ValueError(f"sandbox: unknown mode {mode!r} (mode / {MODE_VAR}); choose one of {MODES}")
    if mode == "unsandboxed":
        if missing := [tool for tool in ("prlimit", "setpriv") if shutil.which(tool) is None]:
            raise SandboxUnavailable(f"sandbox: {' and '.join(missing)} (util-linux) not installed")
        return mode
    if mode != "auto":
        if reason := _probe(mode):
            raise SandboxUnavailable(f"sandbox: mode {mode!r} does not work here: {reason}")
        return mode
    reasons = {candidate: _probe(candidate) for candidate in ("bwrap", "unshare")}
    for candidate, reason in reasons.items():
        if not reason:
            return candidate
    raise SandboxUnavailable(
        "sandbox: no mechanism works here ("
        + "; ".join(f"{m}: {r}" for m, r in reasons.items())
        + "). Install bubblewrap (apt-get install bubblewrap), or run code without isolation by name: "
        f"mode='unsandboxed' ({MODE_VAR}=unsandboxed; tir_math: env option sandbox_mode=unsandboxed)"
    )


# one call ------------------------------------------------------------------------------------------


def _prlimit(limits: Limits, cpu_s: int, processes: int) -> list[str]:
    """util-linux's ``prlimit`` prefix that sets the call's limits (a ``preexec_fn`` would make Python
    fork the whole parent, 25 ms more per call from a trainer-sized process, instead of vfork)."""
    values = {
        "cpu": cpu_s, "as": limits.memory_bytes, "nproc": processes, "fsize": limits.file_bytes,
        "nofile": limits.open_files, "core": 0,
    }  # fmt: skip
    return ["prlimit", *(f"--{name}={value}:{value}" for name, value in values.items()), "--"]


def _collect(process: subprocess.Popen, timeout_s: float, max_bytes: int) -> tuple[bytes, bytes, bool, bool]:
    """Read both pipes until the process closes them, the deadline passes or the output is too long."""
    buffers = {process.stdout: bytearray(), process.stderr: bytearray()}
    deadline = time.monotonic() + timeout_s
    timed_out = truncated = False
    with selectors.DefaultSelector() as selector:
        for pipe in buffers:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffers[key.fileobj] += chunk
            if sum(map(len, buffers.values())) > max_bytes:
                truncated = True
                break
    return bytes(buffers[process.stdout]), bytes(buffers[process.stderr]), timed_out, truncated


def _stop(process: subprocess.Popen, uid: int | None) -> int:
    """Kill the call's process tree; its exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    code = process.wait()
    if uid is not None:
        _kill_uid(uid)
    return code


def run_python(
    code: str,
    timeout_s: float = 10.0,
    mode: str | None = None,
    limits: Limits = Limits(),
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> SandboxResult:
    """Run ``code`` with ``python -I`` in a sandbox (module docstring); never raises for what the
    code does, only for a sandbox that cannot start (:class:`SandboxUnavailable`, bad arguments)."""
    if timeout_s <= 0:
        raise ValueError(f"sandbox: timeout_s must be > 0, got {timeout_s}")
    return _run(code, timeout_s, resolve_mode(mode), limits, max_output_bytes)


def _run(code: str, timeout_s: float, mode: str, limits: Limits, max_output_bytes: int) -> SandboxResult:
    uid = _UIDS.acquire() if _drops_privileges() else None
    # the limit counts the uid's processes, so it comes on top of those already there (unreaped
    # zombies of earlier calls; without a uid of our own, every process of the user)
    processes = limits.processes + len(_processes_of(os.getuid() if uid is None else uid, zombies=True))
    on_host = mode == "unsandboxed"  # else the working directory lives in the call's own /tmp
    workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX) if on_host else f"/tmp/{WORKDIR_PREFIX}{uuid.uuid4().hex[:8]}"
    source = tempfile.TemporaryFile()
    started = time.monotonic()
    try:
        if uid is not None and on_host:
            os.chown(workdir, uid, uid)
        cpu_s = int(timeout_s) + 1 + limits.cpu_grace_s
        interpreter = [sandbox_python(), "-I", "-"]  # the program from stdin, whatever its size or bytes
        command = [*_prlimit(limits, cpu_s, processes), *_wrapper(mode, workdir, uid, limits), *interpreter]
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
        source.write(code.encode("utf-8", "surrogatepass"))
        source.seek(0)
        process = subprocess.Popen(
            command,
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir if on_host else "/",
            env=environment,
            start_new_session=True,
        )
        try:
            stdout, stderr, timed_out, truncated = _collect(process, timeout_s, max_output_bytes)
        finally:
            exit_code = _stop(process, uid)
        process.stdout.close()
        process.stderr.close()
    finally:
        if uid is not None:
            _UIDS.release(uid)
        source.close()
        if on_host:
            shutil.rmtree(workdir, ignore_errors=True)
    return SandboxResult(
        stdout=stdout[:max_output_bytes].decode("utf-8", "replace"),
        stderr=stderr[:max_output_bytes].decode("utf-8", "replace"),
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=truncated,
        wall_s=time.monotonic() - started,
        mode=mode,
    )


# many calls ----------------------------------------------------------------------------------------


@dataclass
class SandboxPool:
    """Runs many calls at once, at most ``max_concurrency`` at a time (thread-safe: environments on
    many threads share one pool); ``options`` are :func:`run_python`'s keyword arguments."""

    max_concurrency: int = 16
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrency <= SLOTS:
            raise ValueError(f"sandbox: max_concurrency must be in [1, {SLOTS}], got {self.max_concurrency}")
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    def run(self, code: str, **options) -> SandboxResult:
        with self._slots:
            return run_python(code, **{**self.options, **options})

    def map(self, codes: Iterable[str], **options) -> list[SandboxResult]:
        codes = list(codes)
        with ThreadPoolExecutor(max(1, min(self.max_concurrency, len(codes)))) as executor:
            return list(executor.map(lambda code: self.run(code, **options), codes))



@functools.cache
def shared_pool() -> SandboxPool:
    """The process's pool for environments (``SAMPO_SANDBOX_CONCURRENCY`` calls at once, default 16)."""
    return SandboxPool(int(os.environ.get(CONCURRENCY_VAR, "16")))
