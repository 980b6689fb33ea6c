"""Held-out evaluation: the RL agent loop against the HF generation server, in one process."""

import asyncio

import pytest

from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.runs.evaluate import evaluate, play_episodes

LAKE = {"size": 3, "hole_prob": 0.3}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("model"), size=ModelSize(hidden=64, init_std=0.3), seed=0)


def play(model_dir, concurrency):
    return asyncio.run(
        play_episodes(
            model_dir, "frozenlake", [5, 6, 7, 8], env_options=LAKE, max_turns=3, response_length=12,
            concurrency=concurrency,
        )
    )  # fmt: skip


def test_greedy_episodes_do_not_depend_on_batching(model_dir):
    alone, batched = play(model_dir, concurrency=1), play(model_dir, concurrency=4)
    assert [e["seed"] for e in batched] == [5, 6, 7, 8]
    assert alone == batched
    # an untrained model does not follow the answer format: every turn is an invalid action
    assert all(e["invalid_action_rate"] == 1.0 and e["episode_length"] == 3 for e in batched)


def test_evaluate_averages_the_episodes(model_dir):
    episodes = play(model_dir, concurrency=4)
    result = evaluate(model_dir, "frozenlake", [5, 6, 7, 8], env_options=LAKE, max_turns=3, response_length=12)
    assert result.episodes == 4
    assert result.success_rate == sum(e["success"] for e in episodes) / 4
    assert result.mean_turns == sum(e["episode_length"] for e in episodes) / 4
    with pytest.raises(ValueError, match="no seeds"):
        evaluate(model_dir, "frozenlake", [])
