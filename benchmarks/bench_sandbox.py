"""Sandbox throughput: calls per second of ``run_python`` against a plain ``python -c`` subprocess.

For each mechanism that works here (``bwrap``, ``unshare``, ``unsandboxed``) and concurrency 1 and 16,
runs the same short program N times through :class:`sampo_verl.tools.sandbox.SandboxPool`, and, as
the baseline in the same run, through ``subprocess.run([python, "-I", "-c", code])`` on a thread pool
of the same width. Prints calls/s, the time per call, the overhead per call against the baseline and
the ratio.

    python benchmarks/bench_sandbox.py [--calls N]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from sampo_verl.tools import sandbox
from sampo_verl.tools.sandbox import SandboxPool

CODE = "import math\nprint(sum(math.comb(40, k) for k in range(41)))"


def plain(calls: int, concurrency: int) -> float:
    """Seconds for ``calls`` plain subprocesses, ``concurrency`` at a time."""
    command = [sandbox.sandbox_python(), "-I", "-c", CODE]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as executor:
        outputs = list(executor.map(lambda _: subprocess.run(command, capture_output=True, text=True), range(calls)))
    elapsed = time.perf_counter() - start
    assert all(o.stdout.strip() == str(2**40) for o in outputs)
    return elapsed


def sandboxed(calls: int, concurrency: int, mode: str) -> float:
    start = time.perf_counter()
    results = SandboxPool(concurrency, {"mode": mode}).map([CODE] * calls)
    elapsed = time.perf_counter() - start
    assert all(r.stdout.strip() == str(2**40) for r in results), results[0]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=64)
    args = parser.parse_args()
    modes = [m for m in ("bwrap", "unshare") if not sandbox._probe(m)] + ["unsandboxed"]
    print(f"{args.calls} calls of a short program; interpreter {sandbox.sandbox_python()}")
    print(f"{'mode':<12} {'conc':>4} {'calls/s':>8} {'ms/call':>8} {'plain/s':>8} {'+ms/call':>9} {'ratio':>6}")
    for concurrency in (1, 16):
        base = plain(args.calls, concurrency)
        for mode in modes:
            took = sandboxed(args.calls, concurrency, mode)
            overhead_ms = (took - base) / args.calls * 1000
            print(
                f"{mode:<12} {concurrency:>4} {args.calls / took:>8.1f} {took / args.calls * 1000:>8.1f} "
                f"{args.calls / base:>8.1f} {overhead_ms:>9.1f} {took / base:>6.2f}"
            )


if __name__ == "__main__":
    main()
