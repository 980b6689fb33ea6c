"""Expert SFT data: verl's SFT dataset sees exactly the agent loop's prompt tokens for the same state."""

import asyncio
import importlib.util
import json

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

from sampo_verl.agent.loop import EnvAgentLoop
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.envs import make_env
from sampo_verl.agent.prompts import format_response
from sampo_verl.testing.scripted_server import ScriptedServer
from sampo_verl.bc.sft_data import DEFAULT_THOUGHT, expert_episode, main, write_sft_splits

TOKENIZER = build_tokenizer(default_corpus(), vocab_size=512)  # the tiny model's tokenizer (sampo-verl assets)
SFT_DATA_CONFIG = OmegaConf.create({"pad_mode": "no_padding", "max_length": 4096, "truncation": "error"})
NEEDS_ALFWORLD = pytest.mark.skipif(importlib.util.find_spec("alfworld") is None, reason="alfworld not installed")
SOKOBAN = {"dim_room": [6, 6], "search_depth": 10}


def agent_loop_episode(env: str, seed: int, env_options: dict, responses: list[str], history_length: int):
    """Play the episode with the RL agent loop, answering turn i with ``responses[i]``."""
    server = ScriptedServer(TOKENIZER, lambda prompt, i: responses[i])

    async def run():
        loop = EnvAgentLoop.standalone(
            server,
            TOKENIZER,
            {"prompt_length": 4096, "response_length": 128},
            hf_model_type="qwen2",  # what verl passes for the tiny Qwen2 model (its config's model_type)
            history_length=history_length,
        )
        extra_info = {"env": env, "seed": seed, "env_options": env_options}
        return await loop.run({"temperature": 1.0}, raw_prompt=[], extra_info=extra_info, uid="u")

    return asyncio.run(run())


def expert_actions(env_name: str, seed: int, env_options: dict) -> list[str]:
    """The expert's actions of episode ``seed``, played on a fresh environment."""
    env = make_env(env_name, **env_options)
    env.reset(seed)
    actions, done = [], False
    while not done:
        actions.append(env.expert_action())
        _, _, done, _ = env.step(actions[-1])
    env.close()
    return actions


def sft_turns(path, seed: int) -> tuple[list[dict], list[dict]]:
    """The rows of episode ``seed`` and verl's SFT dataset items for them, in turn order."""
    rows = pd.read_parquet(path)
    dataset = MultiTurnSFTDataset(str(path), TOKENIZER, SFT_DATA_CONFIG)
    index = [i for i, info in enumerate(rows.extra_info) if info["seed"] == seed]
    index.sort(key=lambda i: rows.extra_info[i]["step"])
    return [rows.iloc[i].to_dict() for i in index], [dataset[i] for i in index]


@pytest.mark.parametrize(
    ("env", "env_options", "history_length"),
    [
        ("sokoban", SOKOBAN, 2),
        ("frozenlake", {"size": 4, "hole_prob": 0.3}, 2),
        ("frozenlake", {"size": 4}, 0),
        pytest.param("alfworld", {"num_receptacles": 5, "num_objects": 5}, 2, marks=NEEDS_ALFWORLD),
    ],
)
def test_sft_prompt_and_response_tokens_equal_the_agent_loops(tmp_path, env, env_options, history_length):
    if env == "alfworld":  # task text and admissible commands in every prompt
        env_options = {**env_options, "cache_dir": str(tmp_path / "games")}
    written = write_sft_splits(
        str(tmp_path / "data"), env, episodes=4, val_episodes=0, env_options=env_options, history_length=history_length
    )
    rows_all = pd.read_parquet(written["train"][0])
    seed = max(range(4), key=lambda s: sum(info["seed"] == s for info in rows_all.extra_info))  # longest episode
    rows, items = sft_turns(written["train"][0], seed)
    assert len(rows) >= 2
    responses = [row["messages"][1]["content"] for row in rows]
    outputs = agent_loop_episode(env, seed, env_options, responses, history_length)

    assert len(outputs) == len(items)  # the expert's responses win the agent loop's episode, turn for turn
    assert outputs[-1].extra_fields["success"] == 1.0
    newline = TOKENIZER.encode("\n", add_special_tokens=False)
    actions = expert_actions(env, seed, env_options)
    for step, (out, item, action) in enumerate(zip(outputs, items, actions, strict=True)):
        input_ids, loss_mask = item["input_ids"], item["loss_mask"]
        start = int(loss_mask.argmax())
        assert loss_mask[:start].sum() == 0 and bool(loss_mask[start:].all())  # one trained span: the response
        assert input_ids[:start].tolist() == out.prompt_ids  # the prompt, token for token
        response_ids = TOKENIZER.encode(
            format_response(DEFAULT_THOUGHT.format(action=action), action), add_special_tokens=False
        )
        assert out.response_ids == response_ids + [TOKENIZER.eos_token_id]
        # verl trains the response, its end-of-turn token and the template's newline after it
        assert input_ids[start:].tolist() == out.response_ids + newline
        assert out.extra_fields["action_valid"] and out.extra_fields["anchor"] == rows[step]["extra_info"]["anchor"]


