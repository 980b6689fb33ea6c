"""The sandbox: what code can and cannot do inside it, and that nothing of a call outlives it."""

import os
import shutil
import socket
import threading
import uuid
from pathlib import Path

import pytest

from process_state import alive
from sampo_verl.tools import sandbox
from sampo_verl.tools.sandbox import Limits, SandboxPool, SandboxUnavailable, run_python

MECHANISMS = [mode for mode in ("bwrap", "unshare") if not sandbox._probe(mode)]
ALL_MODES = [*MECHANISMS, "unsandboxed"]
pytestmark = pytest.mark.skipif(not MECHANISMS, reason="neither bubblewrap nor unshare works here")


def leftovers() -> list[int]:
    """Live processes of a call: every one of them has the call's working directory as ``HOME``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                variables = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            home = any(v.startswith(b"HOME=") and sandbox.WORKDIR_PREFIX.encode() in v for v in variables)
            if home and alive(int(entry)):
                found.append(int(entry))
    return found


def contained(code: str, mode: str, **options) -> sandbox.SandboxResult:
    """Run ``code``; assert that no process of it is left afterwards."""
    result = run_python(code, mode=mode, **options)
    assert leftovers() == [], f"processes left behind by {mode}"
    assert result.mode == mode
    return result


@pytest.mark.parametrize("mode", ALL_MODES)
def test_code_runs_and_reports_output_exit_code_and_working_directory(mode):
    result = contained("import os, sys\nprint(os.getcwd())\nprint('oops', file=sys.stderr)\nsys.exit(3)", mode)
    assert result.exit_code == 3 and result.stderr == "oops\n" and not (result.timed_out or result.truncated)
    workdir = result.stdout.strip()
    assert os.path.basename(workdir).startswith("sampo_sandbox_") and not os.path.exists(workdir)  # removed


@pytest.mark.parametrize("mode", ALL_MODES)
def test_the_parents_environment_variables_do_not_reach_the_code(mode, monkeypatch):
    monkeypatch.setenv("SAMPO_TEST_SECRET", "hunter2")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    result = contained("import os, sys\nprint(sorted(os.environ))\nprint(sys.flags.isolated)", mode)
    names, isolated = result.stdout.splitlines()
    assert "SAMPO_TEST_SECRET" not in names and "PYTHONPATH" not in names and "hunter2" not in result.stdout
    assert set(eval(names)) <= {"PATH", "HOME", "LANG", "PWD"} and isolated == "1"


@pytest.mark.parametrize("mode", MECHANISMS)
def test_a_tcp_connection_to_a_host_listener_fails(mode):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\nexcept OSError as error:\n    print('refused', type(error).__name__)"  # noqa: E501
    result = contained(code, mode)
    assert result.stdout.startswith("refused")
    with pytest.raises(socket.timeout):  # nothing reached the listener
        listener.accept()
    listener.close()


@pytest.mark.parametrize("mode", MECHANISMS)
def test_dns_lookups_fail(mode):
    code = "import socket\ntry:\n    print(socket.getaddrinfo('pypi.org', 443))\nexcept OSError as error:\n    print('failed', type(error).__name__)"  # noqa: E501
    assert contained(code, mode).stdout.startswith("failed")


@pytest.mark.parametrize("mode", MECHANISMS)
def test_writing_outside_the_working_directory_fails(mode, tmp_path):
    target = tmp_path / "written_by_sandbox"
    code = f"try:\n    open({str(target)!r}, 'w').write('x')\n    print('wrote')\nexcept OSError as error:\n    print('refused', type(error).__name__)\nopen('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())"  # noqa: E501
    if mode == "unshare" and os.geteuid() != 0:
        pytest.skip("unshare without root keeps the user's own write access (module docstring)")
    written, inside = contained(code, mode).stdout.splitlines()
    assert written.startswith("refused") and inside == "ok" and not target.exists()


def test_bubblewrap_shows_a_read_only_file_system_with_a_private_tmp():
    if "bwrap" not in MECHANISMS:
        pytest.skip("bubblewrap does not work here")
    name = f"/tmp/sampo_sandbox_escape_{uuid.uuid4().hex}"
    code = f"import os\nopen({name!r}, 'w').write('x')\nprint(os.path.exists({name!r}))\ntry:\n    open('/var/tmp/x_{uuid.uuid4().hex}', 'w')\nexcept OSError as error:\n    print(error.errno)"  # noqa: E501
    result = contained(code, "bwrap")
    assert result.stdout.split() == ["True", str(30)]  # EROFS outside; /tmp is the call's own
    assert not os.path.exists(name)


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize(
    "code, error",
    [
        ("print('a\x00b')", "SyntaxError"),  # a NUL byte
        ("print('\ud800')", "SyntaxError: Non-UTF-8 code"),  # a lone surrogate
        ("x = 0\n" + "x += 1\n" * 40_000 + "print(x)", None),  # 280 KiB: over the limit of one argument
    ],
    ids=["nul", "surrogate", "large"],
)
def test_code_python_cannot_read_or_any_size_of_code_gives_a_result(mode, code, error):
    result = contained(code, mode)
    if error is None:
        assert result.exit_code == 0 and result.stdout == "40000\n"
    else:
        assert result.exit_code == 1 and error in result.stderr and not result.timed_out


@pytest.mark.parametrize("mode", MECHANISMS)
def test_temporary_file_systems_are_capped_and_vanish_with_the_call(mode):
    """Files in tmpfs are memory the address-space limit does not see: each tmpfs the call can write is
    its own, capped at ``tmpfs_bytes``, and gone after the call (host /dev/shm and /tmp gain nothing)."""
    code = (
        "import os\n"
        "for folder in ('/tmp', '/dev/shm', '.'):\n"
        "    written = 0\n"
        "    try:\n"
        "        for i in range(64):\n"
        "            with open(os.path.join(folder, f'f{i}'), 'wb') as f:\n"
        "                f.write(b'x' * (1 << 20))\n"
        "            written += 1 << 20\n"
        "    except OSError as error:\n"
        "        print(folder, written, error.errno)\n"
        "    for name in os.listdir(folder):\n"
        "        if name.startswith('f'):\n"
        "            os.remove(os.path.join(folder, name))\n"
    )
    before = {folder: set(os.listdir(folder)) for folder in ("/dev/shm", "/tmp")}
    result = contained(code, mode, limits=Limits(tmpfs_bytes=8 << 20))
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [folder for folder, *_ in lines] == ["/tmp", "/dev/shm", "."], result.stderr
    assert all(int(written) <= 8 << 20 and errno == "28" for _, written, errno in lines)  # ENOSPC at the cap
    assert all(set(os.listdir(folder)) <= names for folder, names in before.items())


@pytest.mark.parametrize("mode", MECHANISMS)
def test_world_writable_folders_of_other_services_stay_untouched(mode):
    """A folder anyone may write (e.g. a Ray session's sockets) is read-only to the call."""
    if mode == "unshare" and os.geteuid() != 0:
        pytest.skip("unshare without root keeps the user's own write access (module docstring)")
    folder = Path(__file__).parent / f".world_writable_{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        folder.chmod(0o777)
        (folder / "socket").write_text("service")
        code = (
            "import os\n"
            "for act in (lambda: os.remove('{0}/socket'), lambda: os.rename('{0}/socket', '{0}/moved'),\n"
            "            lambda: open('{0}/new', 'w')):\n"
            "    try:\n"
            "        act()\n"
            "        print('done')\n"
            "    except OSError as error:\n"
            "        print(error.errno)\n"
        ).format(folder)
        # EROFS; ENOENT where the checkout lies under /tmp or /var/tmp, which the call sees as its own tmpfs
        private = str(folder.resolve()).startswith(("/tmp/", "/var/tmp/"))
        assert contained(code, mode).stdout.split() == ["2" if private else "30"] * 3
        assert sorted(os.listdir(folder)) == ["socket"] and (folder / "socket").read_text() == "service"
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("mode", MECHANISMS)
def test_a_fork_bomb_is_bounded_and_leaves_nothing(mode):
    code = "import os\ncount = 0\nwhile count < 10000:\n    try:\n        os.fork()\n        count += 1\n    except OSError:\n        pass"  # noqa: E501
    result = contained(code, mode, timeout_s=2.0, limits=Limits(processes=16))
    assert result.timed_out or result.exit_code != 0


@pytest.mark.parametrize("mode", MECHANISMS)
def test_the_process_limit_refuses_forks_beyond_it(mode):
    code = "import os, time\nforked = 0\ntry:\n    for _ in range(64):\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        forked += 1\nexcept OSError:\n    pass\nprint(forked)"  # noqa: E501
    forked = int(contained(code, mode, limits=Limits(processes=16)).stdout)
    assert 0 < forked < 16


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_memory_bomb_gets_a_memory_error(mode):
    result = contained("x = bytearray(4 * 2**30)", mode, limits=Limits(memory_bytes=512 << 20))
    assert result.exit_code == 1 and "MemoryError" in result.stderr and not result.timed_out


@pytest.mark.parametrize("mode", ALL_MODES)
def test_an_infinite_loop_is_stopped_at_the_wall_timeout(mode):
    result = contained("while True:\n    pass", mode, timeout_s=1.0)
    assert result.timed_out and result.exit_code != 0 and 1.0 <= result.wall_s < 1.0 + sandbox.KILL_WAIT_S


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_sleeping_program_is_stopped_too(mode):
    result = contained("import time\nprint('start', flush=True)\ntime.sleep(60)", mode, timeout_s=1.0)
    assert result.timed_out and result.stdout == "start\n"


@pytest.mark.parametrize("mode", ALL_MODES)
def test_100_mb_of_output_is_cut_and_the_program_stopped(mode):
    code = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)"
    result = contained(code, mode, max_output_bytes=4096)
    assert result.truncated and len(result.stdout) <= 4096 and set(result.stdout) == {"x"}


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_large_file_stops_at_the_file_size_limit(mode):
    code = "try:\n    open('big', 'wb').write(b'x' * (8 << 20))\nexcept OSError as error:\n    print('refused', error.errno)"  # noqa: E501
    result = contained(code, mode, limits=Limits(file_bytes=1 << 20))
    assert result.stdout.strip() == "refused 27" or result.exit_code == -25  # EFBIG, or SIGXFSZ


