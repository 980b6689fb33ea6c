"""Forward+backward time of ``gspo_seqmask`` and ``vanilla_seqmask`` against verl's ``gspo`` and ``vanilla``.

Identical fp32 CPU tensors, B=256 samples x T=512 tokens, ragged responses, a quarter of the
samples far enough off-policy with negative advantage to be masked. Prints milliseconds per call
(median of interleaved repeats) and the ratio to verl's gspo, measured in the same run.

    python benchmarks/bench_losses.py [--batch 256] [--length 512] [--repeats 30]
"""

import argparse
import statistics
import time

import torch
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.workers.config import ActorConfig

import sampo_verl  # noqa: F401  (registers the losses)
from sampo_verl.algorithms.loss_config import SampoPolicyLossConfig, SeqMaskConfig


def make_inputs(batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    old_log_prob = -torch.rand(batch, length, generator=generator) * 3
    drift = 0.05 * torch.randn(batch, length, generator=generator)
    drift[: batch // 4] -= 0.5  # off-policy samples: D_i about 0.5 > delta
    advantages = torch.randn(batch, 1, generator=generator).expand(batch, length).contiguous()
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    response_mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    return {
        "old_log_prob": old_log_prob,
        "log_prob": old_log_prob + drift,
        "advantages": advantages,
        "response_mask": response_mask,
    }


def forward_backward(name: str, inputs: dict[str, torch.Tensor], config: ActorConfig) -> float:
    """Seconds of one forward+backward of the registered policy loss ``name``."""
    log_prob = inputs["log_prob"].clone().requires_grad_()
    start = time.perf_counter()
    loss, _ = get_policy_loss_fn(name)(
        old_log_prob=inputs["old_log_prob"],
        log_prob=log_prob,
        advantages=inputs["advantages"],
        response_mask=inputs["response_mask"],
        loss_agg_mode="seq-mean-token-mean",
        config=config,
    )
    loss.backward()
    return time.perf_counter() - start


def median_times(names: list[str], inputs: dict[str, torch.Tensor], config: ActorConfig, repeats: int) -> dict:
    """Median seconds per loss; the losses take turns so that load drift hits them all alike."""
    times = {name: [] for name in names}
    for round_index in range(repeats + 3):  # 3 warm-up rounds
        for name in names:
            seconds = forward_backward(name, inputs, config)
            if round_index >= 3:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()

    inputs = make_inputs(args.batch, args.length)
    print(f"B={args.batch} T={args.length} fp32 CPU, torch threads={torch.get_num_threads()}")
    # verl's engine actor (workers/utils/losses.ppo_loss) always passes the global counts;
    # a direct call passes none and the masked losses fill in the local ones.
    engine_counts = {
        "dp_size": 1,
        "batch_num_tokens": int(inputs["response_mask"].sum()),
        "global_batch_size": args.batch,
        "loss_scale_factor": None,
    }
    for label, global_batch_info in (("verl engine call (global counts)", engine_counts), ("direct call", {})):
        config = ActorConfig(
            strategy="fsdp",
            rollout_n=1,
            ppo_micro_batch_size_per_gpu=1,
            clip_ratio_low=3e-4,
            clip_ratio_high=4e-4,
            policy_loss=SampoPolicyLossConfig(loss_mode="gspo_seqmask", seq_mask=SeqMaskConfig(delta=0.223)),
            global_batch_info=global_batch_info,
        )
        print(label)
        times = median_times(["gspo", "vanilla", "gspo_seqmask", "vanilla_seqmask"], inputs, config, args.repeats)
        for name, seconds in times.items():
            print(f"{name:>14}: {seconds * 1e3:7.2f} ms   {seconds / times['gspo']:5.2f}x gspo")


if __name__ == "__main__":
    main()