def test_episodes_follow_the_expert_and_splits_use_held_out_seeds(tmp_path):
    written = write_sft_splits(str(tmp_path), "sokoban", episodes=5, val_episodes=3, seed=7, env_options=SOKOBAN)
    train, val = (pd.read_parquet(written[split][0]) for split in ("train", "val"))
    assert written["train"][1:] == (len(train), 5) and written["val"][1:] == (len(val), 3)
    assert {info["seed"] for info in train.extra_info} == set(range(7, 12))
    assert {info["seed"] for info in val.extra_info} == set(range(VAL_SEED_OFFSET + 7, VAL_SEED_OFFSET + 10))
    for seed in range(7, 12):  # one row per expert turn, showing the state the expert acted in
        rows = sorted(
            (r for r in train.to_dict("records") if r["extra_info"]["seed"] == seed),
            key=lambda r: r["extra_info"]["step"],
        )
        actions = expert_actions("sokoban", seed, SOKOBAN)
        assert [r["extra_info"]["step"] for r in rows] == list(range(len(actions)))
        env = make_env("sokoban", **SOKOBAN)
        obs, _ = env.reset(seed)
        for row, action in zip(rows, actions):
            assert f"Current observation:\n{obs}" in row["messages"][0]["content"]
            assert row["messages"][1]["content"] == format_response(DEFAULT_THOUGHT.format(action=action), action)
            obs, _, _, _ = env.step(action)


def test_episodes_the_expert_cannot_win_in_time_are_dropped():
    long_seed = next(s for s in range(100) if len(expert_episode("sokoban", s, SOKOBAN)) >= 3)
    assert expert_episode("sokoban", long_seed, SOKOBAN, max_turns=2) is None
    assert len(expert_episode("sokoban", long_seed, SOKOBAN, max_turns=3)) >= 3


def test_the_last_turn_is_repeated_on_request():
    options = {"kinds": ["gcd_lcm"], "difficulty": 1}
    once = expert_episode("tir_math", 3, options, thought="")
    thrice = expert_episode("tir_math", 3, options, thought="", last_turn_repeats=3)
    assert len(once) == 2 and thrice == [*once, once[-1], once[-1]]
    with pytest.raises(ValueError, match="last_turn_repeats"):
        expert_episode("tir_math", 3, options, thought="", last_turn_repeats=0)


def test_cli_writes_parquet_for_verls_sft_dataset(tmp_path, capsys):
    options = json.dumps({"size": 3, "hole_prob": 0.0})
    main(["--env", "frozenlake", "--episodes", "2", "--val-episodes", "1", "--out", str(tmp_path),
          "--env-options", options,
          "--thought", "go {action}"])  # fmt: skip
    assert "train: " in capsys.readouterr().out
    dataset = MultiTurnSFTDataset(str(tmp_path / "val.parquet"), TOKENIZER, SFT_DATA_CONFIG)
    item = dataset[0]  # first turn of the first held-out episode
    action = expert_actions("frozenlake", VAL_SEED_OFFSET, {"size": 3, "hole_prob": 0.0})[0]
    trained = TOKENIZER.decode(item["input_ids"][item["loss_mask"].bool()])
    assert trained == f"<think>go {action}</think><action>{action}</action><|im_end|>\n"
    assert torch.equal(item["position_ids"], torch.arange(len(item["input_ids"])))


def test_a_planning_thought_clones_the_remaining_path_so_turn_lengths_vary():
    """``{plan}``: each turn thinks the expert's whole remaining path; on FrozenLake it shrinks by one move
    a turn, and following it wins."""
    options = {"size": 6, "hole_prob": 0.25}
    rows = expert_episode("frozenlake", 3, options, max_turns=14, thought="{plan}")
    thoughts = [r["messages"][-1]["content"].split("<think>")[1].split("</think>")[0] for r in rows]
    plans = [t.split() for t in thoughts]
    assert [len(p) for p in plans] == list(range(len(rows), 0, -1)) and len(rows) >= 10
    assert all(later == plan[1:] for plan, later in zip(plans, plans[1:]))  # the same path, one move on
    env = make_env("frozenlake", **options)
    env.reset(3)
    for row, plan in zip(rows, plans):
        assert row["messages"][-1]["content"] == format_response(" ".join(plan), plan[0])
        _, _, done, info = env.step(plan[0])
    assert done and info["won"]
    # an environment that does not plan ahead thinks its next action
    first = expert_episode("sokoban", 0, SOKOBAN, thought="{plan}")[0]
    action = expert_actions("sokoban", 0, SOKOBAN)[0]
    assert first["messages"][1]["content"] == format_response(action, action)
