"""The CPU quickstart: behaviour cloning, then RL through ``sampo_verl.main_ppo``, with a report.

    sampo-verl quickstart [--env sokoban] [--method sampo] [--steps N] [--seed 0] [--out DIR] [--verbose]

On the CPU testbed of :mod:`sampo_verl.runs.testbed`: builds the tiny local model and tokenizer, clones
the environment's expert with verl's SFT trainer, then trains the method with verl's PPO trainer
(the CPU backend) on the same environment. Success is measured by verl's validation on held-out
seeds (greedy) before RL (= behaviour cloning alone), every ``--test-freq`` steps and at the end.
Writes ``DIR/report/``: ``metrics.jsonl`` (verl's per-step metrics of the RL run),
``bc_metrics.jsonl`` (the SFT run's), ``success.png``, ``stability.png`` and ``summary.json`` (with
the outcome of every held-out task at every validation, and the paired 95% interval of the change).
The console shows one line per phase, a progress bar with ETA for behaviour cloning and for RL, the
held-out success at each validation and the summary; verl's own output goes to ``DIR/verl.log``
(``--verbose``: live instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sampo_verl.agent.dataset import task_seeds
from sampo_verl.bc.train import SFT_METRICS_FILE
from sampo_verl.metrics import TRAIN_SUCCESS, VAL_SUCCESS, History, collapse_steps, metric_series, read_metrics
from sampo_verl.plots import plot_metrics
from sampo_verl.runs.agent_run import add_engine_flag, run_agent
from sampo_verl.processes.launch import VERL_LOG, format_duration
from sampo_verl.processes.progress import StepProgress, bc_progress, rl_progress
from sampo_verl.runs.testbed import TESTBEDS, bc_start, cpu_testbed, rl_config
from sampo_verl.stats import Interval, bootstrap_mean
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, read_val_outcomes

STABILITY_METRICS = [
    "sampo/format_valid_rate",
    "actor/entropy",
    "actor/grad_norm",
    "actor/seq_mask_frac",
    "actor/seq_neg_adv_low_ratio_frac",
    "actor/seq_clipfrac",
]
SUCCESS_METRICS = [VAL_SUCCESS, TRAIN_SUCCESS]


@dataclass(frozen=True)
class Summary:
    """What the quickstart prints and writes to ``summary.json``."""

    env: str
    method: str
    seed: int
    steps: int
    val_tasks: int
    success_after_bc: float
    success_after_rl: float
    best_success: float
    best_step: int
    collapse_steps: list[int]
    bc_seconds: float
    rl_seconds: float
    task_seeds: list[int] = dataclasses.field(default_factory=list)  # the held-out tasks, in task_success order
    task_success: dict[int, list[float]] = dataclasses.field(default_factory=dict)  # step -> success per task
    change_ci95: tuple[float, float] | None = None  # paired over the tasks: last validation - behaviour cloning

    def text(self) -> str:
        change = self.success_after_rl - self.success_after_bc
        interval = (
            "" if self.change_ci95 is None else ", paired 95% interval [{:+.3f}, {:+.3f}]".format(*self.change_ci95)
        )
        return "\n".join(
            [
                f"sampo-verl quickstart: {self.env}, method {self.method}, seed {self.seed}",
                (
                    f"  success on {self.val_tasks} held-out tasks (greedy): {self.success_after_bc:.3f} after "
                    f"behaviour cloning -> {self.success_after_rl:.3f} after {self.steps} RL steps ({change:+.3f}"
                    f"{interval}; best {self.best_success:.3f} at step {self.best_step})"
                ),
                f"  collapse warnings: {len(self.collapse_steps)}"
                + (f" at steps {self.collapse_steps}" * bool(self.collapse_steps)),
                f"  wall time: behaviour cloning {format_duration(self.bc_seconds)},"
                f" RL {format_duration(self.rl_seconds)}",
            ]
        )


def summarise_run(
    history: History,
    env: str,
    method: str,
    seed: int,
    val_tasks: int,
    bc_s: float,
    rl_s: float,
    outcomes: dict[int, ValOutcomes] | None = None,
    task_seeds: list[int] | None = None,
) -> Summary:
    """The quickstart's numbers from the RL run's metrics (validation at step 0 = behaviour cloning) and,
    given the per-task ``outcomes`` on ``task_seeds``, the paired interval of the change."""
    steps, values = metric_series(history, VAL_SUCCESS)
    val = dict(zip(steps.tolist(), values.tolist(), strict=True))
    if 0 not in val or len(val) < 2:
        raise RuntimeError(f"the RL run logged no validation before and after training (steps {sorted(val)})")
    last = max(val)
    best_step = max(val, key=lambda s: (val[s], -s))
    seeds = list(task_seeds or [])
    per_task = {step: o.success(seeds).tolist() for step, o in (outcomes or {}).items()} if seeds else {}
    change = None
    if 0 in per_task and last in per_task:
        interval = paired_change(per_task[0], per_task[last])
        change = (interval.low, interval.high)
    return Summary(
        env=env,
        method=method,
        seed=seed,
        steps=max(history),
        val_tasks=val_tasks,
        success_after_bc=val[0],
        success_after_rl=val[last],
        best_success=val[best_step],
        best_step=best_step,
        collapse_steps=collapse_steps(history),
        bc_seconds=bc_s,
        rl_seconds=rl_s,
        task_seeds=seeds if per_task else [],
        task_success=per_task,
        change_ci95=change,
    )


def paired_change(before: list[float], after: list[float]) -> Interval:
    """The mean change of success over the same tasks, with its bootstrap interval (:mod:`sampo_verl.stats`)."""
    return bootstrap_mean(np.asarray(after) - np.asarray(before))


def write_report(report: Path, rl_metrics: Path, bc_metrics: Path, summary: Summary) -> Path:
    """Copy the metric files into ``report`` and draw the success and stability plots."""
    report.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rl_metrics, report / "metrics.jsonl")
    if bc_metrics.exists():
        shutil.copyfile(bc_metrics, report / "bc_metrics.jsonl")
    history = read_metrics(rl_metrics)
    runs = {summary.method: [history]}
    events = {summary.method: summary.collapse_steps}
    title = f"{summary.env}: {summary.method} from behaviour cloning"
    start = {VAL_SUCCESS: {"behaviour cloning": summary.success_after_bc}}
    intervals = {VAL_SUCCESS: summary.val_tasks}
    plot_metrics(runs, SUCCESS_METRICS, report / "success.png", title, events, intervals, start)
    plot_metrics(runs, STABILITY_METRICS, report / "stability.png", title=title, events=events)
    (report / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return report


# flags that change the testbed: flag's argparse name -> Testbed field; and the model's (ModelSize fields)
TESTBED_FLAGS = {
    "bc_episodes": "bc_episodes", "bc_steps": "bc_steps", "val_tasks": "rl_val_tasks", "lr": "rl_lr",
    "temperature": "rl_temperature",
}  # fmt: skip
MODEL_FLAGS = ("hidden", "layers", "heads", "kv_heads", "head_dim")


def main(argv: list[str] | None = None) -> Summary:
    parser = argparse.ArgumentParser(prog="sampo-verl quickstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="frozenlake", choices=sorted(TESTBEDS))
    parser.add_argument("--method", default="sampo", help="method preset (sampo_verl/conf/method)")
    parser.add_argument("--steps", type=int, default=12, help="RL training steps")
    parser.add_argument("--test-freq", type=int, default=4, help="validate every N RL steps (and at the end)")
    parser.add_argument("--seed", type=int, default=0, help="RL seed (data order and sampling)")
    parser.add_argument("--hidden", type=int, default=None, help="model width (default: the testbed's)")
    parser.add_argument("--layers", type=int, default=None, help="model depth (default: the testbed's)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: the testbed's)")
    parser.add_argument("--kv-heads", type=int, default=None, help="key/value heads (default: the testbed's)")
    parser.add_argument(
        "--head-dim", type=int, default=None, help="head size apart from the width: Qwen3 (default: the testbed's)"
    )
    parser.add_argument("--bc-episodes", type=int, default=None, help="expert episodes (default: the testbed's)")
    parser.add_argument("--bc-steps", type=int, default=None, help="behaviour-cloning steps (default: the testbed's)")
    parser.add_argument("--val-tasks", type=int, default=None, help="held-out tasks (default: the testbed's)")
    parser.add_argument("--lr", type=float, default=None, help="RL learning rate (default: the testbed's)")
    parser.add_argument(
        "--temperature", type=float, default=None, help="RL rollout temperature (default: the testbed's)"
    )
    add_engine_flag(parser, "RL")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("--verbose", action="store_true", help="show verl's output live (default: OUT/verl.log)")
    args = parser.parse_args(argv)

    tb = cpu_testbed(args.env)
    given = {name: value for name, value in vars(args).items() if value is not None}
    changes = {field: given[flag] for flag, field in TESTBED_FLAGS.items() if flag in given}
    size = {field: given[field] for field in MODEL_FLAGS if field in given}
    if size:
        changes["model"] = dataclasses.replace(tb.model, **size)
    tb = cpu_testbed(args.env, **changes)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = None if args.verbose else out / VERL_LOG
    if log is not None:
        print(f"verl's output (warnings, configs, per-step lines): {log}", flush=True)
    print(f"[1/3] behaviour cloning on {args.env} expert episodes -> {out / 'bc'}", flush=True)
    start = time.time()
    with StepProgress(out / "bc" / SFT_METRICS_FILE, tb.bc_steps, "  behaviour cloning", bc_progress):
        model = bc_start(out, tb, log_file=log)
    bc_seconds = time.time() - start

    print(f"[2/3] RL with {args.method} for {args.steps} steps (verl PPO trainer, CPU backend)", flush=True)
    rl_dir = out / "rl"
    start = time.time()
    config = rl_config(tb, args.method, args.seed, args.steps, args.test_freq, engine=args.engine)
    (rl_dir / OUTCOMES_FILE).unlink(missing_ok=True)  # a fresh run; the trainer appends one line per validation
    with StepProgress(rl_dir / "metrics.jsonl", args.steps, "  RL", rl_progress(args.steps)):
        run_agent(rl_dir, model, config, data_dir=out / "rl_data", capture=False, log_file=log)
    rl_seconds = time.time() - start

    print("[3/3] report", flush=True)
    history = read_metrics(rl_dir / "metrics.jsonl")
    outcomes = read_val_outcomes(rl_dir / OUTCOMES_FILE)
    seeds = task_seeds(str(out / "rl_data" / "val.parquet"))
    summary = summarise_run(
        history, args.env, args.method, args.seed, tb.rl_val_tasks, bc_seconds, rl_seconds, outcomes, seeds
    )
    report = write_report(out / "report", rl_dir / "metrics.jsonl", out / "bc" / SFT_METRICS_FILE, summary)
    print(summary.text())
    print(f"  report: {report} (success.png, stability.png, metrics.jsonl, summary.json)")
    return summary


if __name__ == "__main__":
    main()
