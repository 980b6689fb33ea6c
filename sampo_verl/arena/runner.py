"""``sampo-verl arena run``: every (environment, method, seed) cell through the real trainer.

Each cell is one ``sampo_verl.main_ppo`` run written as :mod:`sampo_verl.arena.layout` describes;
the runner also keeps in the cell folder::

    ckpt/                         verl's checkpoints (trainer.default_local_dir), the latest one only
    val_outcomes.jsonl            every validation's per-task outcomes, all attempts appending
                                  (sampo_verl.trainer.val_outcomes; a step validated again: the last wins)
    attempts/from_step<s>.jsonl   verl's file-logger output of the attempt that started from the
                                  step-s checkpoint (0: from scratch)
    attempts/from_step<s>.started the attempt's start time while it runs (left behind by a killed runner)
    attempts/reused_step0.jsonl   the validation before training, taken from an earlier cell of the same
                                  start (CPU cells; :mod:`sampo_verl.arena.first_validation`)
    runs.jsonl                    one line per attempt: start step, wall time, error or null
    error.log                     traceback and output tail of the latest failed attempt
    verl.log                      verl's console output of every attempt (``--verbose``: shown live instead)
    .trainer.lock                 held by the running trainer's guard (sampo_verl.processes.guard)

and, per environment, ``DIR/<env>/_start/``: what every CPU cell of that environment shares, the
behaviour-cloned start (:func:`sampo_verl.runs.testbed.bc_start`: ``bc/``, ``init_model/``, ``sft_data/``,
the SFT trainer's ``verl.log``), the RL tasks (``rl_data/``) and the start's validation before training
(``first_validation/``). ``layout.find_cells`` does not see it
(no ``seed<k>`` folder).

Kills: every trainer runs under a guard that stops it when the runner dies (``kill -9`` of the
runner or its process group included), and holds the cell's lock, so a rerun never trains a cell
twice at once (it waits for a trainer that is being stopped, and refuses one that still runs).
An attempt the runner could not record (it was killed) is recorded by the next run, with the
wall time until the guard's last heartbeat, so ``done.json`` counts killed attempts too.

Resuming: a cell with ``done.json`` is skipped. Any other cell runs the same command again: verl
resumes from the latest checkpoint in ``ckpt/`` (``trainer.resume_mode=auto``) and logs to a fresh
attempt file, since its file logger truncates the file it opens. After every attempt ``metrics.jsonl``
is rebuilt from the attempt files: each contributes its steps up to the step the next attempt started
from (its later steps were trained again), merged per step as :func:`sampo_verl.metrics.read_metrics`
reads them, one line per step. ``done.json`` holds the summed wall time of the attempts and the last
trained step (lower than ``--steps`` when the collapse detector stopped the run).

Two ways to launch a cell:

- the CPU testbed (default): :func:`sampo_verl.runs.testbed.rl_config` through
  :func:`sampo_verl.runs.agent_run.run_agent`, from the environment's behaviour-cloned start (built once
  per environment) or ``--init-model``;
- ``--recipe recipes/common.sh`` (GPU): ``bash RECIPE ENV METHOD <cell overrides>`` with ``MODEL`` set
  to ``--init-model`` and the cell's seed, step budget, checkpoint folder, task data and file logger.
  :func:`cell_commands` gives one ``arena run`` command per unfinished cell, one scheduler job each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

from sampo_verl.arena import first_validation
from sampo_verl.arena.layout import METRICS_FILE, Cell, mark_done
from sampo_verl.arena.spec import RECIPE_LOGGER, ArenaSpec
from sampo_verl.arena.variants import parse_variant
from sampo_verl.metrics import read_metrics
from sampo_verl.runs.agent_run import CHECKPOINT_DIR, run_agent
from sampo_verl.processes.guard import LOCK_FILE, last_alive
from sampo_verl.processes.launch import VERL_LOG, child_env, format_duration, run_process, wait_for_release
from sampo_verl.processes.progress import StepProgress, rl_progress
from sampo_verl.runs.testbed import bc_start, cpu_testbed, rl_config
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE

START_DIR = "_start"
ATTEMPTS_DIR = "attempts"
RUNS_FILE = "runs.jsonl"
ERROR_FILE = "error.log"
STARTED_SUFFIX = ".started"
CPU_TEST_FREQ = 5
CPU_SAVE_FREQ = 5
KEEP_LAST_CHECKPOINT = "trainer.max_actor_ckpt_to_keep=1"
_ATTEMPT_FILE = re.compile(r"from_step(\d+)\.jsonl")

Echo = Callable[[str], None]


@dataclass
class ArenaProgress:
    """Cells finished, failed and still to run in one ``arena run``, with an estimate of the time left.

    The estimate is the cells still to run times the mean wall time of the cells this run finished,
    or of those earlier runs finished (``earlier``) until it has finished one.
    """

    total: int
    finished: int = 0
    earlier: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> int:
        return self.total - self.finished - len(self.failures)

    def eta(self) -> float | None:
        """Seconds left, or None before any cell time is known."""
        times = self.durations or self.earlier
        if not self.remaining:
            return 0.0
        return self.remaining * sum(times) / len(times) if times else None

    def status(self, now: float | None = None) -> str:
        """E.g. ``3/18 done, 1 failed, 14 to run | elapsed 4m10s | ETA 1h02m``."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        eta = self.eta()
        return (
            f"{self.finished}/{self.total} done, {len(self.failures)} failed, {self.remaining} to run"
            f" | elapsed {format_duration(elapsed)} | ETA {'unknown' if eta is None else format_duration(eta)}"
        )


