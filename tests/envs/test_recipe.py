"""GPU-recipe settings from the environment class (``python -m sampo_verl.envs.recipe``)."""

import json
import shlex

from sampo_verl.envs import RecipeSettings, TextEnv, register_env
from sampo_verl.envs.recipe import main, shell_assignments


def parse(text: str) -> dict[str, str]:
    return dict(word.split("=", 1) for line in text.splitlines() for word in shlex.split(line))


def test_builtin_environment_settings():
    sokoban = parse(shell_assignments("sokoban"))
    assert sokoban == {
        "max_turns": "15",
        "batch_size": "32",
        "max_prompt_length": "1024",
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
    assert main(["webshop"]) == 2
    assert "unknown ENV 'webshop'" in capsys.readouterr().err
