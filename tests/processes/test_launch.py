"""Trainer launches: a killed launcher never leaves its trainer behind, and one trainer per folder.

The "trainer" here is a shell that starts a child and waits, so that the whole group is checked;
the arena's end-to-end kill test (tests/arena/test_arena_runner.py) kills the real trainer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from process_state import alive, wait_for
from sampo_verl.processes import guard, launch

TRAINER = "sleep 300 & echo $! > child.pid; wait"
LAUNCHER = (
    "import os, sys; from pathlib import Path; from sampo_verl.processes.launch import run_process; "
    "run_process(['bash', '-c', sys.argv[1]], Path(sys.argv[2]), dict(os.environ))"
)


def start_launcher(workdir: Path, script: str = TRAINER) -> subprocess.Popen:
    """A process that launches ``script`` with run_process, in its own session as a user's shell job would be."""
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, script, str(workdir)], start_new_session=True)


def trainer_child(workdir: Path) -> int:
    assert wait_for((workdir / "child.pid").exists, 60), "the trainer never started"
    return int((workdir / "child.pid").read_text())


def test_kill_9_of_the_launchers_group_stops_the_trainer_and_frees_the_folder(tmp_path):
    launcher = start_launcher(tmp_path)
    child = trainer_child(tmp_path)
    assert guard.holder(tmp_path / guard.LOCK_FILE) is not None
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
    assert wait_for(lambda: not alive(child)), "the trainer outlived its launcher"
    assert wait_for(lambda: guard.holder(tmp_path / guard.LOCK_FILE) is None, 5)


def test_a_second_launch_on_a_live_trainers_folder_is_refused_naming_the_pid(tmp_path, monkeypatch):
    launcher = start_launcher(tmp_path)
    try:
        child = trainer_child(tmp_path)
        pid = guard.holder(tmp_path / guard.LOCK_FILE)
        monkeypatch.setattr(launch, "RELEASE_WAIT_S", 1.0)
        with pytest.raises(launch.TrainerRunning, match=f"guard pid {pid}\\) still runs in {tmp_path}"):
            launch.run_process(["bash", "-c", "touch second_ran"], tmp_path, dict(os.environ))
        assert not (tmp_path / "second_ran").exists() and alive(child)
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)
    # once the first trainer is being stopped, a rerun waits for it and then runs
    monkeypatch.setattr(launch, "RELEASE_WAIT_S", 60.0)
    launch.run_process(["bash", "-c", "touch second_ran"], tmp_path, dict(os.environ))
    assert (tmp_path / "second_ran").exists() and not alive(child)


def test_the_guard_refuses_a_held_lock_and_its_driver_dies_with_it(tmp_path):
    lock = tmp_path / guard.LOCK_FILE
    driver = [sys.executable, "-c", "import os, time; open('driver.pid', 'w').write(str(os.getpid())); time.sleep(300)"]
    first = subprocess.Popen([sys.executable, "-I", guard.__file__, "--lock", str(lock), "--", *driver], cwd=tmp_path)
    assert wait_for((tmp_path / "driver.pid").exists, 30)
    pid = int((tmp_path / "driver.pid").read_text())
    second = subprocess.run(
        [sys.executable, "-I", guard.__file__, "--lock", str(lock), "--", "true"], capture_output=True, text=True
    )
    assert second.returncode == guard.REFUSED and f"held by pid {first.pid}" in second.stderr
    first.kill()  # kill -9 of the guard alone: the driver gets SIGTERM from the kernel (PR_SET_PDEATHSIG)
    first.wait()
    assert wait_for(lambda: not alive(pid), 10)
    assert guard.holder(lock) is None


def test_exit_status_and_output_of_a_failing_trainer_reach_the_caller(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3\n.*boom"):
        launch.run_process(["bash", "-c", "echo boom >&2; exit 3"], tmp_path, dict(os.environ))
    assert guard.holder(tmp_path / guard.LOCK_FILE) is None


def test_output_goes_to_the_log_file_and_a_failure_quotes_its_tail(tmp_path, capfd):
    log = tmp_path / "verl.log"
    log.write_text("earlier run\n")
    launch.run_process(["bash", "-c", "echo out; echo err >&2"], tmp_path, dict(os.environ), log_file=log)
    assert log.read_text().splitlines() == ["earlier run", "out", "err"]  # appended, both streams
    command = ["bash", "-c", "head -c 20000 /dev/zero | tr '\\0' x; echo; echo boom >&2; exit 3"]
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3\n.*boom\n\n\(the whole output: .*verl.log\)") as error:
        launch.run_process(command, tmp_path, dict(os.environ), log_file=log)
    assert len(str(error.value)) < 9500  # the tail, not the whole file
    assert "out" not in capfd.readouterr().out


def processes_with(marker: str) -> list[int]:
    """Pids whose environment carries ``marker`` (every process a launch starts inherits it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes() and alive(int(proc.name)):
                pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_kill_9_of_a_real_training_run_leaves_no_process_behind(tmp_path):
    """The toy GRPO run of verl's trainer (driver, Ray's GCS, raylet and workers), killed in its first step."""
    marker = f"SAMPO_KILL_TEST={os.getpid()}_{time.time_ns()}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    command = [sys.executable, "-m", "sampo_verl.runs.toy_run", str(tmp_path), "--steps", "50"]
    launcher = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(processes_with(marker)) > 5, 240), "Ray never started"
        time.sleep(10)  # into the training loop
        before = processes_with(marker)
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: not processes_with(marker), 90), f"left behind: {processes_with(marker)} of {before}"
        assert guard.holder(tmp_path / guard.LOCK_FILE) is None
    finally:
        for pid in processes_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
