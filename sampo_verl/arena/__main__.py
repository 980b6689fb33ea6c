"""``sampo-verl arena``: the arena's command line.

Subcommands: ``run`` trains the method matrix into a results folder (:mod:`sampo_verl.arena.runner`),
``report DIR`` builds the report from it (:mod:`sampo_verl.arena.report`), ``compare DIR_A DIR_B``
prints the paired difference of two runs of the same cells (:mod:`sampo_verl.arena.compare`); all
follow the layout of :mod:`sampo_verl.arena.layout`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from sampo_verl.arena.layout import find_cells
from sampo_verl.arena.report import build_report
from sampo_verl.arena.runner import CPU_SAVE_FREQ, CPU_TEST_FREQ, cell_commands, run_arena
from sampo_verl.arena.spec import ArenaSpec, parse_starts
from sampo_verl.arena.variants import expand
from sampo_verl.runs.agent_run import add_engine_flag

RUN_EPILOG = """\
Resumable: rerun the same command after a kill or a failure. Finished cells (done.json) are skipped,
the others continue from their latest checkpoint (DIR/<env>/<method>/seed<k>/ckpt).

GPU: --recipe recipes/common.sh --init-model [ENV=]BC_CHECKPOINT runs each cell through the GPU
launcher, one after another in this process; with --print-commands it prints one `arena run` command
per unfinished cell instead, to submit as separate jobs (same DIR on a shared file system), e.g.
  sampo-verl arena run ... --print-commands | while read -r cmd; do sbatch --gpus=8 --wrap "$cmd"; done
"""


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The ``arena`` argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="sampo-verl arena", description="The ARLArena method matrix and its stability report."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="train every (env, method, seed) cell into DIR (resumable)",
        description="Train every (env, method, seed) cell with sampo_verl.main_ppo from the same start model.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--envs", type=_names, required=True, help="comma-separated environments, e.g. sokoban,frozenlake")
    run.add_argument(
        "--methods",
        type=_names,
        required=True,
        help="comma-separated presets of sampo_verl/conf/method, or their variants <preset>@mb<k>[+async]",
    )
    run.add_argument(
        "--mini-batches",
        type=_counts,
        default=(),
        metavar="K,...",
        help="the off-policy axis: train every preset with its batch split into K PPO mini-batches, one cell "
        "each, named <preset>@mb<K> (CPU testbed; default: the testbed's one)",
    )
    run.add_argument(
        "--modes",
        type=_names,
        default=("sync",),
        metavar="MODE,...",
        help="sync and/or async (verl's colocate_async trainer: cells named <preset>@async) (default: sync)",
    )
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of every (env, method) (default: 1)")
    seeds.add_argument("--seed", type=int, default=None, help="this one seed only (one cell per job)")
    run.add_argument("--steps", type=int, required=True, help="training steps per cell")
    run.add_argument("--out", type=Path, required=True, help="results folder DIR")
    run.add_argument(
        "--test-freq",
        type=int,
        default=None,
        help=f"validate every K steps, before training and at the end "
        f"(default: {CPU_TEST_FREQ} on CPU, the recipe's own with --recipe)",
    )
    run.add_argument(
        "--save-freq",
        type=int,
        default=None,
        help=f"checkpoint every K steps: where a killed cell resumes "
        f"(default: {CPU_SAVE_FREQ} on CPU, the recipe's own with --recipe)",
    )
    run.add_argument(
        "--init-model",
        action="append",
        default=[],
        metavar="[ENV=]MODEL",
        help="start every cell (of ENV) from "
        "this model instead of the CPU testbed's behaviour cloning; repeatable; required with --recipe",
    )
    run.add_argument(
        "--recipe",
        type=Path,
        default=None,
        help="GPU launcher taking ENV METHOD [overrides], e.g. recipes/common.sh (default: the CPU testbed)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per training run and behaviour cloning; "
        "an overrunning cell is stopped and counted failed (default: none)",
    )
    add_engine_flag(run, "the CPU cells")
    run.add_argument(
        "--verbose", action="store_true", help="show verl's output live (default: verl.log in each cell's folder)"
    )
    run.add_argument(
        "--print-commands",
        action="store_true",
        help="print one command per unfinished cell (needs --recipe), run nothing",
    )
    run.add_argument(
        "overrides",
        nargs="*",
        help="hydra overrides of sampo_verl.main_ppo for every cell, no + for the package's keys, "
        "e.g. actor_rollout_ref.actor.optim.lr=1e-5 sampo.collapse.stop_on_collapse=true",
    )
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="build DIR/report/index.html and PNG figures from a results folder")
    report.add_argument("dir", type=Path, help="results folder: DIR/<env>/<method>/seed<k>/metrics.jsonl")
    report.add_argument("--out", type=Path, default=None, help="report folder (default: DIR/report)")
    report.set_defaults(handler=_report)

    compare = commands.add_parser(
        "compare",
        help="paired difference B - A of two results folders' cells (e.g. before/after a code change)",
        description="Final success and largest fall of every (env, method) in both folders, and B - A paired "
        "over their common seeds and held-out tasks with a 95% bootstrap interval.",
    )
    compare.add_argument("dir_a", type=Path, help="results folder A (the baseline)")
    compare.add_argument("dir_b", type=Path, help="results folder B")
    compare.set_defaults(handler=_compare)
    return parser


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(value) for value in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    try:
        plain = args.mini_batches == () and tuple(args.modes) == ("sync",)
        spec = ArenaSpec(
            out=args.out,
            envs=args.envs,
            methods=args.methods if plain else expand(args.methods, args.mini_batches, args.modes),
            seeds=(args.seed,) if args.seed is not None else tuple(range(args.seeds)),
            steps=args.steps,
            test_freq=args.test_freq,
            save_freq=args.save_freq,
            starts=parse_starts(args.init_model, args.envs),
            recipe=args.recipe,
            timeout=args.timeout,
            overrides=tuple(args.overrides),
            engine=args.engine,
            verbose=args.verbose,
        )
        if args.print_commands and spec.recipe is None:
            raise ValueError("--print-commands needs --recipe: on CPU run the matrix in one process")
    except ValueError as err:
        raise SystemExit(f"arena run: {err}") from None
    if args.print_commands:
        print("\n".join(cell_commands(spec)))
        return 0
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's SIGTERM stops the trainer too
    try:
        progress = run_arena(spec)
    except KeyboardInterrupt:
        print("[arena] interrupted: rerun the same command to continue where it stopped", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1 if progress.failures else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _report(args: argparse.Namespace) -> int:
    skipped: list[str] = []
    try:
        index = build_report(args.dir, args.out, skipped)
    except FileNotFoundError as err:
        raise SystemExit(f"arena report: {err}") from None
    for note in skipped:
        print(f"arena report: left out: {note}", file=sys.stderr)
    print(f"report written to {index}" + (f" ({len(skipped)} item(s) left out, listed there)" if skipped else ""))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sampo_verl.arena.compare import compare_runs, comparison_table

    for folder in (args.dir_a, args.dir_b):
        if not find_cells(folder):
            raise SystemExit(f"arena compare: no arena cells under {folder}")
    comparisons = compare_runs(args.dir_a, args.dir_b)
    if not comparisons:
        raise SystemExit(f"arena compare: {args.dir_a} and {args.dir_b} have no (env, method) in common")
    print(comparison_table(comparisons, args.dir_a, args.dir_b))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
