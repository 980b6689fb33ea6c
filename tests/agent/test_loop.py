"""The env agent loop against a scripted server with verl's LLMServerClient call signature."""

import asyncio
import dataclasses
import time

import hydra
import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopOutput,
    DictConfigWrap,
    ToolListWrap,
    _agent_loop_registry,
)
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from sampo_verl.agent import turns
from sampo_verl.agent.loop import EnvAgentLoop, standalone_config
from sampo_verl.envs import TextEnv, make_env, register_env
from sampo_verl.agent.prompts import format_response
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.testing.scripted_server import ScriptedServer
from sampo_verl.trainer.staleness import staleness_metrics

TOKENIZER = build_tokenizer(default_corpus())  # the tiny model's tokenizer
LAKE = {"env": "frozenlake", "seed": 3, "env_options": '{"size": 4, "hole_prob": 0.3}'}


def trainer_config(use_v1: bool = True):
    config = standalone_config({"prompt_length": 4096, "response_length": 64})
    config.trainer.use_v1 = use_v1
    return config


def make_loop(server, config=None, **loop_options):
    """Instantiate the loop exactly as verl's AgentLoopWorker does (hydra + registry entry)."""
    config = config or trainer_config()
    return hydra.utils.instantiate(
        config={**_agent_loop_registry["sampo_env_agent"], **loop_options},
        trainer_config=DictConfigWrap(config=config),
        server_manager=server,
        tokenizer=TOKENIZER,
        processor=None,
        hf_model_type=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
        tools=ToolListWrap([]),
    )


def play(
    policy, extra_info=LAKE, logprob=None, versions=lambda index: (0, 0), **loop_options
) -> tuple[list[AgentLoopOutput], ScriptedServer]:
    server = ScriptedServer(TOKENIZER, policy, logprob=logprob, versions=versions)

    async def main():
        loop = make_loop(server, **loop_options)
        return await loop.run({"temperature": 1.0}, raw_prompt=[], extra_info=extra_info, uid="u1", session_id=2)

    return asyncio.run(main()), server


def scripted(responses):
    return lambda prompt, i: responses[i] if i < len(responses) else responses[-1]


def expert_plan(extra_info=LAKE):
    env = make_env("frozenlake", size=4, hole_prob=0.3)
    obs, info = env.reset(extra_info["seed"])
    observations, plan, done = [obs], [], False
    while not done:
        plan.append(env.expert_action())
        obs, _, done, _ = env.step(plan[-1])
        observations.append(obs)
    return plan, observations


def test_expert_episode_one_output_per_turn_with_fields():
    plan, observations = expert_plan()
    responses = [format_response(f"go {a}", a) for a in plan]
    outputs, server = play(scripted(responses), logprob=-0.5)
    assert len(outputs) == len(plan) == len(server.calls)
    for step, (out, response) in enumerate(zip(outputs, responses)):
        expected_ids = TOKENIZER.encode(response, add_special_tokens=False) + [TOKENIZER.eos_token_id]
        assert out.response_ids == expected_ids and out.response_mask == [1] * len(expected_ids)
        assert out.response_logprobs == [-0.5] * len(expected_ids)
        assert out.prompt_ids == server.calls[step][1]
        prompt = TOKENIZER.decode(out.prompt_ids)
        assert f"Current observation:\n{observations[step]}" in prompt and "<action>" in prompt
        f = out.extra_fields
        assert f["traj_uid"] == "u1_2" and f["step"] == step and f["anchor"] == observations[step]
        assert f["action_valid"] and f["format_valid"] and f["parse_reason"] == "ok"
        assert f["step_reward"] == (1.0 if step == len(plan) - 1 else 0.0)
        assert f["won"] == (step == len(plan) - 1)
        assert f["episode_reward"] == 1.0 and out.reward_score == 1.0
        assert f["success"] == 1.0 and f["episode_length"] == len(plan) and f["invalid_action_rate"] == 0.0
        assert f["reward_extra_info"]["success"] == 1.0 and f["env_error"] == 0.0
        assert f["reward_extra_info"]["acc"] == 1.0  # verl validation's core metric
        assert f["reward_extra_info"]["task_seed"] == LAKE["seed"]  # which held-out task (validation records)
        assert out.num_turns == 2 * len(plan)
    # the outputs go through verl's TransferQueue conversion unchanged
    td = list_of_dict_to_tensordict([o.as_dict() for o in outputs])
    assert td.batch_size[0] == len(plan)
    assert td["extra_fields"][0]["traj_uid"] == "u1_2"


