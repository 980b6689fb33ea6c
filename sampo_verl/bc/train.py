"""Behaviour cloning through verl's own SFT trainer (``verl.trainer.sft_trainer``), ending in an HF model dir.

Launches ``torchrun -m verl.trainer.sft_trainer`` (one process per accelerator; one process on
CPU) on the expert data of :mod:`sampo_verl.bc.sft_data`; every process that imports verl loads
:mod:`sampo_verl.plugin`, so the CPU backend where no accelerator is present. Without an accelerator (or with
``--cpu``) the Hydra preset ``sampo_verl/conf/preset/sft_cpu.yaml`` is added; on GPUs verl's
defaults are used unchanged. verl saves only the HF weights of the last step
(``checkpoint.save_contents=[hf_model]``); they are moved to ``--out``, which then loads with
``AutoModelForCausalLM.from_pretrained`` and is what RL starts from
(``actor_rollout_ref.model.path=<out>``). ``<out>/sft_metrics.jsonl`` holds verl's logged metrics
(``train/loss``, ``val/loss``, ...) and ``<out>/sft_logs`` the Hydra config of the run::

    sampo-verl bc --model MODEL_DIR --data DATA_DIR --out CKPT_DIR [--epochs 3 | --steps N]
        [--lr LR] [--batch-size 32] [verl sft overrides ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from sampo_verl.conf import CONFIG_DIR
from sampo_verl.processes.launch import VERL_LOG, child_env, run_process
from sampo_verl.processes.progress import StepProgress, bc_progress

SFT_CPU_PRESET = "+preset@_global_=sft_cpu"
SFT_METRICS_FILE = "sft_metrics.jsonl"
SFT_CHECKPOINT_DIR = "sft_checkpoints"


def parquet_rows(path: Path) -> int:
    """Number of rows of a parquet file (0 when it does not exist)."""
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def sft_overrides(
    model: Path,
    data: Path,
    out: Path,
    epochs: int = 3,
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int = 32,
    nproc: int = 1,
    cpu: bool = False,
) -> list[str]:
    """Hydra overrides of ``verl.trainer.sft_trainer`` for one behaviour-cloning run.

    With ``steps`` set, enough epochs are requested for verl to reach (and save) that step.
    Validation on ``data/val.parquet`` runs at the last step when it holds at least one batch.
    """
    train_rows = parquet_rows(data / "train.parquet")
    batches_per_epoch = train_rows // batch_size
    if batches_per_epoch < 1:
        raise ValueError(f"{data / 'train.parquet'} has {train_rows} rows, fewer than --batch-size {batch_size}")
    if steps is not None:
        epochs = math.ceil(steps / batches_per_epoch)
    overrides = [
        f"model.path={model}",
        f"data.train_files={data / 'train.parquet'}",
        f"data.train_batch_size={batch_size}",
        f"trainer.total_epochs={epochs}",
        f"trainer.total_training_steps={'null' if steps is None else steps}",
        f"trainer.n_gpus_per_node={nproc}",
        f"trainer.default_local_dir={out / SFT_CHECKPOINT_DIR}",
        "trainer.resume_mode=disable",
        "trainer.logger=[console,file]",
        "trainer.project_name=sampo_bc",
        "trainer.experiment_name=bc",
        "checkpoint.save_contents=[hf_model]",
        f"hydra.run.dir={out / 'sft_logs'}",
    ]
    if parquet_rows(data / "val.parquet") >= batch_size:
        overrides.append(f"data.val_files={data / 'val.parquet'}")
    if lr is not None:
        overrides.append(f"optim.lr={lr}")
    if cpu:
        overrides = [f"hydra.searchpath=[file://{CONFIG_DIR}]", SFT_CPU_PRESET, *overrides]
    return overrides


def export_hf_model(out: Path, model: Path) -> Path:
    """Move the HF files of verl's last checkpoint to ``out`` and drop the checkpoint folder.

    verl's saver labels every checkpoint ``dtype: bfloat16`` whatever the weights are; the
    config gets the initial model's dtype back so ``from_pretrained`` loads what was trained.
    """
    checkpoints = out / SFT_CHECKPOINT_DIR
    step = (checkpoints / "latest_checkpointed_iteration.txt").read_text().strip()
    hf_dir = checkpoints / f"global_step_{step}" / "huggingface"
    for path in hf_dir.iterdir():
        os.replace(path, out / path.name)
    initial_config = json.loads((model / "config.json").read_text())
    config = json.loads((out / "config.json").read_text())
    if "dtype" in initial_config:
        config["dtype"] = initial_config["dtype"]
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.rmtree(checkpoints)
    return out


def run_bc(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    extra_overrides: Sequence[str] = (),
    cpu: bool | None = None,
    nproc: int | None = None,
    timeout: float | None = None,
    log_file: Path | None = None,
    **training: float | None,
) -> Path:
    """Run behaviour cloning and return the HF model directory ``out``.

    Args:
        cpu: add the CPU preset; None: when verl's platform is ``cpu``.
        nproc: torchrun processes; None: the platform's device count (1 on CPU).
        timeout: seconds after which torchrun and its workers are stopped (``RuntimeError``, as on failure).
        log_file: where verl's SFT output goes (appended); None: the console.
        training: ``epochs``, ``steps``, ``lr``, ``batch_size`` of :func:`sft_overrides`.
        extra_overrides: Hydra overrides of verl's SFT config, applied last.
    """
    from verl.utils.device import get_device_name, get_torch_device

    model, data, out = Path(model).resolve(), Path(data).resolve(), Path(out).resolve()
    if out == model:
        raise ValueError("--out must differ from --model")
    cpu = get_device_name() == "cpu" if cpu is None else cpu
    nproc = nproc or (1 if cpu else get_torch_device().device_count())
    overrides = [*sft_overrides(model, data, out, nproc=nproc, cpu=cpu, **training), *extra_overrides]
    out.mkdir(parents=True, exist_ok=True)
    env = child_env(VERL_FILE_LOGGER_PATH=str(out / SFT_METRICS_FILE))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command = [*torchrun, "-m", "verl.trainer.sft_trainer", *overrides]
    # stopped as a group on timeout/Ctrl-C; one behaviour cloning per output folder at a time
    run_process(command, Path.cwd(), env, capture=False, timeout=timeout, lock_dir=out, log_file=log_file)
    return export_hf_model(out, model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl bc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="initial HF model directory (e.g. from sampo-verl assets)")
    parser.add_argument(
        "--data", required=True, help="directory with train.parquet [val.parquet] (sampo-verl sft-data)"
    )
    parser.add_argument("--out", required=True, help="output HF model directory")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training data")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: verl's optim.lr)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size in turns (samples)")
    parser.add_argument("--nproc", type=int, default=None, help="torchrun processes (default: device count)")
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=None, help="CPU preset (default: auto)")
    parser.add_argument("--verbose", action="store_true", help="show verl's output live (default: OUT/verl.log)")
    parser.add_argument("overrides", nargs="*", help="verl SFT trainer overrides, e.g. data.max_length=2048")
    args = parser.parse_args(argv)
    log = None if args.verbose else Path(args.out).resolve() / VERL_LOG
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"verl's output (warnings, configs, per-step lines): {log}", flush=True)
    metrics = Path(args.out).resolve() / SFT_METRICS_FILE
    metrics.unlink(missing_ok=True)  # this run's steps only
    with StepProgress(metrics, args.steps, "behaviour cloning", bc_progress):
        out = run_bc(
            args.model,
            args.data,
            args.out,
            args.overrides,
            cpu=args.cpu,
            nproc=args.nproc,
            epochs=args.epochs,
            steps=args.steps,
            lr=args.lr,
            batch_size=args.batch_size,
            log_file=log,
        )
    print(out)


if __name__ == "__main__":
    main()
