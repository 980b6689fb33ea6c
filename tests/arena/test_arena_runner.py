"""``python -m sampo_verl.arena run``: the matrix runner.

Unit tests stand a fake in for the trainer launch (failures, skipping, merging, the GPU recipe path,
progress lines). The end-to-end test runs 2 methods x 1 env x 1 seed x 2 steps through the real
trainer from a tiny behaviour-cloned start, resumes an interrupted cell and builds the report on
the result (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from process_state import state, wait_for
from sampo_verl.runs import testbed
from sampo_verl.arena import runner
from sampo_verl.arena.__main__ import build_parser, main
from sampo_verl.arena.layout import cell_dir, find_cells, mark_done
from sampo_verl.arena.report import build_report, load_results
from sampo_verl.arena.summary import success_metric, summarise_methods
from sampo_verl.processes.launch import format_duration
from sampo_verl.main_ppo import CONFIG_DIR
from sampo_verl.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]
VAL_KEY = "val-core/sokoban/acc/mean@1"


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_lines(path: Path, records: list[tuple[int, dict]], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in records) + tail)


@pytest.fixture
def start_model(tmp_path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return model


@pytest.fixture
def fake_trainer(monkeypatch):
    """Stand-in for ``run_agent``: logs validation at step 0 and steps 1..N; methods in ``fail`` raise instead."""
    calls, fail = [], set()

    def run_agent(workdir, model_dir, config, extra_overrides, data_dir, timeout=None, metrics_file=None, **output):
        calls.append((config.method, metrics_file.name))
        if config.method in fail:
            raise RuntimeError("python3 -m sampo_verl.main_ppo exited with 1\nError: the trainer broke")
        records = [(0, {VAL_KEY: 0.25})]
        records += [(s, {"training/global_step": s, "sampo/success_rate": 0.1 * s}) for s in range(1, config.steps + 1)]
        write_lines(metrics_file, records)
        return []

    monkeypatch.setattr(runner, "run_agent", run_agent)
    return calls, fail


def test_tir_math_and_webshop_cells_train_on_their_cpu_testbeds(tmp_path, start_model, monkeypatch):
    """Finding 1 on TIR-Math (grpo vs grpo_seqmean) and WebShop run as arena cells of their testbeds."""
    configs = []

    def run_agent(workdir, model_dir, config, extra_overrides, data_dir, timeout=None, metrics_file=None, **output):
        configs.append(config)
        write_lines(metrics_file, [(0, {VAL_KEY: 0.0}), (1, {"training/global_step": 1})])
        return []

    monkeypatch.setattr(runner, "run_agent", run_agent)
    argv = ["run", "--envs", "tir_math,webshop", "--methods", "grpo,grpo_seqmean", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "arena"), "--init-model", str(start_model)]) == 0
    assert sorted((c.env, c.method) for c in configs) == [
        (env, method) for env in ("tir_math", "webshop") for method in ("grpo", "grpo_seqmean")
    ]
    assert {config.engine for config in configs} == {"hf"}  # the default rollout engine of CPU cells
    configs.clear()
    argv[4] = "grpo"  # the --methods value
    assert main([*argv, "--out", str(tmp_path / "vllm"), "--init-model", str(start_model), "--engine", "vllm"]) == 0
    assert len(configs) == 2 and {config.engine for config in configs} == {"vllm"}
    for config in configs:
        tb = testbed.cpu_testbed(config.env)
        assert (config.env_options, config.max_turns) == (tb.env_options, tb.max_turns)
        assert (config.max_prompt_length, config.max_response_length) == (tb.max_prompt_length, tb.max_response_length)


def test_durations_and_progress_line():
    assert [format_duration(s) for s in (0, 42.4, 725, 3725)] == ["0s", "42s", "12m05s", "1h02m"]
    progress = runner.ArenaProgress(total=18, finished=3, earlier=[50.0, 60.0, 70.0], started=0.0)
    assert progress.status(now=250) == "3/18 done, 0 failed, 15 to run | elapsed 4m10s | ETA 15m00s"
    progress.finished += 1
    progress.durations.append(120.0)  # this run's own cells take over from earlier runs' times
    progress.failures.append("sokoban/sapo/seed0")
    assert progress.status(now=3900) == "4/18 done, 1 failed, 13 to run | elapsed 1h05m | ETA 26m00s"
    fresh = runner.ArenaProgress(total=2, started=0.0)
    assert fresh.status(now=5) == "0/2 done, 0 failed, 2 to run | elapsed 5s | ETA unknown"
    assert runner.ArenaProgress(total=1, finished=1).eta() == 0.0


def test_failing_cell_is_recorded_finished_cell_skipped_and_a_rerun_retries(
    tmp_path, start_model, fake_trainer, capsys
):
    calls, fail = fake_trainer
    out = tmp_path / "arena"
    finished = cell_dir(out, "sokoban", "grpo", 0)
    finished.mkdir(parents=True)
    mark_done(finished, 30.0, 2)
    fail.add("gspo")
    argv = ["run", "--envs", "sokoban", "--methods", "grpo,gspo,sapo", "--steps", "2", "--out", str(out)]
    argv += ["--init-model", str(start_model)]

    assert main(argv) == 1
    assert calls == [("gspo", "from_step0.jsonl"), ("sapo", "from_step0.jsonl")]  # grpo finished: not launched
    gspo, sapo = cell_dir(out, "sokoban", "gspo", 0), cell_dir(out, "sokoban", "sapo", 0)
    assert not (gspo / "done.json").exists()
    assert "Error: the trainer broke" in (gspo / "error.log").read_text()
    assert [run["error"] for run in lines_of(gspo / "runs.jsonl")] == [
        "RuntimeError: python3 -m sampo_verl.main_ppo exited with 1"
    ]
    done = json.loads((sapo / "done.json").read_text())
    assert done["steps"] == 2 and done["wall_time_s"] == lines_of(sapo / "runs.jsonl")[0]["wall_time_s"]
    assert sorted(read_metrics(sapo / "metrics.jsonl")) == [0, 1, 2]
    printed = capsys.readouterr().out
    assert "3 cells (1 env(s) x 3 method(s) x 1 seed(s))" in printed and "1 finished before, 2 to run" in printed
    assert "sokoban/gspo/seed0: FAILED (RuntimeError: python3 -m sampo_verl.main_ppo exited with 1)" in printed
    assert "sokoban/sapo/seed0: 2 steps, " in printed and "| 2/3 done, 1 failed, 0 to run" in printed
    assert "2/3 cells done, 1 failed: sokoban/gspo/seed0" in printed

    fail.clear()
    calls.clear()
    assert main(argv) == 0  # the same command retries exactly the failed cell
    assert calls == [("gspo", "from_step0.jsonl")]
    assert json.loads((gspo / "done.json").read_text())["steps"] == 2
    assert [(c.method, c.done() is not None) for c in find_cells(out)] == [("gspo", True), ("sapo", True)]


def test_failed_behaviour_cloning_fails_that_environments_cells_only(tmp_path, fake_trainer, monkeypatch, capsys):
    calls, _ = fake_trainer
    built = []

    def bc_start(workdir, tb, timeout=None, log_file=None):
        built.append(tb.env)
        if tb.env == "sokoban":
            raise subprocess.CalledProcessError(1, ["torchrun"])
        return workdir / "bc"

    monkeypatch.setattr(runner, "bc_start", bc_start)
    argv = ["run", "--envs", "sokoban,frozenlake", "--methods", "grpo,gspo", "--steps", "1", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert built == ["sokoban", "frozenlake"]  # once per environment, the failure remembered
    assert calls == [("grpo", "from_step0.jsonl"), ("gspo", "from_step0.jsonl")]  # frozenlake's
    printed = capsys.readouterr().out
    assert printed.count("behaviour cloning failed") == 2 and "2/4 cells done, 2 failed" in printed


@pytest.mark.parametrize("verbose", [False, True])
def test_verl_output_goes_to_each_folders_log_unless_verbose(tmp_path, monkeypatch, capsys, verbose):
    outputs = []

    def bc_start(workdir, tb, timeout=None, log_file=None):
        outputs.append(("bc", log_file))
        return workdir / "bc"

    def run_agent(workdir, model_dir, config, extra_overrides, data_dir, timeout=None, metrics_file=None, **output):
        outputs.append(("rl", output))
        write_lines(metrics_file, [(0, {VAL_KEY: 0.25}), (1, {"training/global_step": 1, "sampo/success_rate": 0.5})])

    monkeypatch.setattr(runner, "bc_start", bc_start)
    monkeypatch.setattr(runner, "run_agent", run_agent)
    out = tmp_path / "arena"
    argv = ["run", "--envs", "frozenlake", "--methods", "grpo", "--steps", "1", "--out", str(out)]
    assert main(argv + ["--verbose"] * verbose) == 0
    cell = cell_dir(out, "frozenlake", "grpo", 0)
    assert outputs == [
        ("bc", None if verbose else out / "frozenlake" / "_start" / "verl.log"),
        ("rl", {"capture": False, "log_file": None if verbose else cell / "verl.log"}),
    ]
    captured = capsys.readouterr()
    assert ("verl's output goes to verl.log in each cell's folder" in captured.out) is not verbose
    # the cell's validation line, and its progress bar on stderr
    assert "[arena] frozenlake/grpo/seed0 step 0/1: held-out success 0.250 (start)" in captured.out
    assert "frozenlake/grpo/seed0: 100%" in captured.err and "train success 0.500" in captured.err


def test_a_recipes_output_goes_to_the_cells_log(tmp_path):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text('#!/usr/bin/env bash\necho "verl says hello"\necho "and warns" >&2\n')
    out = tmp_path / "arena"
    argv = ["run", "--envs", "sokoban", "--methods", "gspo", "--steps", "1", "--out", str(out)]
    main([*argv, "--recipe", str(recipe), "--init-model", "Qwen/Qwen3-4B"])
    log = (cell_dir(out, "sokoban", "gspo", 0) / "verl.log").read_text()
    assert "verl says hello" in log and "and warns" in log


def test_attempts_merge_up_to_where_the_next_attempt_resumed(tmp_path):
    attempts = tmp_path / runner.ATTEMPTS_DIR
    first = [(0, {"val": 0.1}), (1, {"train": 1.0, "x": 1.0}), (2, {"train": 2.0, "x": 2.0}), (3, {"x": 3.0})]
    write_lines(attempts / "from_step0.jsonl", first, tail='{"step": 4, "da')  # killed mid-line in step 4
    write_lines(attempts / "from_step2.jsonl", [(2, {"val": 0.5}), (3, {"train": 3.0}), (4, {"train": 4.0})])
    expected = {
        0: {"val": 0.1},
        1: {"train": 1.0, "x": 1.0},
        2: {"train": 2.0, "x": 2.0, "val": 0.5},
        3: {"train": 3.0},  # the first attempt's step 3 was trained again from the step-2 checkpoint
        4: {"train": 4.0},
    }
    assert runner.merge_attempts(tmp_path) == expected
    assert [(r["step"], r["data"]) for r in lines_of(tmp_path / "metrics.jsonl")] == list(expected.items())
    assert runner.merge_attempts(tmp_path) == expected  # rebuilding is idempotent


def test_checkpoint_step_and_a_cell_killed_after_its_final_checkpoint(tmp_path, start_model, fake_trainer):
    calls, _ = fake_trainer
    ckpt = tmp_path / "ckpt"
    assert runner.checkpoint_step(ckpt) == 0
    ckpt.mkdir()
    (ckpt / "latest_checkpointed_iteration.txt").write_text("3")
    assert runner.checkpoint_step(ckpt) == 0  # the tracker names a folder that is not there: verl starts over
    (ckpt / "global_step_3").mkdir()
    assert runner.checkpoint_step(ckpt) == 3

    spec = runner.ArenaSpec(tmp_path / "arena", ("sokoban",), ("grpo",), (0,), 2, starts={"sokoban": str(start_model)})
    (cell,) = spec.cells()
    (cell.path / "ckpt" / "global_step_2").mkdir(parents=True)
    (cell.path / "ckpt" / "latest_checkpointed_iteration.txt").write_text("2")
    write_lines(
        cell.path / "attempts" / "from_step0.jsonl",
        [(1, {"training/global_step": 1}), (2, {"training/global_step": 2})],
    )
    runner.run_arena(spec, echo=lambda line: None)
    assert calls == []  # verl would train a third step
    assert cell.done()["steps"] == 2 and sorted(read_metrics(cell.metrics_path)) == [1, 2]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"--methods": "grpo,bogus"}, r"--methods: unknown preset\(s\) \['bogus'\]; known: \['cispo'"),
        ({"--envs": "chess"}, "no CPU testbed 'chess'; known: "),
        ({"--steps": "0"}, "--steps must be >= 1, got 0"),
        ({"--methods": "grpo,grpo"}, "--methods repeats a value: grpo,grpo"),
        ({"--init-model": "/no/such/model"}, r"--init-model /no/such/model \(for sokoban\): not a local model folder"),
        ({"--recipe": str(REPO / "recipes" / "common.sh")}, r"--recipe needs --init-model for \['sokoban'\]"),
        ({"--print-commands": None}, "--print-commands needs --recipe"),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, changes, message, fake_trainer):
    calls, _ = fake_trainer
    flags = {"--envs": "sokoban", "--methods": "grpo", "--steps": "2", "--out": str(tmp_path / "arena"), **changes}
    argv = [word for flag, value in flags.items() for word in (flag, value) if word is not None]
    with pytest.raises(SystemExit, match=f"^arena run: {message}"):
        main(["run", *argv])
    assert calls == [] and not (tmp_path / "arena").exists()


FAKE_RECIPE = """#!/usr/bin/env bash
printf '%s\\n' "$@" > args.txt
env | grep -E '^(MODEL|TOTAL_STEPS|DATA_DIR|EXPERIMENT|LOGGER|VERL_FILE_LOGGER_PATH)=' | sort > env.txt
printf '{"step": 3, "data": {"training/global_step": 3}}\\n' > "$VERL_FILE_LOGGER_PATH"
"""


def test_recipe_cells_pass_seed_steps_checkpoints_and_logger_to_the_launcher(tmp_path):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text(FAKE_RECIPE)
    out = tmp_path / "arena"
    argv = ["run", "--envs", "sokoban", "--methods", "gspo", "--seed", "1", "--steps", "3", "--save-freq", "2"]
    argv += ["--out", str(out), "--recipe", str(recipe), "--init-model", "Qwen/Qwen3-4B", "trainer.nnodes=2"]
    assert main(argv) == 0
    cell = cell_dir(out, "sokoban", "gspo", 1)
    assert (cell / "args.txt").read_text().splitlines() == [
        "sokoban",
        "gspo",
        f"trainer.default_local_dir={cell / 'ckpt'}",
        f"sampo.validation.outcomes_file={cell / 'val_outcomes.jsonl'}",
        "data.seed=1",
        "actor_rollout_ref.rollout.seed=1",
        "trainer.val_before_train=true",
        "trainer.max_actor_ckpt_to_keep=1",
        "trainer.save_freq=2",  # no --test-freq: the recipe's own
        "trainer.nnodes=2",
    ]
    variables = dict(line.split("=", 1) for line in (cell / "env.txt").read_text().splitlines())
    assert variables == {
        "DATA_DIR": str(cell / "data"),
        "EXPERIMENT": "sokoban_gspo_seed1",
        "LOGGER": os.environ.get("LOGGER", "[console,file]"),
        "MODEL": "Qwen/Qwen3-4B",
        "TOTAL_STEPS": "3",
        "VERL_FILE_LOGGER_PATH": str(cell / "attempts" / "from_step0.jsonl"),
    }
    assert json.loads((cell / "done.json").read_text())["steps"] == 3


def test_recipe_cell_overrides_compose_with_the_gpu_recipe(tmp_path):
    spec = runner.ArenaSpec(
        tmp_path,
        ("frozenlake",),
        ("sapo_seqmask",),
        (2,),
        40,
        test_freq=4,
        recipe=REPO / "recipes" / "common.sh",
        starts={"frozenlake": "/ckpt/bc_frozenlake"},
    )
    (cell,) = spec.cells()
    command, variables = runner.recipe_launch(spec, cell, spec.starts["frozenlake"], tmp_path / "m.jsonl")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SAMPO_DRY_RUN": "1", **variables}
    printed = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    overrides = printed[printed.index("$ python3 -m sampo_verl.main_ppo") + 1 :]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose("sampo_ppo", overrides=overrides)
    assert config.actor_rollout_ref.model.path == "/ckpt/bc_frozenlake"
    assert config.trainer.default_local_dir == str(cell.path / "ckpt") and config.trainer.resume_mode == "auto"
    assert (
        config.trainer.total_training_steps == 40 and config.trainer.test_freq == 4 and config.trainer.save_freq == 50
    )
    assert config.data.seed == 2 and config.actor_rollout_ref.rollout.seed == 2
    assert config.trainer.max_actor_ckpt_to_keep == 1 and "file" in config.trainer.logger
    assert config.data.train_files == str(cell.path / "data" / "train.parquet")


def test_print_commands_gives_one_arena_run_per_unfinished_cell(tmp_path, capsys):
    out = tmp_path / "arena"
    recipe = REPO / "recipes" / "common.sh"
    done = cell_dir(out, "frozenlake", "gspo", 0)
    done.mkdir(parents=True)
    mark_done(done, 1.0, 5)
    argv = ["run", "--envs", "sokoban,frozenlake", "--methods", "gspo,sampo", "--seeds", "2", "--steps", "50"]
    argv += ["--out", str(out), "--recipe", str(recipe), "--timeout", "7200", "--print-commands", "trainer.nnodes=2"]
    argv += ["--init-model", "sokoban=/ckpt/bc sokoban", "--init-model", "frozenlake=Qwen/Qwen3-4B"]
    assert main(argv) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 7 and not (out / "sokoban").exists()  # nothing ran
    cells = set()
    for command in commands:
        words = shlex.split(command)
        assert words[:3] == ["sampo-verl", "arena", "run"]
        args = build_parser().parse_args(words[2:])
        (env,), (method,) = args.envs, args.methods
        cells.add((env, method, args.seed))
        assert args.init_model == [{"sokoban": "/ckpt/bc sokoban", "frozenlake": "Qwen/Qwen3-4B"}[env]]
        assert (args.out, args.recipe, args.steps, args.timeout) == (out, recipe, 50, 7200.0)
        assert args.overrides == ["trainer.nnodes=2"] and not args.print_commands
    all_cells = {(e, m, s) for e in ("sokoban", "frozenlake") for m in ("gspo", "sampo") for s in (0, 1)}
    assert cells == all_cells - {("frozenlake", "gspo", 0)}


# ---------------------------------------------------------------------------------------- end to end
ARGS = ["--envs", "sokoban", "--methods", "grpo,gspo", "--seeds", "1", "--steps", "2", "--test-freq", "2"]
# a checkpoint every step, two kept: the resume test rewinds a finished cell to its step-1 checkpoint
ARGS += ["--save-freq", "1", "--timeout", "900", "trainer.max_actor_ckpt_to_keep=2"]
TINY = {"max_turns": 3, "bc_episodes": 16, "bc_val_episodes": 0, "bc_steps": 1, "bc_batch_size": 16}
TINY |= {"rl_train_tasks": 16, "rl_val_tasks": 4}


KILLABLE_RECIPE = """#!/usr/bin/env bash
printf '{"step": 1, "data": {"training/global_step": 1}}\\n' > "$VERL_FILE_LOGGER_PATH"
if [ -z "$FINISH" ]; then sleep 300 & echo $! > trainer.pid; wait; fi
printf '{"step": 2, "data": {"training/global_step": 2}}\\n' >> "$VERL_FILE_LOGGER_PATH"
"""


def test_kill_9_of_the_runner_stops_its_trainer_and_the_rerun_counts_the_killed_attempt(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text(KILLABLE_RECIPE)
    out = tmp_path / "arena"
    argv = ["run", "--envs", "sokoban", "--methods", "gspo", "--steps", "2", "--out", str(out)]
    argv += ["--recipe", str(recipe), "--init-model", "Qwen/Qwen3-4B"]
    cell = cell_dir(out, "sokoban", "gspo", 0)
    job = subprocess.Popen([sys.executable, "-m", "sampo_verl.arena", *argv], start_new_session=True)
    assert wait_for((cell / "trainer.pid").exists, 60)
    trainer = int((cell / "trainer.pid").read_text())
    time.sleep(1.5)
    os.killpg(job.pid, signal.SIGKILL)  # the runner and its process group, as a scheduler's kill would
    job.wait()
    assert wait_for(lambda: state(trainer) in ("gone", "Z"), 30), "the trainer outlived the runner"
    assert (cell / "attempts" / "from_step0.started").exists() and not (cell / "runs.jsonl").exists()

    monkeypatch.setenv("FINISH", "1")
    assert main(argv) == 0
    killed, finished = lines_of(cell / "runs.jsonl")
    assert killed["error"].startswith("killed") and killed["wall_time_s"] >= 1.4
    assert finished["error"] is None
    done = json.loads((cell / "done.json").read_text())
    assert done == {"steps": 2, "wall_time_s": pytest.approx(killed["wall_time_s"] + finished["wall_time_s"])}
    assert not list((cell / "attempts").glob("*.started"))


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    """The matrix trained once from a tiny behaviour-cloned start: (results folder, runner output)."""
    out = tmp_path_factory.mktemp("arena") / "results"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setitem(testbed.TESTBEDS, "sokoban", testbed.cpu_testbed("sokoban", **TINY))
        assert main(["run", *ARGS, "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_matrix_trains_every_cell_from_the_shared_behaviour_cloned_start(arena):
    out, printed = arena
    assert (out / "sokoban" / "_start" / "bc" / "bc_done.json").is_file()
    assert printed.count("behaviour cloning the start model") == 1
    for method in ("grpo", "gspo"):
        cell = cell_dir(out, "sokoban", method, 0)
        assert json.loads((cell / "done.json").read_text())["steps"] == 2
        records = lines_of(cell / "metrics.jsonl")
        assert [r["step"] for r in records] == [0, 1, 2]
        assert VAL_KEY in records[0]["data"] and VAL_KEY in records[2]["data"]  # before training and at the end
        assert [r["data"]["training/global_step"] for r in records[1:]] == [1, 2]
        assert f"sokoban/{method}/seed0: 2 steps, " in printed and "over 1 attempt(s)" in printed
    assert "| 0/2 done, 0 failed, 2 to run | elapsed" in printed and "ETA unknown" in printed
    assert "| 1/2 done, 0 failed, 1 to run" in printed and "| 2/2 done, 0 failed, 0 to run" in printed


def test_report_reads_the_runners_results(arena):
    out, _ = arena
    index = build_report(out)
    assert index.is_file() and (out / "report" / "sokoban_success.png").is_file()
    (cells,) = load_results(out).values()
    metric = success_metric(cells)
    assert metric == "val-core/*/acc/mean@*"  # validated at step 2
    for summary in summarise_methods(cells, metric):
        (seed,) = summary.seeds
        history = read_metrics(cell_dir(out, "sokoban", summary.method, 0) / "metrics.jsonl")
        assert seed.finished and seed.final == history[2][VAL_KEY]
        assert (
            seed.wall_time_s
            == json.loads((cell_dir(out, "sokoban", summary.method, 0) / "done.json").read_text())["wall_time_s"]
        )
    assert {s.method for s in summarise_methods(cells, metric)} == {"grpo", "gspo"}


def test_an_interrupted_cell_resumes_from_its_checkpoint_and_a_finished_one_is_skipped(arena, monkeypatch):
    out, _ = arena
    cell = cell_dir(out, "sokoban", "gspo", 0)
    # what a kill during step 2 leaves: the step-1 checkpoint, no done.json, a log that stops in step 2
    (cell / "done.json").unlink()
    ckpt = cell / "ckpt"
    subprocess.run(["rm", "-r", str(ckpt / "global_step_2")], check=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("1")
    first = cell / "attempts" / "from_step0.jsonl"
    kept = [(r["step"], r["data"]) for r in lines_of(first) if r["step"] <= 1]
    write_lines(first, [*kept, (2, {"abandoned": 1.0})], tail='{"step": 2, "data": {"act')
    launched = []
    real_run_agent = runner.run_agent

    def spy(workdir, *args, **kwargs):
        launched.append(workdir)
        return real_run_agent(workdir, *args, **kwargs)

    monkeypatch.setattr(runner, "run_agent", spy)
    monkeypatch.setitem(testbed.TESTBEDS, "sokoban", testbed.cpu_testbed("sokoban", **TINY))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", *ARGS, "--out", str(out)]) == 0
    assert launched == [cell]  # the finished grpo cell was not launched
    assert "sokoban/gspo/seed0: resuming from the step-1 checkpoint" in printed.getvalue()
    assert "1 finished before, 1 to run" in printed.getvalue()
    assert (cell / "attempts" / "from_step1.jsonl").is_file()
    records = lines_of(cell / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]  # each step once
    step1, step2 = records[1]["data"], records[2]["data"]
    assert step1["training/global_step"] == 1 and VAL_KEY in step1  # trained first, validated on resume
    assert step2["training/global_step"] == 2 and VAL_KEY in step2 and "abandoned" not in step2
    runs = lines_of(cell / "runs.jsonl")
    assert [(r["from_step"], r["error"]) for r in runs] == [(0, None), (1, None)]
    done = json.loads((cell / "done.json").read_text())
    assert done["steps"] == 2 and done["wall_time_s"] == pytest.approx(sum(r["wall_time_s"] for r in runs))
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"


def test_sigterm_stops_the_running_trainer_and_the_cell_stays_resumable(tmp_path, start_model, monkeypatch, capsys):
    pid_file = tmp_path / "trainer.pid"

    def run_agent(workdir, model_dir, config, extra_overrides, data_dir, timeout=None, metrics_file=None, **output):
        write_lines(metrics_file, [(1, {"training/global_step": 1})])
        command = ["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]  # a trainer with a child process
        runner.run_process(command, workdir, dict(os.environ), timeout=timeout)

    monkeypatch.setattr(runner, "run_agent", run_agent)
    stopper = threading.Thread(target=lambda: (wait_for(pid_file.exists), os.kill(os.getpid(), signal.SIGTERM)))
    stopper.start()
    argv = ["run", "--envs", "sokoban", "--methods", "grpo", "--steps", "2", "--out", str(tmp_path / "arena")]
    assert main([*argv, "--init-model", str(start_model)]) == 130
    stopper.join()
    assert "interrupted: rerun the same command to continue" in capsys.readouterr().out
    child = int(pid_file.read_text())
    assert wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in state(child))
    cell = cell_dir(tmp_path / "arena", "sokoban", "grpo", 0)
    assert not (cell / "done.json").exists()
    assert [run["error"] for run in lines_of(cell / "runs.jsonl")] == ["KeyboardInterrupt"]
    assert sorted(read_metrics(cell / "metrics.jsonl")) == [1]  # what it logged is kept for the report