@pytest.mark.parametrize("mode", MECHANISMS)
def test_spawned_and_detached_subprocesses_do_not_outlive_the_call(mode):
    code = (
        "import subprocess, sys\n"
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n"
        "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "subprocess.Popen([sys.executable, '-c', 'import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(300)'])\n"  # noqa: E501
        "print('spawned')"
    )
    before = {pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _is_sleep_300(pid)}
    result = contained(code, mode)
    assert result.stdout.split() == ["child", "spawned"]
    after = {pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _is_sleep_300(pid)}
    assert after <= before


def _is_sleep_300(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00300\x00" and alive(pid)
    except OSError:
        return False


# modes, errors and the pool ------------------------------------------------------------------------


def test_unknown_modes_and_bad_timeouts_are_refused():
    with pytest.raises(ValueError, match="unknown mode 'docker'.*SAMPO_SANDBOX"):
        run_python("print(1)", mode="docker")
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        run_python("print(1)", timeout_s=0)


def test_without_a_mechanism_auto_refuses_and_names_the_opt_in(monkeypatch):
    monkeypatch.setattr(sandbox, "_probe", lambda mode: f"{mode} is not installed")
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed.*unshare is not installed.*unsandboxed"):
        run_python("print(1)")
    with pytest.raises(SandboxUnavailable, match="mode 'bwrap' does not work here"):
        run_python("print(1)", mode="bwrap")
    monkeypatch.setenv(sandbox.MODE_VAR, "unsandboxed")
    assert run_python("print(1)").stdout == "1\n"  # opted in by name


def test_the_environment_variable_chooses_the_mode(monkeypatch):
    monkeypatch.setenv(sandbox.MODE_VAR, MECHANISMS[-1])
    assert run_python("print(1)").mode == MECHANISMS[-1]


def test_the_pool_runs_calls_at_once_up_to_its_limit():
    code = "import time\nstart = time.time()\ntime.sleep(0.4)\nprint(start, time.time())"
    results = SandboxPool(max_concurrency=3).map([code] * 9)
    spans = [tuple(map(float, r.stdout.split())) for r in results]
    overlaps = [sum(s <= t < e for s, e in spans) for t, _ in spans]  # calls running when each one started
    assert max(overlaps) == 3 and all(r.exit_code == 0 for r in results)
    with pytest.raises(ValueError, match="max_concurrency"):
        SandboxPool(max_concurrency=0)


def test_calls_from_many_threads_each_get_their_own_uid_and_directory():
    results: list[sandbox.SandboxResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(run_python("import os\nprint(os.getuid(), os.getcwd())")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uids, dirs = zip(*(r.stdout.split() for r in results))
    assert len(set(dirs)) == 8
    if os.geteuid() == 0:
        assert len(set(uids)) == 8 and all(int(uid) >= sandbox.UID_BASE for uid in uids)
