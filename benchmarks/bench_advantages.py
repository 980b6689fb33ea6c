"""Time of the vectorised ``gigpo`` estimator against two straightforward implementations of the same maths.

Batches of G groups x 8 episodes x 50 turns (default G = 64 -> 25,600 turns, and 4x that), text
anchors drawn from 20 states per group, 10% invalid turns, sparse rewards. The baselines:

- ``loop``: one Python iteration per row over dicts of lists (numpy floats);
- ``release``: the algorithm as the ARLArena release computes it: per episode a backward loop for the
  discounted returns, the invalid-action penalty subtracted from each turn's return and episode score,
  then per uid group and per (uid, anchor) group a ``torch.mean`` / ``torch.std`` over a stack of
  per-row torch scalars (the style of verl's own GRPO).

All take the same inputs, return (B, T) float64 tensors and must agree (asserted) before timing.
Prints milliseconds per call (median of interleaved repeats) and each baseline / vectorised ratio;
verl's own ``grpo`` (episode term only) on the same rows for context. Then the anchor-similarity
grouping: 100 / 200 / 400 distinct 300-character anchors in one group, each a variation of one text
(the worst case: every pair passes the cheap bound), with both rules, against plain difflib over every
pair, and a 128-episode ALFWorld-like batch (16 groups x 8 episodes x 50 turns of text observations).

    python benchmarks/bench_advantages.py [--groups 64] [--repeats 5] [--tokens 64]
"""

import argparse
import difflib
import math
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
from omegaconf import OmegaConf

from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

from sampo_verl.algorithms.advantages import compute_gigpo_advantage, similar_anchor_ids
from sampo_verl.algorithms.multi_turn import EPS

EPISODES, TURNS, STATES, PENALTY = 8, 50, 20, 0.1


