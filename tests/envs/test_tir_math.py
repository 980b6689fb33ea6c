"""TIR-Math: answer checking, the action grammar, episodes (sandboxed tool, agent loop) and the user-data loader."""

import asyncio
import json
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampo_verl.agent.loop import EnvAgentLoop, EpisodeSpec
from sampo_verl.agent.prompts import format_response
from sampo_verl.envs import env_class, make_env
from sampo_verl.envs.base import INVALID_ACTION
from sampo_verl.recipe import compose_recipe
from sampo_verl.agent.math_tasks import main, tasks_from_verl_math, write_math_splits
from sampo_verl.envs.tir_math import TirMathEnv, ToolAction, answers_match, parse_tool_action
from sampo_verl.envs.tir_math_gen import problem
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.testing.scripted_server import ScriptedServer

TOKENIZER = build_tokenizer(default_corpus())  # the tiny model's tokenizer
ERRORS = {
    "missing_code_or_answer",
    "code_and_answer",
    "duplicate_tag",
    "malformed_tags",
    "text_outside_tags",
    "empty_code",
    "empty_answer",
}


# answer checking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer,truth",
    [
        ("0.5", "1/2"),
        ("\\frac{1}{2}", "1/2"),
        ("\\dfrac{3}{4}", "0.75"),
        ("-3/4", "-\\frac{3}{4}"),
        ("\\boxed{12}", "12"),
        ("$\\boxed{12}$", "12"),
        ("12 dollars", "12"),
        ("$12", "12"),
        ("\\$12.00", "12"),
        ("12\\text{ apples}", "12"),
        ("12 km/h", "12"),
        ("1,234,567", "1234567"),
        ("1{,}234", "1234"),
        ("x = -7", "-7"),
        ("25\\%", "25"),
        ("2**100", "1267650600228229401496703205376"),
        ("2^{10}", "1024"),
        ("70.449275", "4861/69"),  # decimals agree to 6 places
        ("\\sqrt{8}", "2\\sqrt{2}"),
        ("Monday", "monday"),
    ],
)
def test_equivalent_forms_match(answer, truth):
    assert answers_match(answer, truth)


@pytest.mark.parametrize(
    "answer,truth",
    [
        ("13", "12"),
        ("0.51", "1/2"),
        ("0.333", "1/3"),
        ("-3/4", "3/4"),
        ("70.4", "4861/69"),
        ("2x", "2"),  # a variable is not a unit
        ("12 pi", "12"),
        ("3\\sqrt{3}", "3"),
        ("(1, 2)", "2"),
        ("5 and 7", "7"),
        ("twelve", "12"),
        ("", "12"),
        ("1234,567", "1234567"),  # not a thousands separator
    ],
)
def test_non_equivalent_forms_do_not_match(answer, truth):
    assert not answers_match(answer, truth)


@pytest.mark.parametrize(
    "answer",
    [
        "9^{9^{9}}",
        "10^{10^{10}}",
        "9^9^9^9",
        "2**(9**9)",
        "2^((9^9))",
        "(9^{99999})^{99999}",
        "2^{10000000000}",
        "1000000!",
        "(100!)!",
        "\\binom{100000}{50000}",
        "2^{9^{9}",
        "1" * 500,
    ],
)
def test_answers_too_costly_to_evaluate_are_rejected_fast(answer):
    start = time.perf_counter()
    assert not answers_match(answer, "5")
    assert time.perf_counter() - start < 2.0


