"""verl's multi-turn SFT dataset with the loss also on the prompts (``data.custom_cls``).

verl's ``MultiTurnSFTDataset`` puts only assistant tokens under the SFT loss. A tiny model cloned that
way learns an environment's format but not to copy numbers from its prompt into its action (TIR-Math:
the right program with the wrong numbers, 0 of 48 held-out problems solved). The prompts hold many
copy events (the history repeats the question's numbers inside code), so putting every message's
tokens under the loss teaches copying at no extra forward cost. Select it with::

    data.custom_cls.path=pkg://sampo_verl.bc.prompt_loss data.custom_cls.name=PromptLossSFTDataset
"""

from __future__ import annotations

from typing import Any

import torch
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset


class PromptLossSFTDataset(MultiTurnSFTDataset):
    """``MultiTurnSFTDataset`` whose loss mask covers the tokens of every message, not only the assistant's."""

    def _process_single_message(self, index: int, message: dict[str, Any], *args: Any, **kwargs: Any):
        input_ids, loss_mask, attention_mask, inputs = super()._process_single_message(index, message, *args, **kwargs)
        if message["role"] != "assistant":
            loss_mask = torch.ones_like(attention_mask)
        return input_ids, loss_mask, attention_mask, inputs
