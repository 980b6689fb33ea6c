"""The sandbox: what code can and cannot do inside it, and that nothing of a call outlives it."""

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from processes import alive
from sampo_verl.tools import sandbox
from sampo_verl.tools.sandbox import Limits, SandboxPool, SandboxUnavailable, run_python

MECHANISMS = [mode for mode in ("bwrap", "unshare") if not sandbox._probe(mode)]
ALL_MODES = [*MECHANISMS, "unsandboxed"]
pytestmark = pytest.mark.skipif(not MECHANISMS, reason="neither bubblewrap nor unshare works here")


def leftovers(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (a call's code is its interpreter's argument)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes() and alive(int(entry)):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def contained(code: str, mode: str, **options) -> sandbox.SandboxResult:
    """Run ``code`` tagged with a unique marker; assert that no process of it is left afterwards."""
    marker = f"marker_{uuid.uuid4().hex}"
    result = run_python(f"# {marker}\n{code}", mode=mode, **options)
    assert leftovers(marker) == [], f"processes left behind by {mode}"
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
