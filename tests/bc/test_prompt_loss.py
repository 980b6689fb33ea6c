"""PromptLossSFTDataset: verl's SFT dataset with every message under the loss, loaded as verl loads it."""

import torch
from omegaconf import OmegaConf
from verl.trainer.sft_trainer import create_sft_dataset
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

from sampo_verl.bc.prompt_loss import PromptLossSFTDataset
from sampo_verl.bc.sft_data import write_sft_splits
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.runs.testbed import TESTBEDS

TOKENIZER = build_tokenizer(default_corpus(), vocab_size=512)


def data_config(custom: bool):
    # the dataset class as the TIR-Math testbed selects it (conf/testbed/tir_math.yaml)
    selected = [o for o in TESTBEDS["tir_math"].bc_overrides if o.startswith("data.custom_cls.")]
    overrides = dict(o.removeprefix("data.custom_cls.").split("=", 1) for o in selected) if custom else {}
    return OmegaConf.create(
        {
            "pad_mode": "no_padding",
            "max_length": 4096,
            "truncation": "error",
            "custom_cls": {"path": overrides.get("path"), "name": overrides.get("name")},
        }
    )


def test_every_token_of_every_message_is_trained_and_the_tokens_are_verls(tmp_path):
    written = write_sft_splits(str(tmp_path), "frozenlake", 2, 0, env_options={"size": 3})
    path = written["train"][0]
    ours = create_sft_dataset(path, data_config(True), TOKENIZER, None)  # verl's own loader picks the class
    plain = create_sft_dataset(path, data_config(False), TOKENIZER, None)
    assert type(ours) is PromptLossSFTDataset and type(plain) is MultiTurnSFTDataset
    for i in range(len(plain)):
        a, b = ours[i], plain[i]
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["position_ids"], b["position_ids"])
        # everything is trained but the assistant's header, which verl masks (the model is given it)
        assert TOKENIZER.decode(a["input_ids"][~a["loss_mask"].bool()]) == "<|im_start|>assistant\n"
        # the assistant's own tokens are verl's: trained by both
        assert (a["loss_mask"] >= b["loss_mask"]).all() and 0 < b["loss_mask"].sum() < a["loss_mask"].sum()
