"""The ``sampo-verl`` command (also ``python -m sampo_verl``): the package's tools under one name.

    sampo-verl COMMAND [ARGS...]        sampo-verl COMMAND --help

Each command is the ``main`` of one module, imported only when chosen. Training itself stays verl's
Hydra convention: ``python -m sampo_verl.main_ppo <overrides>``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS = {  # name -> (module whose main(argv) runs it, what it does)
    "quickstart": ("sampo_verl.runs.quickstart", "behaviour cloning then RL on a CPU testbed, with a report"),
    "arena": ("sampo_verl.arena.__main__", "run a method x environment x seed matrix; report and compare"),
    "evaluate": ("sampo_verl.runs.evaluate", "greedy success of a checkpoint or a served model on held-out tasks"),
    "serve": ("sampo_verl.runs.serve", "an OpenAI-compatible chat server for a checkpoint (CPU)"),
    "bc": ("sampo_verl.bc.train", "behaviour cloning with verl's SFT trainer"),
    "sft-data": ("sampo_verl.bc.sft_data", "expert episodes of an environment as verl SFT data"),
    "dataset": ("sampo_verl.agent.dataset", "task files (one row per episode seed) for the agent loop"),
    "math-tasks": ("sampo_verl.agent.math_tasks", "TIR-Math task files from parquet files in verl's math format"),
    "assets": ("sampo_verl.runs.assets", "a tiny model and tokenizer built locally (tests, CPU runs)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "usage: sampo-verl COMMAND [ARGS...]   (COMMAND --help for its options)\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv[0]``'s module with the rest of ``argv``; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"sampo-verl: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    status = module.main(argv[1:])
    return status if isinstance(status, int) else 0
