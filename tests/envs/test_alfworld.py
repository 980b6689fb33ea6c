"""ALFWorld adapter and offline game generator (skipped when alfworld is not installed)."""

import shutil

import numpy as np
import pytest

pytest.importorskip("alfworld")
pytest.importorskip("textworld")

from sampo_verl.envs import make_env  # noqa: E402
from sampo_verl.envs.alfworld import ALL_TASK_TYPES, ALFWorldEnv  # noqa: E402
from sampo_verl.envs.alfworld_gen import CAN_HOLD, TOOLS, draw_game  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("alfworld_games"))


def play_expert(env: ALFWorldEnv, seed: int, task=None, max_steps: int = 60):
    obs, info = env.reset(seed, task)
    assert not info["won"] and "help" not in info["admissible_actions"]
    rewards, anchors = [], [info["anchor"]]
    for _ in range(max_steps):
        action = env.expert_action()
        assert action in info["admissible_actions"], action
        obs, reward, done, info = env.step(action)
        rewards.append(reward)
        anchors.append(info["anchor"])
        if done:
            break
    return info, rewards, anchors


@pytest.mark.parametrize("task_type", ALL_TASK_TYPES)
def test_expert_wins_generated_games_of_every_task_type(cache, task_type):
    env = make_env("alfworld", cache_dir=cache, task_types=[task_type], num_receptacles=6, num_objects=6)
    for seed in range(3):
        info, rewards, _ = play_expert(env, seed)
        assert info["won"], (task_type, seed)
        assert rewards[-1] == 10.0 and all(r == 0.0 for r in rewards[:-1])
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task_type", ALL_TASK_TYPES)
def test_expert_wins_fifty_default_size_games(cache, task_type):
    env = make_env("alfworld", cache_dir=cache, task_types=[task_type])
    for seed in range(50):
        assert play_expert(env, seed)[0]["won"], (task_type, seed)


@pytest.mark.parametrize("task_type", ALL_TASK_TYPES)
def test_generator_places_what_the_task_needs(task_type):
    for seed in range(20):
        spec = draw_game(np.random.default_rng(seed), task_type, num_receptacles=7, num_objects=9)
        assert len(spec.receptacles) == 7
        targets = [slot for obj, slot in spec.objects if obj == spec.object_target]
        assert len(targets) == (2 if task_type == "pick_two_obj_and_place" else 1)
        assert all(spec.receptacles[slot] != spec.parent_target for slot in targets)  # goal not yet reached
        assert all(obj in CAN_HOLD[spec.receptacles[slot]] for obj, slot in spec.objects if obj != "DeskLamp")
        if task_type in TOOLS:
            assert TOOLS[task_type] in spec.receptacles and spec.parent_target != TOOLS[task_type]
        if task_type == "look_at_obj_in_light":
            assert spec.toggle_target == "DeskLamp" and spec.parent_target == ""
        else:
            assert spec.object_target in CAN_HOLD[spec.parent_target]
        assert spec.object_target.lower() in spec.task_desc


def test_reset_is_deterministic_and_task_text_is_split_off(cache):
    a = ALFWorldEnv(cache_dir=cache, num_receptacles=5, num_objects=5)
    b = ALFWorldEnv(cache_dir=cache, num_receptacles=5, num_objects=5)
    (obs_a, info_a), (obs_b, info_b) = a.reset(7), b.reset(7)
    assert obs_a == obs_b and info_a == info_b
    assert obs_a.startswith("You are in the middle of a room") and "Your task" not in obs_a
    assert info_a["task"] and info_a["task"] == a.task
    a.close()
    b.close()


def test_task_override_and_seed_cycling(cache):
    env = ALFWorldEnv(cache_dir=cache, task_types=["pick_heat_then_place", "pick_two_obj"], num_receptacles=5)
    env.reset(0)
    assert "hot" in env.task or "heat" in env.task
    env.reset(1)
    assert "two" in env.task
    env.reset(1, {"task_type": "look_at_obj_in_light"})
    assert "desklamp" in env.task
    with pytest.raises(ValueError, match="task type"):
        env.reset(0, {"task_type": "fly"})
    env.close()


def test_non_admissible_command_changes_nothing_and_anchor_tracks_state(cache):
    env = ALFWorldEnv(cache_dir=cache, num_receptacles=5, num_objects=5)
    _, info = env.reset(3)
    obs, reward, done, after = env.step("take the moon")
    assert obs == "Nothing happens." and reward == 0.0 and not done and after["anchor"] == info["anchor"]
    go = next(a for a in info["admissible_actions"] if a.startswith("go to"))
    _, _, _, moved = env.step(go)
    assert moved["anchor"] != info["anchor"]
    obs_env = ALFWorldEnv(cache_dir=cache, num_receptacles=5, num_objects=5, anchor="observation")
    obs, info = obs_env.reset(3)
    assert info["anchor"] == obs
    env.close()
    obs_env.close()


def test_official_game_directory_is_played_by_seed(cache, tmp_path):
    gen = ALFWorldEnv(cache_dir=cache, num_receptacles=5, num_objects=5)
    for i, task_type in enumerate(["pick_and_place", "pick_cool_then_place"]):
        src = gen.game_file(0, {"task_type": task_type})
        shutil.copytree(src.rsplit("/", 1)[0], tmp_path / "json_2.1.1" / "train" / f"{task_type}-game" / "trial_T0")
    official = ALFWorldEnv(game_files=str(tmp_path), anchor="observation")
    assert len(official._games) == 2
    _, info0 = official.reset(0)
    _, info2 = official.reset(2)
    assert info0["task"] == info2["task"]
    only_cool = ALFWorldEnv(game_files=str(tmp_path), task_types=["pick_cool_then_place"])
    assert len(only_cool._games) == 1
    info, _, _ = play_expert(only_cool, 5)
    assert info["won"]
    with pytest.raises(FileNotFoundError, match="game_files"):
        ALFWorldEnv(game_files=str(tmp_path), task_types=["pick_two_obj"])


def test_bad_options_name_the_field(cache):
    with pytest.raises(ValueError, match="anchor"):
        ALFWorldEnv(anchor="pixels")
    env = ALFWorldEnv(cache_dir=cache, num_receptacles=2)
    with pytest.raises(ValueError, match="num_receptacles"):
        env.reset(0)
