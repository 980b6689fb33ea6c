"""The arena's off-policy axis: variant names, their overrides, and the cells ``--mini-batches``/``--modes`` run."""

import json

import pytest

from sampo_verl.arena import runner
from sampo_verl.arena.__main__ import main
from sampo_verl.arena.layout import cell_dir
from sampo_verl.arena.variants import Variant, expand, parse_variant
from sampo_verl.runs import testbed


def test_names_and_overrides_of_variants():
    variant = parse_variant("sapo@mb4+async")
    assert variant == Variant("sapo", 4, True) and variant.name == "sapo@mb4+async"
    assert variant.overrides(32) == [
        "actor_rollout_ref.actor.ppo_mini_batch_size=8",
        "trainer.v1.trainer_mode=sampo_colocate_async",
    ]
    assert parse_variant("grpo") == Variant("grpo") and Variant("grpo").overrides(32) == []
    assert parse_variant("grpo@async+mb2") == Variant("grpo", 2, True)  # the name writes mb first
    with pytest.raises(ValueError, match="do not split into 3 mini-batches"):
        Variant("grpo", 3).overrides(32)


@pytest.mark.parametrize("name", ["grpo@mb0", "grpo@fast", "grpo@mb2+mb4", "grpo@", "grpo@async+async"])
def test_a_bad_variant_part_is_named(name):
    with pytest.raises(ValueError, match="unknown or repeated variant part"):
        parse_variant(name)


def test_expand_gives_every_preset_mini_batch_and_mode():
    assert expand(["grpo", "sapo"], [1, 4], ["sync", "async"]) == (
        "grpo@mb1", "grpo@mb1+async", "grpo@mb4", "grpo@mb4+async",
        "sapo@mb1", "sapo@mb1+async", "sapo@mb4", "sapo@mb4+async",
    )  # fmt: skip
    assert expand(["grpo"], [], ["async"]) == ("grpo@async",)
    with pytest.raises(ValueError, match="--modes: unknown"):
        expand(["grpo"], [2], ["fast"])
    with pytest.raises(ValueError, match="give plain presets"):
        expand(["grpo@mb2"], [4])


def test_mini_batch_cells_train_their_preset_with_the_split_batch(tmp_path, monkeypatch):
    runs = []

    def run_agent(workdir, model_dir, config, extra_overrides, data_dir, timeout=None, metrics_file=None, **output):
        runs.append((workdir.parent.name, config.method, extra_overrides))
        metrics_file.write_text(json.dumps({"step": 1, "data": {"training/global_step": 1}}) + "\n")
        return []

    monkeypatch.setattr(runner, "run_agent", run_agent)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = tmp_path / "arena"
    argv = ["run", "--envs", "frozenlake", "--methods", "gspo", "--mini-batches", "1,4", "--modes", "sync,async"]
    assert main([*argv, "--steps", "1", "--out", str(out), "--init-model", str(model), "sampo.x=1"]) == 0
    groups = testbed.cpu_testbed("frozenlake").rl_groups
    mini_batch = f"actor_rollout_ref.actor.ppo_mini_batch_size={groups // 4}"
    assert {folder: (method, overrides[1:]) for folder, method, overrides in runs} == {
        "gspo@mb1": ("gspo", [f"actor_rollout_ref.actor.ppo_mini_batch_size={groups}", "sampo.x=1"]),
        "gspo@mb1+async": (
            "gspo",
            [f"actor_rollout_ref.actor.ppo_mini_batch_size={groups}", "trainer.v1.trainer_mode=sampo_colocate_async",
             "sampo.x=1"],
        ),
        "gspo@mb4": ("gspo", [mini_batch, "sampo.x=1"]),
        "gspo@mb4+async": ("gspo", [mini_batch, "trainer.v1.trainer_mode=sampo_colocate_async", "sampo.x=1"]),
    }  # fmt: skip
    assert (cell_dir(out, "frozenlake", "gspo@mb4+async", 0) / "done.json").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "nope@mb4"], r"unknown preset\(s\) \['nope'\]"),
        (["--methods", "grpo@mb4x"], "unknown or repeated variant part 'mb4x'"),
        (["--methods", "grpo", "--mini-batches", "2,x"], None),  # argparse: not integers
        (["--methods", "grpo", "--modes", "later"], r"--modes: unknown \['later'\]"),
        (["--methods", "grpo", "--mini-batches", "1,8"], "grpo@mb8: 4 prompts a step do not split into 8 mini-batches"),
    ],
)
def test_bad_variants_fail_before_anything_runs(tmp_path, argv, message):
    base = ["run", "--envs", "frozenlake", "--steps", "1", "--out", str(tmp_path / "arena")]
    with pytest.raises(SystemExit, match=None if message is None else f"^arena run: .*{message}"):
        main([*base, *argv])
    assert not (tmp_path / "arena").exists()


def test_mini_batch_variants_need_the_cpu_testbed(tmp_path):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text("")
    argv = ["run", "--envs", "frozenlake", "--methods", "grpo", "--mini-batches", "4", "--steps", "1"]
    argv += ["--out", str(tmp_path / "arena"), "--recipe", str(recipe), "--init-model", "Qwen/Qwen3-4B"]
    with pytest.raises(SystemExit, match="--mini-batches .* runs on the CPU testbed only"):
        main(argv)


def test_the_report_tables_the_off_policy_axis(tmp_path):
    """Rows preset x trainer, columns the mini-batch counts; a plain preset stays out of that table."""
    import re

    from conftest import sokoban_lines, write_cell

    from sampo_verl.arena.report import build_report

    root = tmp_path / "arena"
    for method, success in {"gspo": [0.2, 0.4], "gspo@mb1": [0.2, 0.5], "gspo@mb4": [0.6, 0.3],
                            "gspo@mb4+async": [0.4, 0.4]}.items():  # fmt: skip
        steps = {"sampo/staleness/optimizer_steps": 5.0 if "mb1" in method else 19.0}
        write_cell(root, "sokoban", method, 0, sokoban_lines(success, [0.9, 0.9], extra=steps), wall=10.0)
    page = build_report(root, tmp_path / "report").read_text(encoding="utf-8")
    table = page[page.index('<table class="off-policy">') : page.index("</table>", page.index('class="off-policy"'))]
    assert re.findall(r"<th>(\d+) mini-batch", table) == ["1", "4"]
    rows = dict(re.findall(r'<tr data-preset="([^"]+)">(.*?)</tr>', table))
    assert set(rows) == {"gspo (sync)", "gspo (colocate_async)"}
    sync = re.findall(r"<td>(.*?)</td>", rows["gspo (sync)"])[1:]
    assert sync[0].startswith("0.500") and sync[1].startswith("0.300") and "/ 0.300" in sync[1]  # mb4 dropped 0.3
    assert sync[0].endswith(" / 5.0") and sync[1].endswith(" / 19.0")  # optimiser steps a sampled batch
    assert re.findall(r"<td>(.*?)</td>", rows["gspo (colocate_async)"])[1] == "–"
    # the Markdown report has the same table, and a finding per question the axis asks
    markdown = (tmp_path / "report" / "results.md").read_text(encoding="utf-8")
    assert "| preset (trainer) | 1 mini-batch(es) | 4 mini-batch(es) |" in markdown
    assert f"| gspo (sync) | {sync[0]} | {sync[1]} |" in markdown
    assert re.findall(r'<tr data-finding="([^"]+)">', page)[-2:] == ["gspo@mb", "gspo@mb4+async"]
