import numpy as np
import pytest

from sampo_verl.envs import make_env
from sampo_verl.envs.frozenlake import FrozenLakeEnv, shortest_path


def lake(env: FrozenLakeEnv, text: str) -> None:
    rows = text.strip().split("\n")
    env.holes = np.array([[ch == "H" for ch in row] for row in rows])
    env.size, env.goal, env.player = len(rows), (len(rows) - 1, len(rows) - 1), (0, 0)


def test_hole_ends_the_episode_lost():
    env = FrozenLakeEnv(size=3)
    env.reset(0)
    lake(env, "P_H\nH__\n__G")
    obs, reward, done, info = env.step("down")
    assert done and reward == 0.0 and not info["won"] and obs == "__H\nP__\n__G"


def test_goal_wins_and_edges_block():
    env = FrozenLakeEnv(size=3)
    env.reset(0)
    lake(env, "P_H\nH__\n__G")
    obs, reward, done, _ = env.step("up")  # off the map: stays
    assert env.player == (0, 0) and not done and reward == 0.0
    for action in ["right", "down", "right"]:
        obs, reward, done, info = env.step(action)
        assert not done
    obs, reward, done, info = env.step("down")
    assert done and reward == 1.0 and info["won"] and info["anchor"] == obs == "__H\nH__\n__P"


def test_shortest_path_avoids_holes():
    holes = np.array([[0, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    assert shortest_path(holes, (0, 0), (2, 2)) == ["right", "right", "down", "down"]
    holes[0, 2] = True
    assert shortest_path(holes, (0, 0), (2, 2)) is None


def test_reset_is_deterministic():
    a, b = FrozenLakeEnv(size=6, hole_prob=0.3), FrozenLakeEnv(size=6, hole_prob=0.3)
    assert a.reset(5)[0] == b.reset(5)[0]
    assert len({a.reset(s)[0] for s in range(20)}) > 15


@pytest.mark.parametrize("size,hole_prob", [(4, 0.2), (8, 0.35)])
def test_expert_wins_every_generated_lake_in_shortest_steps(size, hole_prob):
    env = make_env("frozenlake", size=size, hole_prob=hole_prob)
    for seed in range(50):
        env.reset(seed)
        optimal = len(shortest_path(env.holes, (0, 0), env.goal))
        assert optimal >= 2 * (size - 1)
        for steps in range(1, optimal + 1):
            _, reward, done, info = env.step(env.expert_action())
            if done:
                break
        assert done and info["won"] and reward == 1.0 and steps == optimal


def test_slippery_moves_follow_the_episode_seed():
    runs = []
    for _ in range(2):
        env = FrozenLakeEnv(size=8, hole_prob=0.0, is_slippery=True)
        env.reset(3)
        runs.append([env.step("right")[0] for _ in range(5)])
    assert runs[0] == runs[1]
    env.reset(3)
    positions = {env.step("right") and env.player for _ in range(30)}
    assert len(positions) > 1


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="hole_prob"):
        FrozenLakeEnv(hole_prob=1.0)
    with pytest.raises(ValueError, match="size"):
        FrozenLakeEnv(size=1)


def test_describe_neighbors_names_what_each_move_leads_into():
    env = FrozenLakeEnv(size=3, describe_neighbors=True)
    env.reset(0)
    lake(env, "P_H\nH__\n__G")
    assert env._render() == "P_H\nH__\n__G\nup: wall, down: hole, left: wall, right: ice"
    obs, _, done, _ = env.step("right")
    assert not done and obs == "_PH\nH__\n__G\nup: wall, down: ice, left: ice, right: hole"
    env.step("down")
    obs, _, _, info = env.step("right")
    assert obs.endswith("up: hole, down: goal, left: ice, right: wall") and info["anchor"] == obs
    assert FrozenLakeEnv(size=3).reset(0)[0].count("\n") == 2  # off by default: the grid alone
