import pandas as pd
import pytest

from sampo_verl.agent.loop import EpisodeSpec
from sampo_verl.agent.dataset import VAL_SEED_OFFSET, main, task_seeds


def test_cli_writes_verl_rows_the_agent_loop_reads(tmp_path):
    main(
        [
            "--env",
            "sokoban",
            "--train",
            "5",
            "--val",
            "3",
            "--out",
            str(tmp_path),
            "--env-options",
            '{"dim_room": [7, 7], "num_boxes": 2}',
            "--max-turns",
            "9",
        ]
    )
    train, val = pd.read_parquet(tmp_path / "train.parquet"), pd.read_parquet(tmp_path / "val.parquet")
    assert len(train) == 5 and len(val) == 3
    assert set(train.columns) >= {"data_source", "prompt", "agent_name", "extra_info", "reward_model"}
    assert (train.agent_name == "sampo_env_agent").all() and (train.data_source == "sokoban").all()
    row = train.iloc[2].to_dict()
    assert row["prompt"][0]["role"] == "user"
    spec = EpisodeSpec.from_row(row)
    assert (spec.env, spec.seed, spec.max_turns) == ("sokoban", 2, 9)
    assert spec.env_options == {"dim_room": [7, 7], "num_boxes": 2} and spec.task == {}
    val_seeds = [EpisodeSpec.from_row(r).seed for r in val.to_dict("records")]
    assert val_seeds == [VAL_SEED_OFFSET, VAL_SEED_OFFSET + 1, VAL_SEED_OFFSET + 2]
    assert task_seeds(str(tmp_path / "val.parquet")) == val_seeds
    assert list(train.extra_info.map(lambda e: e["index"])) == list(range(5))


def test_validation_can_use_other_env_options(tmp_path):
    main(
        [
            "--env",
            "frozenlake",
            "--train",
            "2",
            "--val",
            "2",
            "--out",
            str(tmp_path),
            "--env-options",
            '{"size": 4}',
            "--val-env-options",
            '{"size": 8}',
        ]
    )
    train, val = pd.read_parquet(tmp_path / "train.parquet"), pd.read_parquet(tmp_path / "val.parquet")
    assert EpisodeSpec.from_row(train.iloc[0].to_dict()).env_options == {"size": 4}
    assert EpisodeSpec.from_row(val.iloc[1].to_dict()).env_options == {"size": 8}


def test_bad_arguments_name_the_flag_in_one_line(tmp_path, capsys):
    for argv, says in (
        (["--env", "chess"], "--env"),
        (["--env", "sokoban", "--env-options", '{"dim_room": [2, 2]}'], "dim_room must be at least"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main([*argv, "--out", str(tmp_path)])
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and says in error and error.count("\n") == 1