# the action grammar --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action,kind,text,error",
    [
        ("<code>print(2 + 2)</code>", "code", "print(2 + 2)", ""),
        ("<answer> 3/4 </answer>", "answer", "3/4", ""),
        ("\n<code>\nfor i in range(2):\n    print(i)\n</code>\n", "code", "for i in range(2):\n    print(i)", ""),
        ("<code>\n    x = 1\n    print(x)\n</code>", "code", "x = 1\nprint(x)", ""),  # dedented
        ("<code>```python\nprint(1)\n```</code>", "code", "print(1)", ""),  # a Markdown fence is dropped
        ("print(1)", None, "", "missing_code_or_answer"),
        ("", None, "", "missing_code_or_answer"),
        ("<code>print(1)</code><answer>1</answer>", None, "", "code_and_answer"),
        ("<code><answer>1</answer></code>", None, "", "code_and_answer"),
        ("<code>a</code><code>b</code>", None, "", "duplicate_tag"),
        ("<code><code>a</code></code>", None, "", "duplicate_tag"),
        ("<code>print(1)", None, "", "malformed_tags"),
        ("</answer>1<answer>", None, "", "malformed_tags"),
        ("The answer: <answer>1</answer>", None, "", "text_outside_tags"),
        ("<code>  \n </code>", None, "", "empty_code"),
        ("<answer></answer>", None, "", "empty_answer"),
    ],
)
def test_action_grammar(action, kind, text, error):
    assert parse_tool_action(action) == ToolAction(kind, text, error)


pieces = st.sampled_from(
    ["<code>", "</code>", "<answer>", "</answer>", "print(1)", "42", " ", "\n", "<", ">", "/", "```", "code"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(pieces, st.text(max_size=6)), max_size=12))
def test_any_text_parses_into_a_valid_action_or_a_named_error(parts):
    action = "".join(parts)
    parsed = parse_tool_action(action)
    if parsed.kind is None:
        assert parsed.error in ERRORS and parsed.text == ""
    else:
        assert parsed.kind in ("code", "answer") and parsed.text and not parsed.error
        if parsed.kind == "answer":
            assert parse_tool_action(f"<answer>{parsed.text}</answer>") == parsed


# the environment without running code --------------------------------------------------------------


def test_reset_shows_the_problem_as_the_task_and_no_admissible_actions():
    env = make_env("tir_math")
    observation, info = env.reset(3)
    p = problem(3)
    assert info["task"] == p.question and "admissible_actions" not in info and info["won"] is False
    assert observation == "No code has been run yet." and info["anchor"].startswith(f"{p.id}|0|")
    assert make_env("tir_math").reset(3)[1]["anchor"] == info["anchor"]
    assert hash(info["anchor"]) is not None


def test_answers_end_the_episode_with_reward_one_when_equivalent():
    env = TirMathEnv(kinds=["word"], difficulty=1)
    seed = next(s for s in range(50) if "/" in problem(s, ["word"], 1).answer)
    env.reset(seed)
    truth = problem(seed, ["word"], 1).answer
    numerator, denominator = map(int, truth.split("/"))
    _, reward, done, info = env.step(f"<answer>\\frac{{{numerator}}}{{{denominator}}}</answer>")
    assert (reward, done, info["won"]) == (1.0, True, True)
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("<answer>1</answer>")
    env.reset(seed)
    _, reward, done, info = env.step(f"<answer>{numerator + 1}/{denominator}</answer>")
    assert (reward, done, info["won"]) == (0.0, True, False)


def test_a_malformed_action_runs_nothing_and_keeps_the_state():
    env = make_env("tir_math")
    _, info = env.reset(0)
    for action in ["<code>print(1)</code><answer>1</answer>", "print(1)", "<answer></answer>", "<code>x"]:
        observation, reward, done, after = env.step(action)
        assert observation.startswith("Invalid action (") and "Nothing was run" in observation
        assert (reward, done, after["anchor"], after["won"]) == (0.0, False, info["anchor"], False)
        assert after["invalid_action"] == parse_tool_action(action).error


def test_a_users_problem_comes_from_the_task():
    env = make_env("tir_math")
    _, info = env.reset(5, {"id": "aime24/test/3", "question": "What is 6 * 7?", "answer": "42"})
    assert info["task"] == "What is 6 * 7?" and info["anchor"].startswith("aime24/test/3|0|")
    with pytest.raises(RuntimeError, match="no expert"):
        env.expert_action()
    assert env.step("<answer>\\boxed{42}</answer>")[1] == 1.0
    with pytest.raises(ValueError, match="needs its answer"):
        env.reset(0, {"question": "What is 6 * 7?"})


