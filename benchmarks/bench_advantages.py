"""Time of the vectorised ``gigpo`` estimator against a straightforward per-row loop of the same maths.

Batches of G groups x 8 episodes x 50 turns (default G = 64 -> 25,600 turns, and 4x that), text
anchors drawn from 20 states per group, 10% invalid turns, sparse rewards. Both implementations
take the same inputs, return (B, T) float64 tensors, and must agree (asserted) before timing.
Prints milliseconds per call (median of interleaved repeats) and the loop/vectorised ratio. For
context it also times verl's own ``grpo`` (episode term only, a per-row loop over torch scalars)
on the same rows.

    python benchmarks/bench_advantages.py [--groups 64] [--repeats 5] [--tokens 64]
"""

import argparse
import math
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
from omegaconf import OmegaConf

from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

from sampo_verl.algorithms.advantages import EPS, compute_gigpo_advantage

EPISODES, TURNS, STATES, PENALTY = 8, 50, 20, 0.1


def make_batch(groups: int, tokens: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = groups * EPISODES * TURNS
    group = np.repeat(np.arange(groups), EPISODES * TURNS)
    episode = np.repeat(np.arange(groups * EPISODES), TURNS)
    step = np.tile(np.arange(TURNS), groups * EPISODES)
    valid = rng.random(n) > 0.1
    episode_reward = np.repeat(rng.integers(0, 2, groups * EPISODES).astype(np.float64), TURNS)
    step_reward = np.where(step == TURNS - 1, episode_reward, 0.0) - PENALTY * ~valid
    state = rng.integers(0, STATES, n)
    perm = rng.permutation(n)  # rows arrive in no particular order
    uid = np.array([f"task-{g}" for g in group], dtype=object)[perm]
    non_tensor = {
        "traj_uid": np.array([f"task-{g}_{e}" for g, e in zip(group, episode)], dtype=object)[perm],
        "step": step[perm],
        "anchor": np.array([f"You are in room {s} of task {g}." for g, s in zip(group, state)], dtype=object)[perm],
        "step_reward": step_reward[perm],
        "episode_reward": episode_reward[perm],
        "action_valid": valid[perm],
    }
    mask = torch.ones(n, tokens, dtype=torch.float64)
    return uid, non_tensor, mask


def gigpo_loop(uid, non_tensor, mask, gamma: float, mode: str, weight: float = 1.0):
    """Per-row reference: dicts of lists, one Python iteration per row (episode stats over steps)."""
    n = len(uid)
    traj, step, anchor = non_tensor["traj_uid"], non_tensor["step"], non_tensor["anchor"]
    reward, episode_reward, valid = non_tensor["step_reward"], non_tensor["episode_reward"], non_tensor["action_valid"]

    def normalise(members: dict, values: list, singleton_zero: bool) -> list:
        out = [0.0] * n
        for rows in members.values():
            if len(rows) == 1:
                mean, std = 0.0, 1.0
            else:
                mean = sum(values[i] for i in rows) / len(rows)
                std = math.sqrt(sum((values[i] - mean) ** 2 for i in rows) / (len(rows) - 1))
            for i in rows:
                a = values[i] - mean
                if mode == "mean_std_norm":
                    a = a / (std + EPS)
                out[i] = 0.0 if singleton_zero and len(rows) == 1 else a
        return out

    score = [float(episode_reward[i]) - PENALTY * (not valid[i]) for i in range(n)]
    by_uid = defaultdict(list)
    for i in range(n):
        by_uid[uid[i]].append(i)
    episode_adv = normalise(by_uid, score, singleton_zero=mode == "mean_norm")

    by_episode = defaultdict(list)
    for i in range(n):
        by_episode[traj[i]].append((int(step[i]), i))
    returns = [0.0] * n
    for turns in by_episode.values():
        running = 0.0
        for _, i in sorted(turns, reverse=True):
            running = float(reward[i]) + gamma * running
            returns[i] = running
    by_state = defaultdict(list)
    for i in range(n):
        by_state[(uid[i], anchor[i])].append(i)
    step_adv = normalise(by_state, returns, singleton_zero=True)

    per_row = torch.tensor([episode_adv[i] + weight * step_adv[i] for i in range(n)], dtype=torch.float64)
    advantages = per_row.unsqueeze(-1) * mask
    return advantages, advantages


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64, help="response length T of the (B, T) output")
    args = parser.parse_args()

    for groups in (args.groups, 4 * args.groups):
        uid, non_tensor, mask = make_batch(groups, args.tokens)
        token_level_rewards = torch.zeros_like(mask)  # unused by the estimator beyond shape/dtype
        for mode in ("mean_std_norm", "mean_norm"):
            config = OmegaConf.create({"gamma": 0.95, "gigpo": {"mode": mode, "invalid_penalty": PENALTY}})

            def vectorised():
                return compute_gigpo_advantage(token_level_rewards, mask, index=uid, config=config,
                                               non_tensor_batch=non_tensor)

            def loop():
                return gigpo_loop(uid, non_tensor, mask, gamma=0.95, mode=mode)

            ours, reference = vectorised()[0], loop()[0]
            torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-9)
            loop_times, vec_times = [], []
            for _ in range(args.repeats):  # interleaved
                vec_times.append(median_ms(vectorised, 1))
                loop_times.append(median_ms(loop, 1))
            vec_ms, loop_ms = statistics.median(vec_times), statistics.median(loop_times)
            print(
                f"gigpo {mode:13s} {len(uid):7d} turns: vectorised {vec_ms:8.1f} ms  loop {loop_ms:8.1f} ms  "
                f"speedup {loop_ms / vec_ms:5.1f}x"
            )
        verl_ms = median_ms(lambda: compute_grpo_outcome_advantage(token_level_rewards, mask, uid), 1)
        print(f"verl grpo (episode term only) {len(uid):7d} turns: {verl_ms:8.1f} ms")


if __name__ == "__main__":
    main()
