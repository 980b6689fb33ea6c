"""The validation before training runs once per start: later cells get it copied in (arena/first_validation.py)."""

import json
from pathlib import Path

from sampo_verl.arena import runner
from sampo_verl.arena.__main__ import main
from sampo_verl.arena.layout import cell_dir, find_cells
from sampo_verl.arena.summary import seed_stats, success_metric
from sampo_verl.metrics import read_metrics
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, append_outcomes, read_val_outcomes

VAL_KEY = "val-core/frozenlake/acc/mean@1"
SEEDS = [1_000_000 + i for i in range(4)]


def fake_trainer(monkeypatch, runs: list) -> None:
    """Validates at step 0 unless told not to (success 0.25: task 0 solved), trains 2 steps, validates at 2."""

    def run_agent(workdir, model_dir, config, extra_overrides, data_dir, timeout=None, metrics_file=None, **output):
        validates_first = "trainer.val_before_train=false" not in extra_overrides
        runs.append((Path(workdir).parent.name, validates_first))
        records = []
        if validates_first:
            records.append({"step": 0, "data": {VAL_KEY: 0.25, "val-aux/num_turns/mean": 3.0}})
            append_outcomes(Path(workdir) / OUTCOMES_FILE, outcomes(0, [1.0, 0.0, 0.0, 0.0]))
        records += [{"step": s, "data": {"training/global_step": s, "timing_s/step": 5.0}} for s in (1, 2)]
        records[-1]["data"].update({VAL_KEY: 0.5, "timing_s/testing": 7.0})
        append_outcomes(Path(workdir) / OUTCOMES_FILE, outcomes(2, [1.0, 1.0, 0.0, 0.0]))
        metrics_file.write_text("".join(json.dumps(r) + "\n" for r in records))
        return []

    monkeypatch.setattr(runner, "run_agent", run_agent)


def outcomes(step: int, acc: list[float]) -> ValOutcomes:
    return ValOutcomes(step=step, data_source=["frozenlake"] * 4, task_seed=SEEDS, acc=acc, missing=0,
                       episode_length=[3] * 4)  # fmt: skip


def start_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return model


def run(tmp_path: Path, methods: str, *extra: str) -> int:
    argv = ["run", "--envs", "frozenlake", "--methods", methods, "--steps", "2", "--test-freq", "2"]
    return main([*argv, "--out", str(tmp_path / "arena"), "--init-model", str(start_model(tmp_path)), *extra])


def test_later_cells_reuse_the_first_validation_and_report_it_as_not_spent(tmp_path, monkeypatch):
    runs = []
    fake_trainer(monkeypatch, runs)
    assert run(tmp_path, "grpo,gspo,sapo") == 0
    assert runs == [("grpo", True), ("gspo", False), ("sapo", False)]
    first, later = (cell_dir(tmp_path / "arena", "frozenlake", m, 0) for m in ("grpo", "gspo"))
    history = read_metrics(later / "metrics.jsonl")
    assert history[0] == {VAL_KEY: 0.25, "val-aux/num_turns/mean": 3.0, "timing_s/testing": 0.0,
                          "arena/reused_validation": 1.0}  # fmt: skip
    assert history[2][VAL_KEY] == 0.5 and history[0][VAL_KEY] == read_metrics(first / "metrics.jsonl")[0][VAL_KEY]
    assert read_val_outcomes(later / OUTCOMES_FILE) == read_val_outcomes(first / OUTCOMES_FILE)
    # the cost split: the first cell's untimed validation counts at the timed one's 7 s, the copy at 0
    cells = {cell.method: cell for cell in find_cells(tmp_path / "arena")}
    metric = success_metric([(c, read_metrics(c.metrics_path)) for c in cells.values()])
    stats = {m: seed_stats(c, read_metrics(c.metrics_path), metric) for m, c in cells.items()}
    assert stats["grpo"].validation_s == 14.0 and stats["gspo"].validation_s == 7.0


def test_other_settings_validate_again(tmp_path, monkeypatch):
    runs = []
    fake_trainer(monkeypatch, runs)
    assert run(tmp_path, "grpo") == 0
    assert run(tmp_path, "gspo", "actor_rollout_ref.rollout.val_kwargs.temperature=0.5") == 0
    assert run(tmp_path, "sapo", "--engine", "vllm") == 0
    assert run(tmp_path, "cispo") == 0
    assert runs == [("grpo", True), ("gspo", True), ("sapo", True), ("cispo", False)]