def test_generator_options_and_bad_options():
    env = make_env("tir_math", kinds=["modular"], difficulty=[2])
    assert env.reset(1)[1]["anchor"].startswith("modular-2-1|")
    assert env.reset(1, {"kinds": ["series"], "difficulty": 3})[1]["anchor"].startswith("series-3-1|")
    for bad in ({"kinds": ["topology"]}, {"difficulty": 9}, {"tool_timeout_s": 0}, {"max_observation_chars": 10}):
        with pytest.raises(ValueError, match="tir_math"):
            make_env("tir_math", **bad)


def test_expert_solution_lengths_vary_at_least_fourfold():
    """Characters of the expert's whole episode (both turns, as behaviour cloning writes them)."""
    env, lengths = make_env("tir_math"), []
    for seed in range(200):
        env.reset(seed)
        code = env.expert_action()
        lengths.append(
            len(format_response(code, code)) + len(format_response("", f"<answer>{problem(seed).answer}</answer>"))
        )
    lengths = np.sort(lengths)
    shortest, longest = lengths[:20].mean(), lengths[-20:].mean()
    assert longest >= 4 * shortest and np.percentile(lengths, 90) >= 4 * np.percentile(lengths, 10)


def test_recipe_settings_follow_the_release():
    config, _ = compose_recipe("tir_math", "gspo")
    data, actor = config.data, config.actor_rollout_ref.actor
    assert (data.train_batch_size, data.max_prompt_length, data.max_response_length) == (512, 8192, 4096)
    assert config.actor_rollout_ref.rollout.n == 5 and env_class("tir_math").default_max_turns == 5
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == (0.0003, 0.0004)
    grpo, _ = compose_recipe("tir_math", "grpo")
    assert grpo.actor_rollout_ref.actor.clip_ratio_high == 0.2  # verl's default, as the preset leaves it


# the environment with the sandboxed tool -----------------------------------------------------------


def test_code_output_is_the_observation_and_moves_the_anchor():
    env = make_env("tir_math")
    _, start = env.reset(0)
    observation, reward, done, info = env.step("<code>\nfor i in range(3):\n    print(i * i)\n</code>")
    assert observation == "Output:\n0\n1\n4" and (reward, done) == (0.0, False)
    assert info["anchor"] != start["anchor"] and info["anchor"].startswith(f"{problem(0).id}|1|")
    other = make_env("tir_math")
    other.reset(0)
    assert other.step("<code>print(0); print(1); print(4)</code>")[3]["anchor"] == info["anchor"]  # same outputs


def test_errors_timeouts_and_long_outputs_are_reported_within_bounds():
    env = make_env("tir_math", tool_timeout_s=1.0, max_observation_chars=500)
    env.reset(0)
    observation = env.step("<code>print('before')\nraise ValueError('boom')</code>")[0]
    assert (
        observation.startswith("Output:\nbefore") and "ValueError: boom" in observation and "exit code" in observation
    )
    observation = env.step("<code>while True:\n    pass</code>")[0]
    assert "stopped after 1 s" in observation
    observation = env.step("<code>print('x' * 100000)</code>")[0]
    assert "(output truncated)" in observation and len(observation) <= 500
    assert env.step("<code>x = 1</code>")[0] == "Output: (nothing printed)"


@pytest.mark.parametrize("code", ["print('a\x00b')", "print('\ud800')"], ids=["nul", "surrogate"])
def test_code_python_cannot_read_is_a_tool_result_not_an_environment_fault(code):
    env = make_env("tir_math")
    env.reset(0)
    observation, reward, done, info = env.step(f"<code>{code}</code>")
    assert "SyntaxError" in observation and "exit code 1" in observation and (reward, done) == (0.0, False)
    assert INVALID_ACTION not in info  # a tool result, and env.step did not raise (that is an env_error)