def test_each_turn_carries_the_weight_versions_it_ran_on_when_weights_change_mid_episode():
    """Weights go from version 3 to 4 during the second call (aborted and resumed: partial rollout) and
    stay at 4: each turn sample keeps its own versions, and the episode spans two."""
    plan, _ = expert_plan()
    assert len(plan) >= 3
    responses = [format_response(f"go {a}", a) for a in plan]
    outputs, _ = play(scripted(responses), versions=lambda i: [(3, 3), (3, 4)][i] if i < 2 else (4, 4))
    versions = [(o.extra_fields["min_global_steps"], o.extra_fields["max_global_steps"]) for o in outputs]
    assert versions == [(3, 3), (3, 4)] + [(4, 4)] * (len(plan) - 2)
    metrics = staleness_metrics([o.extra_fields for o in outputs], global_steps=6)  # step 6 trains version 5
    stale = [2, 1] + [1] * (len(plan) - 2)
    assert metrics["sampo/staleness/turn_mean"] == pytest.approx(sum(stale) / len(plan))
    assert metrics["sampo/staleness/turn_span_frac"] == pytest.approx(1 / len(plan))
    assert metrics["sampo/staleness/episode_span_frac"] == 1.0
    assert metrics["sampo/staleness/episode_versions_mean"] == 2.0


def test_invalid_turns_are_flagged_and_do_not_step_the_env():
    plan, observations = expert_plan()
    responses = ["no tags at all", "<think>x</think><action>jump</action>", format_response("ok", plan[0])]
    outputs, _ = play(scripted(responses), max_turns=3)
    fields = [o.extra_fields for o in outputs]
    assert [f["parse_reason"] for f in fields] == ["missing_think", "not_admissible", "ok"]
    assert [f["action_valid"] for f in fields] == [False, False, True]
    assert [f["format_valid"] for f in fields] == [False, True, True]
    assert [f["anchor"] for f in fields] == [observations[0]] * 3  # env not stepped on invalid turns
    assert [f["step_reward"] for f in fields] == [0.0, 0.0, 0.0]
    assert fields[0]["invalid_action_rate"] == pytest.approx(2 / 3) and fields[0]["success"] == 0.0
    assert fields[0]["episode_reward"] == 0.0
    last_prompt = TOKENIZER.decode(outputs[2].prompt_ids)
    assert "Action: (invalid: missing_think)" in last_prompt and "Action: (invalid: not_admissible)" in last_prompt


def test_history_window_shows_only_the_last_turns():
    outputs, _ = play(scripted([format_response("", "up")]), max_turns=4, history_length=2)
    prompts = [TOKENIZER.decode(o.prompt_ids) for o in outputs]
    assert "[Turn 1] Observation" not in prompts[3] and "[Turn 2] Observation" in prompts[3]
    assert "[Turn 3] Observation" in prompts[3] and "[Turn 4] Current observation" in prompts[3]
    assert "Your last" not in prompts[0] and "Your last 1 turn(s)" in prompts[1]


def test_max_turns_ends_the_episode_failed():
    info = {**LAKE, "max_turns": 5}
    outputs, _ = play(scripted([format_response("", "up")]), extra_info=info, max_turns=9)
    assert len(outputs) == 5  # the dataset row wins over the loop option
    assert all(o.extra_fields["success"] == 0.0 and not o.extra_fields["won"] for o in outputs)


def test_response_is_cut_to_response_length():
    long = format_response("x" * 500, "up")
    outputs, _ = play(scripted([long]), max_turns=1)
    assert len(outputs[0].response_ids) == 64 and outputs[0].extra_fields["parse_reason"] == "missing_action"


