"""Does the quickstart learn? Held-out success after behaviour cloning vs after RL, over training seeds.

    python benchmarks/quickstart_learning.py [--seeds 0,1,2] [--out runs/quickstart_learning] [quickstart flags...]

Runs ``python -m sampo_verl.quickstart`` once per RL seed (the behaviour-cloned start is built once
and shared: same ``--out`` folder, cached by :func:`sampo_verl.testbed.bc_start`) and prints, per seed,
greedy success on the held-out tasks before and after RL, then how many seeds improved. The claim
in README.md is "RL beats behaviour cloning alone in at least 2 of 3 seeds".
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from sampo_verl import quickstart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart_learning"))
    args, quickstart_args = parser.parse_known_args(argv)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        shutil.rmtree(args.out / "rl", ignore_errors=True)  # a fresh RL run per seed, the same BC start
        shutil.rmtree(args.out / "rl_data", ignore_errors=True)
        start = time.time()
        summary = quickstart.main([*quickstart_args, "--out", str(args.out), "--seed", str(seed)])
        shutil.copytree(args.out / "report", args.out / f"report_seed{seed}", dirs_exist_ok=True)
        rows.append((seed, summary, time.time() - start))
    print("\nseed | success after BC | after RL | change | wall time")
    for seed, summary, wall in rows:
        change = summary.success_after_rl - summary.success_after_bc
        print(
            f"{seed:>4} | {summary.success_after_bc:>16.3f} | {summary.success_after_rl:>8.3f} | {change:+.3f} | "
            f"{quickstart.format_duration(wall)}"
        )
    improved = sum(s.success_after_rl > s.success_after_bc for _, s, _ in rows)
    print(f"RL improved on behaviour cloning in {improved} of {len(rows)} seeds")
    return 0 if 2 * improved > len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