def _echo(line: str) -> None:
    print(line, flush=True)


def run_arena(spec: ArenaSpec, echo: Echo = _echo) -> ArenaProgress:
    """Run every unfinished cell of ``spec`` one after another; a failing cell is recorded and skipped."""
    cells = spec.cells()
    earlier = [done["wall_time_s"] for done in (cell.done() for cell in cells) if done]
    progress = ArenaProgress(total=len(cells), finished=len(earlier), earlier=earlier)
    echo(
        f"[arena] {len(cells)} cells ({len(spec.envs)} env(s) x {len(spec.methods)} method(s)"
        f" x {len(spec.seeds)} seed(s))"
        f" in {spec.out}: {len(earlier)} finished before, {progress.remaining} to run"
    )
    if not spec.verbose:
        echo(f"[arena] verl's output goes to {VERL_LOG} in each cell's folder (--verbose: live)")
    built: dict[str, Path | Exception] = {}
    for cell in cells:
        if cell.done():
            continue
        name = _name(cell)
        echo(f"[arena] {name}: starting | {progress.status()}")
        try:
            start = _start_model(spec, cell.env, built, echo)
            began = time.monotonic()
            steps = run_cell(spec, cell, start, echo)
        except Exception as err:  # noqa: BLE001  (whatever broke, the cell is recorded and the matrix goes on)
            progress.failures.append(name)
            cell.path.mkdir(parents=True, exist_ok=True)
            (cell.path / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
            echo(f"[arena] {name}: FAILED ({_summary(err)}); see {cell.path / ERROR_FILE} | {progress.status()}")
        else:
            progress.finished += 1
            progress.durations.append(time.monotonic() - began)
            attempts = _runs(cell.path)
            trained = format_duration(sum(run["wall_time_s"] for run in attempts))
            echo(f"[arena] {name}: {steps} steps, {trained} over {len(attempts)} attempt(s) | {progress.status()}")
    failed = f": {', '.join(progress.failures)} (rerun the same command to retry them)" if progress.failures else ""
    echo(f"[arena] {progress.finished}/{progress.total} cells done, {len(progress.failures)} failed{failed}")
    echo(f"[arena] report: sampo-verl arena report {spec.out}")
    return progress


def shared_dir(out: Path, env: str) -> Path:
    """``out/<env>/_start``: the behaviour-cloned start and RL tasks every CPU cell of ``env`` shares."""
    return out / env / START_DIR


def _start_model(spec: ArenaSpec, env: str, built: dict[str, Path | Exception], echo: Echo) -> str:
    """``--init-model`` of ``env``, else its behaviour-cloned start (built on first use, failure remembered)."""
    if env in spec.starts:
        return spec.starts[env]
    if env not in built:
        echo(f"[arena] {env}: behaviour cloning the start model in {shared_dir(spec.out, env)}")
        try:
            folder = shared_dir(spec.out, env)
            built[env] = bc_start(folder, cpu_testbed(env), timeout=spec.timeout, log_file=spec.log_file(folder))
        except Exception as err:  # noqa: BLE001  (each cell of env then fails with it, the others run)
            built[env] = err
    start = built[env]
    if isinstance(start, Path):
        return str(start)
    raise RuntimeError(f"no start model for {env}: behaviour cloning failed ({start!r})") from start


def run_cell(spec: ArenaSpec, cell: Cell, start: str, echo: Echo = _echo) -> int:
    """Train one cell to ``spec.steps`` from model ``start`` (resuming its checkpoint), mark it done.

    Returns the cell's last trained step.
    """
    record_killed_attempts(cell.path)
    resume = checkpoint_step(cell.path / CHECKPOINT_DIR)
    if resume < spec.steps:  # a final checkpoint means the trainer got there (verl would train one more step)
        if resume:
            echo(f"[arena] {_name(cell)}: resuming from the step-{resume} checkpoint")
        _attempt(spec, cell, start, resume)
    history = merge_attempts(cell.path)
    steps = max((step for step, metrics in history.items() if "training/global_step" in metrics), default=0)
    mark_done(cell.path, sum(run["wall_time_s"] for run in _runs(cell.path)), steps)
    return steps


def checkpoint_step(ckpt: Path) -> int:
    """The step of the checkpoint verl resumes from in ``ckpt`` (0: none, training starts from scratch)."""
    if not ckpt.is_dir():
        return 0
    with contextlib.redirect_stdout(io.StringIO()):  # verl prints what it looked for
        latest = find_latest_ckpt_path(str(ckpt))
    return int(latest.rsplit("global_step_", 1)[1]) if latest else 0


def _attempt(spec: ArenaSpec, cell: Cell, start: str, resume: int) -> None:
    """Launch the trainer once; record the attempt in ``runs.jsonl`` and rebuild ``metrics.jsonl``, whatever happens.

    A CPU cell trained from scratch takes the validation before training from an earlier cell of the same
    start when one ran it (:mod:`.first_validation`), or keeps its own for the next.
    """
    metrics_file = cell.path / ATTEMPTS_DIR / f"from_step{resume}.jsonl"
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    cache = None
    if resume == 0 and spec.recipe is None:
        cache = first_validation.cache_file(shared_dir(spec.out, cell.env), start, spec.engine, spec.overrides)
    reused = cache is not None and first_validation.copy_in(cache, cell.path, metrics_file.parent)
    began, error = time.monotonic(), None
    started = metrics_file.with_suffix(STARTED_SUFFIX)  # left behind only when this process is killed
    started.write_text(json.dumps({"from_step": resume, "started": time.time()}), encoding="utf-8")
    name = _name(cell)
    try:
        with StepProgress(metrics_file, spec.steps, f"  {name}", rl_progress(spec.steps, f"  [arena] {name}", "start")):
            _launch(spec, cell, start, metrics_file, [first_validation.NO_VALIDATION_BEFORE_TRAINING] if reused else [])
    except BaseException as err:
        error = _summary(err)
        raise
    finally:
        _record_run(cell.path, resume, time.monotonic() - began, error)
        started.unlink()
        if cache is not None and not reused:
            first_validation.keep(cache, metrics_file, cell.path)
        merge_attempts(cell.path)


def _launch(spec: ArenaSpec, cell: Cell, start: str, metrics_file: Path, extra: list[str]) -> None:
    """One trainer run of the cell: the CPU testbed's (with the ``extra`` overrides), or the recipe's."""
    if spec.recipe is None:
        variant = parse_variant(cell.method)
        testbed = cpu_testbed(cell.env)
        config = rl_config(
            testbed,
            variant.preset,
            cell.seed,
            spec.steps,
            spec.test_freq or CPU_TEST_FREQ,
            save_freq=spec.save_freq or CPU_SAVE_FREQ,
            engine=spec.engine,
        )
        overrides = [KEEP_LAST_CHECKPOINT, *variant.overrides(testbed.rl_groups), *extra, *spec.overrides]
        data_dir = shared_dir(spec.out, cell.env) / "rl_data"
        run_agent(
            cell.path, Path(start), config, overrides, data_dir, timeout=spec.timeout, metrics_file=metrics_file,
            capture=False, log_file=spec.log_file(cell.path),
        )  # fmt: skip
    else:
        command, variables = recipe_launch(spec, cell, start, metrics_file)
        run_process(
            command, cell.path, child_env(**variables), capture=False, timeout=spec.timeout,
            log_file=spec.log_file(cell.path),
        )  # fmt: skip


def _record_run(path: Path, from_step: int, wall_time_s: float, error: str | None) -> None:
    run = {"from_step": from_step, "wall_time_s": round(wall_time_s, 3), "error": error}
    with (path / RUNS_FILE).open("a", encoding="utf-8") as runs:
        runs.write(json.dumps(run) + "\n")


def record_killed_attempts(path: Path) -> int:
    """Record in ``runs.jsonl`` the attempts whose runner was killed before it could; returns how many.

    Such an attempt left its ``.started`` file; it ran until the guard last touched the folder's lock
    file (:func:`sampo_verl.processes.guard.last_alive`, at most a heartbeat early) or its metrics file
    was last written, whichever is later.
    """
    killed = sorted((path / ATTEMPTS_DIR).glob(f"from_step*{STARTED_SUFFIX}"))
    if killed:
        wait_for_release(path / LOCK_FILE)  # the guard of a killed runner touches the lock as it ends
    for started_file in killed:
        started = json.loads(started_file.read_text(encoding="utf-8"))
        metrics_file = started_file.with_suffix(".jsonl")
        ends = [last_alive(path / LOCK_FILE), metrics_file.stat().st_mtime if metrics_file.exists() else None]
        ended = max((t for t in ends if t is not None), default=started["started"])
        wall = max(0.0, ended - started["started"])
        _record_run(path, started["from_step"], wall, "killed: the runner was stopped before the attempt ended")
        started_file.unlink()
    if killed:
        merge_attempts(path)
    return len(killed)


def recipe_launch(spec: ArenaSpec, cell: Cell, start: str, metrics_file: Path) -> tuple[list[str], dict[str, str]]:
    """The command ``bash RECIPE ENV METHOD <overrides>`` of one cell and the variables it is given.

    The recipe's task data go to the cell's own ``data/`` (cells may run as concurrent jobs).
    """
    overrides = [
        f"trainer.default_local_dir={cell.path / CHECKPOINT_DIR}",
        f"sampo.validation.outcomes_file={cell.path / OUTCOMES_FILE}",
        f"data.seed={cell.seed}",
        f"actor_rollout_ref.rollout.seed={cell.seed}",
        "trainer.val_before_train=true",
        KEEP_LAST_CHECKPOINT,
    ]
    if spec.test_freq:
        overrides.append(f"trainer.test_freq={spec.test_freq}")
    if spec.save_freq:
        overrides.append(f"trainer.save_freq={spec.save_freq}")
    variables = {
        "MODEL": start,
        "TOTAL_STEPS": str(spec.steps),
        "DATA_DIR": str(cell.path / "data"),
        "EXPERIMENT": f"{cell.env}_{cell.method}_seed{cell.seed}",
        "LOGGER": os.environ.get("LOGGER", RECIPE_LOGGER),
        "VERL_FILE_LOGGER_PATH": str(metrics_file),
    }
    variant = parse_variant(cell.method)
    overrides += variant.overrides(None)
    return ["bash", str(spec.recipe), cell.env, variant.preset, *overrides, *spec.overrides], variables


def merge_attempts(path: Path) -> dict[int, dict[str, float]]:
    """Rebuild ``path/metrics.jsonl`` from the cell's attempt files (see the module docstring); return it."""
    attempts = sorted(
        (int(match.group(1)), file)
        for file in (path / ATTEMPTS_DIR).glob("from_step*.jsonl")
        if (match := _ATTEMPT_FILE.fullmatch(file.name))
    )
    reused = path / ATTEMPTS_DIR / first_validation.REUSED_ATTEMPT  # the validation before training, copied in
    history: dict[int, dict[str, float]] = read_metrics(reused) if reused.exists() else {}
    for (_, file), upto in zip(attempts, [start for start, _ in attempts[1:]] + [None]):
        for step, metrics in read_metrics(file).items():
            if upto is None or step <= upto:
                history.setdefault(step, {}).update(metrics)
    history = dict(sorted(history.items()))
    if history:
        tmp = path / f"{METRICS_FILE}.tmp"
        tmp.write_text("".join(json.dumps({"step": s, "data": m}) + "\n" for s, m in history.items()), "utf-8")
        os.replace(tmp, path / METRICS_FILE)  # the report may be reading it
    return history


def cell_commands(spec: ArenaSpec) -> list[str]:
    """One ``sampo-verl arena run`` command per unfinished cell: one scheduler job each."""
    common = ["--steps", str(spec.steps), "--out", str(spec.out)]
    for flag, value in (("--test-freq", spec.test_freq), ("--save-freq", spec.save_freq), ("--timeout", spec.timeout)):
        if value is not None:
            common += [flag, f"{value:g}"]
    if spec.recipe is not None:
        common += ["--recipe", str(spec.recipe)]
    commands = []
    for cell in spec.cells():
        if cell.done():
            continue
        start = ["--init-model", spec.starts[cell.env]] if cell.env in spec.starts else []
        which = ["--envs", cell.env, "--methods", cell.method, "--seed", str(cell.seed)]
        argv = ["sampo-verl", "arena", "run", *which, *common, *start, *spec.overrides]
        commands.append(shlex.join(argv))
    return commands


def _runs(path: Path) -> list[dict]:
    """The attempts recorded in ``runs.jsonl`` (a line cut short by a kill is skipped)."""
    runs_file = path / RUNS_FILE
    runs = []
    for line in runs_file.read_text(encoding="utf-8").splitlines() if runs_file.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):
            runs.append(json.loads(line))
    return runs


def _name(cell: Cell) -> str:
    return f"{cell.env}/{cell.method}/seed{cell.seed}"


def _summary(err: BaseException) -> str:
    """``Type: first line of the message`` (``Type`` alone without a message)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