@register_env("test_grammar")
class GrammarEnv(TextEnv):
    """Accepts ``count[n]`` only; refuses anything else with ``invalid_action`` (and a reward it must not keep)."""

    def reset(self, seed, task=None):
        self.total = 0
        return "total 0", {"anchor": "0", "won": False}

    def step(self, action):
        if not (action.startswith("count[") and action.endswith("]") and action[6:-1].isdigit()):
            refused = {"anchor": str(self.total), "invalid_action": "no_count"}
            return f"total {self.total}; say count[n]", 5.0, False, refused
        self.total += int(action[6:-1])
        return f"total {self.total}", 1.0, self.total >= 3, {"anchor": str(self.total), "won": self.total >= 3}


def test_an_action_the_environment_refuses_is_an_invalid_turn():
    responses = [format_response("", a) for a in ("count[1]", "jump", "count[2]")]
    outputs, _ = play(scripted(responses), extra_info={"env": "test_grammar", "seed": 0}, max_turns=5)
    fields = [o.extra_fields for o in outputs]
    assert [f["action_valid"] for f in fields] == [True, False, True]
    assert [f["parse_reason"] for f in fields] == ["ok", "not_admissible", "ok"]
    assert [f["format_valid"] for f in fields] == [True, True, True]
    assert [f["step_reward"] for f in fields] == [1.0, 0.0, 1.0]  # the refused turn's reward is dropped
    assert [f["anchor"] for f in fields] == ["0", "1", "1"] and fields[0]["success"] == 1.0
    assert fields[0]["invalid_action_rate"] == pytest.approx(1 / 3)
    last_prompt = TOKENIZER.decode(outputs[2].prompt_ids)
    assert "Action: (invalid: no_count)" in last_prompt and "total 1; say count[n]" in last_prompt


@register_env("test_flaky")
class FlakyEnv(TextEnv):
    """Counts to ``fail_at`` and then raises (or hangs) in step."""

    def __init__(self, fail_at: int = 2, hang: bool = False):
        self.fail_at, self.hang = fail_at, hang

    def reset(self, seed, task=None):
        self.t = 0
        return "t=0", {"anchor": "t=0", "won": False}

    def step(self, action):
        self.t += 1
        if self.t == self.fail_at:
            if self.hang:
                time.sleep(1.0)
            else:
                raise RuntimeError("engine crashed")
        return f"t={self.t}", 1.0, False, {"anchor": f"t={self.t}", "won": False}


@pytest.mark.parametrize("hang", [False, True])
def test_env_failure_ends_the_episode_with_a_counted_error(hang):
    info = {"env": "test_flaky", "seed": 0, "env_options": {"fail_at": 2, "hang": hang}}
    outputs, _ = play(scripted([format_response("", "go")]), extra_info=info, env_timeout_s=0.2, max_turns=6)
    assert len(outputs) == 2
    assert all(o.extra_fields["env_error"] == 1.0 and o.extra_fields["success"] == 0.0 for o in outputs)
    assert outputs[0].extra_fields["episode_reward"] == 1.0  # the turn before the failure counts


def test_concurrent_episodes_stay_separate():
    plan, _ = expert_plan()
    server = ScriptedServer(TOKENIZER, lambda prompt, i: format_response("", "right"))

    async def main():
        loops = [make_loop(server, max_turns=3) for _ in range(8)]
        return await asyncio.gather(
            *(one.run({}, raw_prompt=[], extra_info=LAKE, uid="g", session_id=i) for i, one in enumerate(loops))
        )

    episodes = asyncio.run(main())
    assert sorted(e[0].extra_fields["traj_uid"] for e in episodes) == sorted(f"g_{i}" for i in range(8))
    assert all([o.extra_fields["step"] for o in e] == list(range(len(e))) for e in episodes)
    assert len({tuple(o.extra_fields["anchor"] for o in e) for e in episodes}) == 1  # same seed, same play