def make_batch(groups: int, tokens: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = groups * EPISODES * TURNS
    group = np.repeat(np.arange(groups), EPISODES * TURNS)
    episode = np.repeat(np.arange(groups * EPISODES), TURNS)
    step = np.tile(np.arange(TURNS), groups * EPISODES)
    valid = rng.random(n) > 0.1
    episode_reward = np.repeat(rng.integers(0, 2, groups * EPISODES).astype(np.float64), TURNS)
    step_reward = np.where(step == TURNS - 1, episode_reward, 0.0)  # the environment's reward, no penalty
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
            returns[i] = running - PENALTY * (not valid[i])  # the penalty on its own turn, after discounting
    by_state = defaultdict(list)
    for i in range(n):
        by_state[(uid[i], anchor[i])].append(i)
    step_adv = normalise(by_state, returns, singleton_zero=True)

    per_row = torch.tensor([episode_adv[i] + weight * step_adv[i] for i in range(n)], dtype=torch.float64)
    advantages = per_row.unsqueeze(-1) * mask
    return advantages, advantages


def gigpo_release(uid, non_tensor, mask, gamma: float, mode: str, weight: float = 1.0):
    """The release's way: per-episode return loops, then torch scalars grouped per uid and per anchor."""
    n = len(uid)
    traj, step, anchor = non_tensor["traj_uid"], non_tensor["step"], non_tensor["anchor"]
    reward, episode_reward, valid = non_tensor["step_reward"], non_tensor["episode_reward"], non_tensor["action_valid"]
    penalty = torch.tensor([PENALTY * (not v) for v in valid], dtype=torch.float64)
    returns = torch.zeros(n, dtype=torch.float64)
    by_episode = defaultdict(list)
    for i in range(n):
        by_episode[traj[i]].append(i)
    for rows in by_episode.values():
        running = 0.0
        for i in sorted(rows, key=lambda r: step[r], reverse=True):
            running = float(reward[i]) + gamma * running
            returns[i] = running
    returns = returns - penalty
    scores = torch.tensor(episode_reward, dtype=torch.float64) - penalty

    def normalise(keys, values: torch.Tensor, singleton_zero: bool) -> torch.Tensor:
        groups = defaultdict(list)
        for i in range(n):
            groups[keys[i]].append(values[i])
        stats = {}
        for key, members in groups.items():
            if len(members) == 1:
                stats[key] = (torch.tensor(0.0), torch.tensor(1.0), True)
            else:
                stacked = torch.stack(members)
                stats[key] = (torch.mean(stacked), torch.std(stacked), False)
        out = torch.zeros(n, dtype=torch.float64)
        for i in range(n):
            mean, std, single = stats[keys[i]]
            value = values[i] - mean
            if mode == "mean_std_norm":
                value = value / (std + EPS)
            out[i] = 0.0 if singleton_zero and single else value
        return out

    episode_adv = normalise(list(uid), scores, singleton_zero=mode == "mean_norm")
    step_adv = normalise([(uid[i], anchor[i]) for i in range(n)], returns, singleton_zero=True)
    advantages = (episode_adv + weight * step_adv).unsqueeze(-1) * mask
    return advantages, advantages


def similarity_batch(rng: np.random.Generator, distinct: int, length: int = 300, edits: int = 12) -> np.ndarray:
    """``distinct`` variations of one text (``edits`` random character changes each)."""
    words = "you are in the middle of a room looking around you see a cabinet countertop drawer fridge sink".split()
    base = list(" ".join(rng.choice(words, length))[:length])
    texts = []
    for _ in range(distinct):
        text = list(base)
        for k in rng.integers(0, length, edits):
            text[k] = chr(97 + int(rng.integers(0, 26)))
        texts.append("".join(text))
    return np.array(texts, dtype=object)


def plain_difflib(texts, threshold: float) -> None:
    """The sorted rule as it was written before: a fresh SequenceMatcher per pair, quick_ratio, then ratio."""
    reps: list[str] = []
    for text in sorted(set(texts)):
        for rep in reps:
            matcher = difflib.SequenceMatcher(None, rep, text, autojunk=False)
            if matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold:
                break
        else:
            reps.append(text)


def bench_similarity(threshold: float = 0.975) -> None:
    """The anchor-similarity grouping alone (see the module docstring)."""
    rng = np.random.default_rng(0)
    for distinct in (100, 200, 400):
        anchors = similarity_batch(rng, distinct)
        group = np.zeros(distinct, dtype=np.int64)
        plain_ms = median_ms(lambda: plain_difflib(list(anchors), threshold), 1)
        line = f"similarity {distinct:4d} distinct 300-char anchors, one group: before {plain_ms:8.1f} ms"
        for rule in ("sorted", "release"):
            ms = median_ms(lambda: similar_anchor_ids(anchors, group, threshold, rule), 1)
            line += f"  {rule} {ms:7.1f} ms ({plain_ms / ms:4.1f}x)"
        print(line)
    # ALFWorld-like: 16 groups x 8 episodes x 50 turns; per group 30 rooms of 300 characters, each seen in
    # two states (an item there or not), so 60 distinct observations that revisits repeat exactly
    rows, uid = [], []
    for g in range(16):
        rooms = similarity_batch(rng, 30, length=300, edits=30)
        states = [room[:-8] + suffix for room in rooms for suffix in (" a mug 1", " nothing")]
        rows += [states[int(i)] for i in rng.integers(0, len(states), 8 * 50)]
        uid += [g] * (8 * 50)
    anchors, group = np.array(rows, dtype=object), np.array(uid)
    for rule in ("sorted", "release"):
        ms = median_ms(lambda: similar_anchor_ids(anchors, group, 0.95, rule), 1)
        print(f"similarity ALFWorld-like batch (128 episodes, {len(rows)} turns, threshold 0.95): {rule} {ms:8.1f} ms")


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
    parser.add_argument("--only-similarity", action="store_true", help="time the anchor grouping only")
    args = parser.parse_args()
    if args.only_similarity:
        bench_similarity()
        return

    for groups in (args.groups, 4 * args.groups):
        uid, non_tensor, mask = make_batch(groups, args.tokens)
        token_level_rewards = torch.zeros_like(mask)  # unused by the estimator beyond shape/dtype
        for mode in ("mean_std_norm", "mean_norm"):
            config = OmegaConf.create({"gamma": 0.95, "gigpo": {"mode": mode, "invalid_penalty": PENALTY}})

            def vectorised():
                return compute_gigpo_advantage(
                    token_level_rewards, mask, index=uid, config=config, non_tensor_batch=non_tensor
                )

            baselines = {
                "loop": lambda: gigpo_loop(uid, non_tensor, mask, gamma=0.95, mode=mode),
                "release": lambda: gigpo_release(uid, non_tensor, mask, gamma=0.95, mode=mode),
            }
            ours = vectorised()[0]
            for baseline in baselines.values():
                torch.testing.assert_close(ours, baseline()[0], rtol=1e-9, atol=1e-9)
            times = {name: [] for name in ["vectorised", *baselines]}
            for _ in range(args.repeats):  # interleaved
                times["vectorised"].append(median_ms(vectorised, 1))
                for name, baseline in baselines.items():
                    times[name].append(median_ms(baseline, 1))
            ms = {name: statistics.median(values) for name, values in times.items()}
            line = f"gigpo {mode:13s} {len(uid):7d} turns: vectorised {ms['vectorised']:8.1f} ms"
            for name in baselines:
                line += f"  {name} {ms[name]:8.1f} ms ({ms[name] / ms['vectorised']:5.1f}x)"
            print(line)
        verl_ms = median_ms(lambda: compute_grpo_outcome_advantage(token_level_rewards, mask, uid), 1)
        print(f"verl grpo (episode term only) {len(uid):7d} turns: {verl_ms:8.1f} ms")
    bench_similarity()


if __name__ == "__main__":
    main()
