"""GPU-recipe settings from the environment class (``python -m sampo_verl.envs.recipe``)."""

import json
import shlex

from sampo_verl.envs import RecipeSettings, TextEnv, register_env
from sampo_verl.envs.recipe import main, shell_assignments


def parse(text: str) -> dict[str, str]:
    """The scalar assignments (the method_overrides array is read by bash: see its own test)."""
    lines = [line for line in text.splitlines() if not line.startswith("method_overrides=")]
    return dict(word.split("=", 1) for line in lines for word in shlex.split(line))


def test_builtin_environment_settings():
    sokoban = parse(shell_assignments("sokoban"))
    assert sokoban == {
        "max_turns": "15",
        "batch_size": "32",
        "max_prompt_length": "1024",
        "max_response_length": "512",
        "group_size": "8",
        "env_options": json.dumps({"dim_room": [6, 6], "num_boxes": 1, "search_depth": 30}),
        "val_env_options": "",
        "data_name": "sokoban",
    }
    alfworld = parse(shell_assignments("alfworld"))
    assert (alfworld["max_turns"], alfworld["batch_size"], alfworld["max_prompt_length"]) == ("50", "16", "2048")


def test_official_alfworld_games_from_the_environment_variable(monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", "/data/alf world")
    settings = parse(shell_assignments("alfworld"))
    assert json.loads(settings["env_options"]) == {"game_files": "/data/alf world/json_2.1.1/train"}
    assert json.loads(settings["val_env_options"]) == {"game_files": "/data/alf world/json_2.1.1/valid_unseen"}
    assert settings["data_name"] == "alfworld_official"


@register_env("test_recipe_env")
class RecipeEnv(TextEnv):
    default_max_turns = 7

    @classmethod
    def recipe_settings(cls) -> RecipeSettings:
        return RecipeSettings(batch_size=4, max_prompt_length=512, env_options={"level": "it's hard"})

    def reset(self, seed, task=None):
        raise NotImplementedError

    def step(self, action):
        raise NotImplementedError


def test_a_new_environment_is_one_class(capsys):
    assert main(["test_recipe_env"]) == 0
    settings = parse(capsys.readouterr().out)
    assert settings["max_turns"] == "7" and settings["batch_size"] == "4" and settings["max_prompt_length"] == "512"
    assert json.loads(settings["env_options"]) == {"level": "it's hard"}  # quoted for the shell


def test_unknown_environment_fails_with_the_registered_ones(capsys):
    assert main(["chess"]) == 2
    assert "unknown ENV 'chess'" in capsys.readouterr().err


@register_env("test_recipe_task")
class TaskWithItsOwnClip(TextEnv):
    @classmethod
    def recipe_settings(cls) -> RecipeSettings:
        clip = ("actor_rollout_ref.actor.clip_ratio_low=0.03", "actor_rollout_ref.actor.clip_ratio_high=0.04")
        return RecipeSettings(method_overrides={"gspo": clip, "sampo": clip})

    def reset(self, seed, task=None):
        raise NotImplementedError

    def step(self, action):
        raise NotImplementedError


def test_method_overrides_of_a_task_are_a_bash_array():
    import subprocess

    clip = ["actor_rollout_ref.actor.clip_ratio_low=0.03", "actor_rollout_ref.actor.clip_ratio_high=0.04"]
    assert shell_assignments("test_recipe_task", "grpo").splitlines()[-1] == "method_overrides=()"
    expand = 'printf "%s\\n" ${method_overrides[@]+"${method_overrides[@]}"}'  # as recipes/common.sh does

    def in_bash(text: str) -> list[str]:
        script = "set -eu\n" + text + "\n" + expand
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()

    assert in_bash(shell_assignments("test_recipe_task", "gspo")) == clip
    assert in_bash(shell_assignments("sokoban", "gspo")) == []  # the release ran Sokoban with the preset's values


def test_a_users_environment_module_is_found_through_verl_use_external_modules():
    """The recipes run the CLI in a fresh process: importing verl imports the user's module."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "custom_env", "PYTHONPATH": str(examples)}
    result = subprocess.run(
        [sys.executable, "-m", "sampo_verl.envs.recipe", "guess_number", "grpo"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert parse(result.stdout)["max_turns"] == "8"  # GuessNumberEnv.default_max_turns