def test_bad_configuration_names_the_field():
    server = ScriptedServer(TOKENIZER, scripted(["x"]))
    # verl builds the loop through hydra, which wraps the loop's ValueError: the message still names the field
    with pytest.raises(InstantiationException, match="trainer.use_v1"):
        asyncio.run(_build(server, trainer_config(use_v1=False)))
    with pytest.raises(InstantiationException, match="max_turns"):
        asyncio.run(_build(server, trainer_config(), max_turns=0))
    with pytest.raises(KeyError, match="extra_info"):
        play(scripted(["x"]), extra_info={"seed": 1})
    with pytest.raises(KeyError, match="unknown environment"):
        play(scripted(["x"]), extra_info={"env": "nope"})


async def _build(server, config, **options):
    return make_loop(server, config, **options)


def test_alfworld_episode_shows_task_and_admissible_commands(tmp_path):
    pytest.importorskip("alfworld")
    info = {"env": "alfworld", "seed": 1, "env_options": {"cache_dir": str(tmp_path), "num_receptacles": 5}}

    def first_admissible(prompt, i):
        listed = prompt.split("Admissible actions: ")[1].split("\n")[0].split(", ")
        return format_response("try", listed[0])

    outputs, server = play(first_admissible, extra_info=info, max_turns=3)
    env = make_env("alfworld", cache_dir=str(tmp_path), num_receptacles=5)
    env.reset(1)
    prompt = TOKENIZER.decode(outputs[0].prompt_ids)
    assert f"Task: {env.task}" in prompt and "Admissible actions: go to" in prompt
    assert len(outputs) == 3 and all(o.extra_fields["action_valid"] for o in outputs)
    env.close()


def test_example_agent_loop_config_file_reaches_the_loop(monkeypatch):
    """verl loads agent_loop_config_path entries into its registry and instantiates them with hydra."""
    import pathlib

    entries = OmegaConf.load(pathlib.Path(__file__).parents[2] / "examples" / "agent_loops.yaml")
    monkeypatch.setitem(_agent_loop_registry, "sampo_env_agent", entries[0])
    loop = asyncio.run(_instantiate(ScriptedServer(TOKENIZER, scripted(["x"]))))
    assert isinstance(loop, EnvAgentLoop)
    assert (loop.max_turns, loop.history_length, loop.env_timeout_s) == (15, 2, 60.0)


async def _instantiate(server):
    return make_loop(server)


def test_every_turn_carries_exactly_the_schema_fields_with_their_types():
    outputs, _ = play(scripted(["no tags", format_response("", "down")]), max_turns=3)
    assert [out.extra_fields["action_valid"] for out in outputs][:2] == [False, True]
    for out in outputs:
        fields = dict(out.extra_fields)
        assert set(fields.pop(turns.REWARD_EXTRA_INFO)) == {
            *asdict_keys(turns.EpisodeOutcome), turns.VAL_ACC, turns.TASK_SEED
        }
        server_fields = {key: fields.pop(key) for key in ("global_steps", "min_global_steps", "max_global_steps")}
        assert server_fields == {"global_steps": 0, "min_global_steps": 0, "max_global_steps": 0}  # kept as given
        assert set(fields) == set(turns.SCHEMA)
        for name, value in fields.items():
            assert isinstance(value, turns.SCHEMA[name].kind), (name, value)


def asdict_keys(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@register_env("test_short")
class ShortEnv(TextEnv):
    """Never ends by itself; its class says episodes last two turns."""

    prompt_intro = "A test room. Actions: wait."
    default_max_turns = 2

    def reset(self, seed, task=None):
        return "a room", {"anchor": "room", "won": False, "admissible_actions": ["wait"]}

    def step(self, action):
        return "a room", 0.0, False, {"anchor": "room", "won": False, "admissible_actions": ["wait"]}


def test_the_environment_class_gives_the_rules_and_the_default_turn_limit():
    outputs, server = play(scripted([format_response("", "wait")]), extra_info={"env": "test_short", "seed": 0})
    assert len(outputs) == 2  # no max_turns in the row or the loop config: the class's default
    assert TOKENIZER.decode(server.calls[0][1]).count("A test room. Actions: wait.") == 1
    outputs, _ = play(scripted([format_response("", "wait")]), extra_info={"env": "test_short", "seed": 0}, max_turns=3)
    assert len(outputs) == 3  # the loop's option wins over the class default
