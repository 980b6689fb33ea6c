"""``sampo.env``: the tasks a run trains and validates on, as the ``env`` config groups set them.

Each ``sampo_verl/conf/env/<name>.yaml`` sets this section together with the trainer settings of that
environment at the ARLArena release's scale (batch, turn budgets, group size); the GPU recipes write
their data from it (``sampo_verl.recipe``), so an environment class itself carries no training setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sampo_verl.options import options_section


@options_section("sampo.env")
@dataclass(frozen=True)
class EnvSettings:
    """``sampo.env`` (set by ``env=<name>``; read when the data is written, not by the trainer).

    max_turns: the episode's turn limit (null: the environment class's ``default_max_turns``);
    options / val_options: constructor options of the train / validation tasks (val_options null: the
    train ones); data_name: the data folder's name (null: the environment's name).
    """

    max_turns: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    val_options: dict[str, Any] | None = None
    data_name: str | None = None

    def __post_init__(self) -> None:
        if self.max_turns is not None and (not isinstance(self.max_turns, int) or self.max_turns < 1):
            raise ValueError(f"sampo.env.max_turns must be a positive integer or null, got {self.max_turns!r}")
