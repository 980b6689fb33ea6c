import numpy as np
import pytest

from sampo_verl.envs import make_env
from sampo_verl.envs.sokoban import SokobanEnv, render, solve


def room(text: str):
    """Parse a room drawn with the env's symbols into (walls, targets, state)."""
    rows = text.strip().split("\n")
    walls = np.array([[ch == "#" for ch in row] for row in rows])
    cells = {(r, c): ch for r, row in enumerate(rows) for c, ch in enumerate(row)}
    targets = frozenset(p for p, ch in cells.items() if ch in "O√S")
    boxes = frozenset(p for p, ch in cells.items() if ch in "X√")
    player = next(p for p, ch in cells.items() if ch in "PS")
    return walls, targets, (player, boxes)


def load(env: SokobanEnv, text: str) -> None:
    env.walls, env.targets, env.state = room(text)
    env._expert_cache = {}


ROOM = """
######
#P_X_#
#____#
#__O_#
######
"""


def test_render_roundtrip():
    walls, targets, state = room(ROOM)
    assert render(walls, targets, state) == ROOM.strip()


def test_walls_block_and_pushes_move_boxes():
    env = SokobanEnv()
    load(env, ROOM)
    obs, reward, done, info = env.step("up")  # into the wall: nothing moves, step costs 0.1
    assert obs == ROOM.strip() and reward == pytest.approx(-0.1) and not done
    obs, reward, done, _ = env.step("right")
    obs, reward, done, _ = env.step("right")  # pushes the box one cell right
    assert obs.split("\n")[1] == "#__PX#" and reward == pytest.approx(-0.1)
    obs, reward, done, _ = env.step("right")  # box against the wall: blocked
    assert obs.split("\n")[1] == "#__PX#"


def test_blocked_push_leaves_the_state_unchanged():
    env = SokobanEnv()
    load(env, ROOM)
    env.step("right")
    env.step("down")
    env.step("right")
    assert env.state[0] == (2, 3)
    env.step("up")  # the box at (1, 3) would go into the wall at (0, 3)
    assert env.state == ((2, 3), frozenset({(1, 3)}))


def test_box_onto_target_wins():
    env = SokobanEnv()
    load(env, """
######
#_P__#
#_X__#
#_O__#
######
""")
    obs, reward, done, info = env.step("down")
    assert reward == pytest.approx(-0.1 + 1.0 + 10.0) and done and info["won"]
    assert obs.split("\n")[3] == "#_√__#" and info["anchor"] == obs


def test_push_off_target_costs():
    env = SokobanEnv(num_boxes=1)
    load(env, """
######
#_P__#
#_√__#
#____#
#O___#
######
""")
    env.targets = frozenset({(2, 2), (4, 1)})
    env.state = (env.state[0], frozenset({(2, 2)}))
    _, reward, done, _ = env.step("down")
    assert reward == pytest.approx(-0.1 - 1.0) and not done


def test_unknown_action_is_a_clear_error():
    env = SokobanEnv()
    env.reset(0)
    with pytest.raises(ValueError, match="unknown action"):
        env.step("jump")


def test_reset_is_deterministic_and_seeds_differ():
    a, b = SokobanEnv(dim_room=(7, 7), num_boxes=2), SokobanEnv(dim_room=(7, 7), num_boxes=2)
    assert a.reset(11)[0] == b.reset(11)[0]
    assert len({a.reset(s)[0] for s in range(20)}) == 20


@pytest.mark.parametrize("options", [{}, {"dim_room": (7, 7), "num_boxes": 2}])
def test_expert_solves_every_generated_room(options):
    env = make_env("sokoban", **options)
    for seed in range(50):
        obs, info = env.reset(seed)
        assert not info["won"] and obs.count("X") >= 1
        for _ in range(env.search_depth):
            obs, reward, done, info = env.step(env.expert_action())
            if done:
                break
        assert done and info["won"], f"seed {seed}"


def test_solution_is_within_the_search_depth():
    env = SokobanEnv(search_depth=12)
    for seed in range(30):
        env.reset(seed)
        assert len(solve(env.walls, env.targets, env.state)) <= 12


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="dim_room"):
        SokobanEnv(dim_room=(3, 3))
    with pytest.raises(ValueError, match="num_boxes"):
        SokobanEnv(dim_room=(5, 5), num_boxes=8)
