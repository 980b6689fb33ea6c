"""A GPU recipe's data settings from the composed config groups (``python -m sampo_verl.recipe``):
``env/<name>.yaml``, ``env_data/<name>_official.yaml``, ``env_method/<name>_<method>.yaml``."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sampo_verl.envs import TextEnv, register_env
from sampo_verl.recipe import compose_recipe, main, shell_assignments

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def parse(text: str) -> dict[str, str]:
    """The scalar assignments (the config_groups array is read by bash: see its own test)."""
    lines = [line for line in text.splitlines() if not line.startswith("config_groups=")]
    return dict(word.split("=", 1) for line in lines for word in shlex.split(line))


def in_bash(text: str, array: str) -> list[str]:
    """The bash array ``array`` after ``eval`` of the assignments, as recipes/common.sh reads it."""
    script = f'set -eu\neval "$1"\nprintf "%s\\n" "${{{array}[@]}}"'
    return subprocess.run(["bash", "-c", script, "_", text], capture_output=True, text=True, check=True).stdout.split()


def test_builtin_environment_settings():
    sokoban = shell_assignments("sokoban", "grpo")
    assert parse(sokoban) == {
        "max_turns": "15",
        "batch_size": "32",
        "env_options": json.dumps({"dim_room": [6, 6], "num_boxes": 1, "search_depth": 30}),
        "val_env_options": "",
        "data_name": "sokoban",
    }
    assert in_bash(sokoban, "config_groups") == ["env=sokoban"]
    alfworld, _ = compose_recipe("alfworld", "grpo")
    assert (alfworld.data.train_batch_size, alfworld.data.max_prompt_length) == (
        16,
        2048,
    )
    assert alfworld.actor_rollout_ref.actor.ppo_mini_batch_size == 16  # one task batch per mini-batch


def test_the_users_overrides_count(monkeypatch):
    """A batch size given on the command line sets how many train tasks the recipe writes."""
    assert parse(shell_assignments("sokoban", "grpo", ["data.train_batch_size=8"]))["batch_size"] == "8"


def test_official_alfworld_games_from_the_environment_variable(monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", "/data/alf world")
    text = shell_assignments("alfworld", "gigpo")
    settings = parse(text)
    assert json.loads(settings["env_options"]) == {"game_files": "/data/alf world/json_2.1.1/train"}
    assert json.loads(settings["val_env_options"]) == {"game_files": "/data/alf world/json_2.1.1/valid_unseen"}
    assert settings["data_name"] == "alfworld_official"
    assert in_bash(text, "config_groups") == [
        "env=alfworld",
        "env_data=alfworld_official",
    ]
    monkeypatch.setenv("SOKOBAN_DATA", "/anything")  # no official data for Sokoban: the variable is not read
    assert in_bash(shell_assignments("sokoban", "grpo"), "config_groups") == ["env=sokoban"]


# (env, method): clip low/high, GiGPO mode, filtering cold start
RELEASE = [
    ("webshop", "gspo", (0.03, 0.04), "mean_std_norm", 0),
    ("webshop", "gigpo", (0.2, 0.2), "mean_norm", 0),
    ("webshop", "sampo", (0.003, 0.004), "mean_norm", 5),
    ("webshop", "grpo", (0.2, 0.2), "mean_std_norm", 0),
    ("sokoban", "sampo", (0.003, 0.004), "mean_std_norm", 15),
    ("tir_math", "gspo", (0.0003, 0.0004), "mean_std_norm", 0),
]


@pytest.mark.parametrize("env,method,clip,gigpo_mode,cold_start", RELEASE)
def test_the_release_s_changes_to_a_method_on_one_environment(env, method, clip, gigpo_mode, cold_start):
    """env_method/<env>_<method>.yaml comes after the preset; other pairs keep the preset's values."""
    config, _ = compose_recipe(env, method)
    actor = config.actor_rollout_ref.actor
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == clip
    assert config.algorithm.gigpo.mode == gigpo_mode
    assert config.algorithm.filter_groups.cold_start_steps == cold_start


@register_env("test_recipe_env")
class RecipeEnv(TextEnv):
    default_max_turns = 7

    def reset(self, seed, task=None):
        raise NotImplementedError

    def step(self, action):
        raise NotImplementedError


def test_a_new_environment_is_one_class(capsys):
    assert main(["test_recipe_env", "grpo"]) == 0
    text = capsys.readouterr().out
    settings = parse(text)
    assert settings["max_turns"] == "7" and settings["batch_size"] == "32" and settings["env_options"] == "{}"
    assert in_bash(text, "config_groups") == ["env=base"]


def test_and_optionally_one_yaml_file(tmp_path):
    """The user's config folder on Hydra's search path holds env/<name>.yaml and env_method/ files."""
    (tmp_path / "env").mkdir()
    (tmp_path / "env_method").mkdir()
    (tmp_path / "env" / "test_recipe_env.yaml").write_text(
        "# @package _global_\ndefaults:\n  - base\ndata:\n  train_batch_size: 4\n"
        'sampo:\n  env:\n    max_turns: 9\n    options: {level: "it\'s hard"}\n'
    )
    (tmp_path / "env_method" / "test_recipe_env_gspo.yaml").write_text(
        "# @package _global_\nactor_rollout_ref:\n  actor:\n    clip_ratio_low: 0.05\n"
    )
    search = f"hydra.searchpath=[pkg://verl.trainer.config,file://{tmp_path}]"
    text = shell_assignments("test_recipe_env", "gspo", [search])
    settings = parse(text)
    assert (settings["max_turns"], settings["batch_size"]) == ("9", "4")
    assert json.loads(settings["env_options"]) == {"level": "it's hard"}  # quoted for the shell
    assert in_bash(text, "config_groups") == ["env=test_recipe_env"]
    config, _ = compose_recipe("test_recipe_env", "gspo", [search])
    assert config.actor_rollout_ref.actor.clip_ratio_low == 0.05


def test_a_bad_setting_in_a_group_fails_naming_the_flag(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "test_recipe_env.yaml").write_text("# @package _global_\nsampo:\n  env:\n    max_turn: 9\n")
    with pytest.raises(ValueError, match=r"unknown sampo.env option\(s\) \['max_turn'\]"):
        shell_assignments(
            "test_recipe_env",
            "grpo",
            [f"hydra.searchpath=[pkg://verl.trainer.config,file://{tmp_path}]"],
        )


def test_unknown_environment_fails_with_the_registered_ones(capsys):
    assert main(["chess", "grpo"]) == 2
    assert "unknown ENV 'chess'" in capsys.readouterr().err


def test_a_users_environment_module_is_found_through_verl_use_external_modules():
    """The recipes run the command in a fresh process; it imports the user's module as verl would."""
    env = {
        **os.environ,
        "VERL_USE_EXTERNAL_MODULES": "custom_env",
        "PYTHONPATH": str(EXAMPLES),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sampo_verl.recipe", "guess_number", "grpo"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert parse(result.stdout)["max_turns"] == "8"  # GuessNumberEnv.default_max_turns
