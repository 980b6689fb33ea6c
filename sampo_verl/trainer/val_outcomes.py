"""Per-task validation outcomes: which held-out task each validation solved.

verl's validation logs means (``val-core/<data_source>/acc/mean@n``); paired statistics (the same
tasks before and after a change, or across methods and seeds) need the outcome of every task. The
environment agent loop names each episode's task in ``reward_extra_info`` (``task_seed``: the
dataset row's seed), and the SAMPO trainer takes it out of what verl aggregates and appends one JSON
line per validation to ``sampo.validation.outcomes_file``::

    {"step": 4, "data_source": ["frozenlake", ...], "task_seed": [1000000, ...], "acc": [1.0, ...],
     "episode_length": [3, ...], "missing": 0}

``missing``: episodes verl expected that returned no sample (the environment could not start them);
verl's mean counts them as failures, and so does :meth:`ValOutcomes.success`. Resume: a run resumed
from a checkpoint validates some steps again; when the file is read, the last line of a step wins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sampo_verl.agent.turns import EPISODE_LENGTH, TASK_SEED, VAL_ACC
from sampo_verl.metrics import read_jsonl, skip
from sampo_verl.options import options_section, read_options, section_of

OUTCOMES_FILE = "val_outcomes.jsonl"  # the name the package's runs (quickstart, arena cells) give the file


@options_section("sampo.validation")
@dataclass(frozen=True)
class ValidationOptions:
    """``sampo.validation``.

    outcomes_file: the JSONL file of per-task outcomes (null: not written); the config's default is
        ``${trainer.default_local_dir}/val_outcomes.jsonl``.
    """

    outcomes_file: str | None = None

    def check(self, prefix: str) -> None:
        if self.outcomes_file is not None and not isinstance(self.outcomes_file, str):
            raise ValueError(f"{prefix}.outcomes_file must be a path or null, got {self.outcomes_file!r}")


def validation_options(sampo_config: Mapping[str, Any] | None) -> ValidationOptions:
    """``sampo.validation`` of the ``sampo`` config section (absent: the defaults)."""
    return read_options(ValidationOptions, section_of(sampo_config, "validation"), "sampo.validation")


@dataclass(frozen=True)
class ValOutcomes:
    """One validation: parallel lists, one entry per validated episode."""

    step: int
    data_source: list[str]
    task_seed: list[int]
    acc: list[float]
    missing: int = 0
    episode_length: list[int] = field(default_factory=list)  # turns per episode (empty: not reported)

    def success(self, seeds: Sequence[int], data_source: str | None = None) -> np.ndarray:
        """Mean success per task of ``seeds`` (float array in that order); a task without an episode is 0.

        Several episodes of one task (``val_kwargs.n > 1``) are averaged.
        """
        index = {seed: i for i, seed in enumerate(seeds)}
        total, count = np.zeros(len(seeds)), np.zeros(len(seeds))
        for source, seed, acc in zip(self.data_source, self.task_seed, self.acc, strict=True):
            if (data_source is None or source == data_source) and seed in index:
                total[index[seed]] += acc
                count[index[seed]] += 1
        return np.divide(total, count, out=np.zeros(len(seeds)), where=count > 0)


def take_task_seeds(reward_extra_infos: dict[str, list]) -> tuple[list[Any] | None, dict[str, list]]:
    """Split the task seeds off verl's per-sample validation values (they are names, not metrics)."""
    rest = dict(reward_extra_infos)
    return rest.pop(TASK_SEED, None), rest


def outcomes_record(
    step: int, data_sources: Sequence[Any], task_seeds: Sequence[Any], reward_extra_infos: Mapping[str, list],
    expected: int,
) -> ValOutcomes:  # fmt: skip
    """The record of one validation from verl's per-sample lists (``expected``: the episodes asked for);
    samples without a task seed (another agent loop's data source) are left out."""
    acc = reward_extra_infos.get(VAL_ACC) or reward_extra_infos["reward"]
    lengths = reward_extra_infos.get(EPISODE_LENGTH) or [None] * len(acc)
    rows = [
        (str(source), int(seed), float(a), length)
        for source, seed, a, length in zip(data_sources, task_seeds, acc, lengths, strict=True)
        if seed is not None
    ]
    return ValOutcomes(
        step=int(step),
        data_source=[r[0] for r in rows],
        task_seed=[r[1] for r in rows],
        acc=[r[2] for r in rows],
        missing=max(0, int(expected) - len(acc)),
        episode_length=[int(r[3]) for r in rows] if all(r[3] is not None for r in rows) else [],
    )


def append_outcomes(path: str | Path, record: ValOutcomes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(record)) + "\n")


def read_val_outcomes(path: str | Path, skipped: list[str] | None = None) -> dict[int, ValOutcomes]:
    """step -> that step's validation (the last one written for the step); {} when there is no file.
    Lines that are not a validation record are left out and noted in ``skipped`` (:func:`read_jsonl`)."""
    path = Path(path)
    if not path.exists():
        return {}
    records: dict[int, ValOutcomes] = {}
    for number, line in read_jsonl(path, skipped):
        record = _outcomes(line)
        if record is None:
            skip(skipped, f"{path}: line {number} is not a validation record")
            continue
        records[record.step] = record
    return dict(sorted(records.items()))


def _outcomes(value: Any) -> ValOutcomes | None:
    """``value`` as a record when it has the fields, types and equal list lengths of one, else None."""
    try:
        record = ValOutcomes(**value)
    except TypeError:  # not a mapping, a field missing or unknown
        return None
    lists = (record.data_source, record.task_seed, record.acc)
    number = (int, float)
    well_formed = (
        isinstance(record.step, int)
        and isinstance(record.missing, int)
        and all(isinstance(values, list) for values in (*lists, record.episode_length))
        and len({len(values) for values in lists}) == 1
        and all(isinstance(seed, int) for seed in record.task_seed)
        and all(isinstance(acc, number) and not isinstance(acc, bool) for acc in record.acc)
    )
    return record if well_formed else None