def expert_wins(seeds: range) -> int:
    env, won = make_env("tir_math"), 0
    for seed in seeds:
        env.reset(seed)
        for _ in range(TirMathEnv.default_max_turns):
            _, reward, done, info = env.step(env.expert_action())
            if done:
                won += info["won"] and reward == 1.0
                break
    return won


def test_the_expert_solves_generated_problems():
    assert expert_wins(range(20)) == 20


@pytest.mark.slow
def test_the_expert_solves_at_least_99_percent_of_200_problems():
    assert expert_wins(range(200)) >= 198


# episodes through the agent loop -------------------------------------------------------------------


def play(responses: list[str], extra_info: dict) -> list:
    server = ScriptedServer(TOKENIZER, lambda prompt, i: responses[min(i, len(responses) - 1)])

    async def run():
        loop = EnvAgentLoop.standalone(server, TOKENIZER, {"prompt_length": 8192, "response_length": 2048})
        return await loop.run({"temperature": 1.0}, raw_prompt=[], extra_info=extra_info, uid="u", session_id=0)

    return asyncio.run(run())


def turn(action: str) -> str:
    return format_response("let me compute", action)


def test_loop_correct_episode_runs_code_then_answers():
    p = problem(4)
    outputs = play(
        [turn(f"<code>\n{p.program}</code>"), turn(f"<answer>{p.answer}</answer>")], {"env": "tir_math", "seed": 4}
    )
    fields = [o.extra_fields for o in outputs]
    assert len(outputs) == 2 and fields[-1]["success"] == 1.0 and outputs[0].reward_score == 1.0
    assert [f["step_reward"] for f in fields] == [0.0, 1.0] and all(f["action_valid"] for f in fields)
    second_prompt = TOKENIZER.decode(outputs[1].prompt_ids)
    assert f"Task: {p.question}" in second_prompt and f"Current observation:\nOutput:\n{p.answer}" in second_prompt


def test_loop_wrong_answer_scores_zero():
    outputs = play([turn(f"<answer>{problem(4).answer}1</answer>")], {"env": "tir_math", "seed": 4})
    assert len(outputs) == 1 and outputs[0].reward_score == 0.0 and outputs[0].extra_fields["success"] == 0.0


def test_loop_malformed_turns():
    p = problem(4)
    responses = [
        "<action><answer>1</answer></action>",
        turn("<code>print(1)</code><answer>1</answer>"),
        turn(f"<answer>{p.answer}</answer>"),
    ]
    outputs = play(responses, {"env": "tir_math", "seed": 4})
    fields = [o.extra_fields for o in outputs]
    assert fields[0]["action_valid"] is False and fields[0]["parse_reason"] == "missing_think"
    # the grammar inside <action>: the environment runs nothing, keeps its state and names the error
    assert fields[1]["anchor"] == fields[0]["anchor"] == fields[2]["anchor"] and fields[1]["step_reward"] == 0.0
    assert fields[1]["action_valid"] is False and fields[1]["parse_reason"] == "not_admissible"
    third_prompt = TOKENIZER.decode(outputs[2].prompt_ids)
    assert "Current observation:\nInvalid action (code_and_answer)" in third_prompt
    assert "(invalid: code_and_answer)" in third_prompt  # the history names the refusal
    assert fields[2]["success"] == 1.0 and fields[0]["invalid_action_rate"] == pytest.approx(2 / 3)


def test_loop_turn_limit_ends_the_episode_failed():
    outputs = play([turn("<code>print(1)</code>")], {"env": "tir_math", "seed": 4})
    assert len(outputs) == TirMathEnv.default_max_turns == 5
    assert all(o.extra_fields["success"] == 0.0 and not o.extra_fields["won"] for o in outputs)


# the user's data in verl's math format -------------------------------------------------------------

BOXED = "Let's think step by step and output the final answer within \\boxed{}."
HASHES = 'Let\'s think step by step and output the final answer after "####".'


