"""``python -m sampo_verl.arena``: the arena's command line.

Subcommands: ``report DIR`` (:mod:`sampo_verl.arena.report`). The runner's ``run`` subcommand
registers itself in :func:`build_parser` beside ``report``, writing the layout of
:mod:`sampo_verl.arena.layout`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sampo_verl.arena.report import build_report


def build_parser() -> argparse.ArgumentParser:
    """The ``arena`` argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m sampo_verl.arena", description="The ARLArena method matrix and its stability report."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="build DIR/report/index.html and PNG figures from a results folder")
    report.add_argument("dir", type=Path, help="results folder: DIR/<env>/<method>/seed<k>/metrics.jsonl")
    report.add_argument("--out", type=Path, default=None, help="report folder (default: DIR/report)")
    report.set_defaults(handler=_report)
    return parser


def _report(args: argparse.Namespace) -> int:
    try:
        index = build_report(args.dir, args.out)
    except FileNotFoundError as err:
        raise SystemExit(f"arena report: {err}") from None
    print(f"report written to {index}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
