"""Shared fixtures: a tiny local model directory."""

import pytest

from sampo_verl.runs.assets import ModelSize, build_assets


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Byte-level BPE tokenizer + 2-layer Qwen2 (hidden 64; init std 0.3 so greedy outputs vary)."""
    size = ModelSize(hidden=64, init_std=0.3)
    return build_assets(tmp_path_factory.mktemp("tiny_model"), vocab_size=512, size=size, seed=0)