def verl_row(source: str, content: str, truth: str, extra: dict, level: str | None) -> dict:
    """A row as verl's examples/data_preprocess/math_dataset.py and gsm8k.py write it."""
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": content}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": {"split": "train", **extra},
        "level": level,
    }


def verl_math_parquet(path) -> None:
    math = "DigitalLearningGmbH/MATH-lighteval"
    no_question = {"question": None, "answer": None}
    rows = [
        verl_row(math, f"What is $\\frac{{1}}{{2}} + \\frac{{1}}{{3}}$? {BOXED}", "\\frac{5}{6}",
                 {"index": 0, **no_question}, "Level 4"),
        verl_row(math, f"What is $1 + 1$? {BOXED}", "2", {"index": 1, **no_question}, "Level 1"),
        verl_row(
            "openai/gsm8k",
            f"Tom has 3 bags of 24 apples. How many apples? {HASHES}",
            "",  # falls back on the worked answer
            {"index": 7, "question": "Tom has 3 bags of 24 apples. How many apples?",
             "answer": "3 * 24 = <<3*24=72>>72\n#### 72"},
            None,
        ),
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(path)


def test_tasks_from_verl_math_parquet(tmp_path):
    verl_math_parquet(tmp_path / "math.parquet")
    tasks = tasks_from_verl_math(str(tmp_path / "math.parquet"))
    assert tasks == [
        {"id": "DigitalLearningGmbH/MATH-lighteval/train/0", "question": "What is $\\frac{1}{2} + \\frac{1}{3}$?",
         "answer": "\\frac{5}{6}", "data_source": "DigitalLearningGmbH/MATH-lighteval"},
        {"id": "DigitalLearningGmbH/MATH-lighteval/train/1", "question": "What is $1 + 1$?", "answer": "2",
         "data_source": "DigitalLearningGmbH/MATH-lighteval"},
        {"id": "openai/gsm8k/train/7", "question": "Tom has 3 bags of 24 apples. How many apples?", "answer": "72",
         "data_source": "openai/gsm8k"},
    ]  # fmt: skip
    assert [t["answer"] for t in tasks_from_verl_math(str(tmp_path / "math.parquet"), levels=[3, 4, 5])] == [
        "\\frac{5}{6}"
    ]


def test_written_splits_play_the_users_problems_through_the_loop(tmp_path):
    verl_math_parquet(tmp_path / "math.parquet")
    verl_math_parquet(tmp_path / "aime.parquet")
    train, val = write_math_splits(
        str(tmp_path / "data"), [str(tmp_path / "math.parquet")], [str(tmp_path / "aime.parquet")], levels=[4]
    )
    train_rows, val_rows = pd.read_parquet(train).to_dict("records"), pd.read_parquet(val).to_dict("records")
    assert len(train_rows) == 1 and len(val_rows) == 3
    row = train_rows[0]
    assert row["agent_name"] == "sampo_env_agent" and row["data_source"] == "DigitalLearningGmbH/MATH-lighteval"
    assert row["extra_info"]["env"] == "tir_math" and json.loads(row["extra_info"]["task"])["answer"] == "\\frac{5}{6}"
    spec = EpisodeSpec.from_row(row)
    env = make_env(spec.env, **spec.env_options)
    assert env.reset(spec.seed, spec.task)[1]["task"] == "What is $\\frac{1}{2} + \\frac{1}{3}$?"
    outputs = play(
        [turn("<answer>5/6</answer>")], {k: row["extra_info"][k] for k in ("env", "seed", "env_options", "task")}
    )
    assert outputs[0].reward_score == 1.0
    main(["--train", str(tmp_path / "math.parquet"), "--out", str(tmp_path / "cli")])
    assert (
        len(pd.read_parquet(tmp_path / "cli" / "train.parquet")) == 3
        and pd.read_parquet(tmp_path / "cli" / "val.parquet").empty
    )
