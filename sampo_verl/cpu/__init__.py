"""CPU backend: verl's own trainer end to end without an accelerator.

Importing this package (:mod:`sampo_verl.plugin` does, in every process that imports verl, where the
CPU platform is in use: :mod:`sampo_verl.accelerators`) registers:

- the ``cpu`` platform (:mod:`.platform`), chosen by ``VERL_PLATFORM=cpu`` or when no
  accelerator is present;
- verl's FSDP2 engines for device ``cpu`` (:mod:`.engines`);
- the ``hf`` rollout backend, ``actor_rollout_ref.rollout.name=hf`` (:mod:`.hf_rollout`);
- the CPU patches of :mod:`sampo_verl.patches`, inert on any other device (the speed-only ones can be
  left out by name: ``SAMPO_DISABLE_PATCHES=cpu_chunked_logprobs,cpu_response_logits,cpu_causal_right_padding``);
- in the processes of a run on vLLM's CPU build (``VLLM_TARGET_DEVICE=cpu``, which ``preset=cpu_vllm``
  sets for every Ray process; importing verl's vLLM modules is slow, so other processes skip it),
  the patches verl's vLLM rollout needs (verl recognises the
  ``vllm-cpu`` distribution; a weight sync that vLLM never acknowledges fails instead of hanging). The
  patch inside vLLM's own processes is a vLLM plugin (``setup.py``'s ``vllm.general_plugins``).

The config side is the Hydra preset ``sampo_verl/conf/preset/cpu.yaml``: ``preset=cpu`` for
``sampo_verl.main_ppo``, ``cpu_overrides()`` for verl's own entry point; ``preset=cpu_vllm`` rolls out
with verl's vLLM server instead of the ``hf`` one.
"""

import importlib.util
import os

# The platform must be registered before any verl module resolves the platform singleton
# (verl.workers.engine.fsdp.transformer_impl does at import time), hence first.
from . import platform  # noqa: F401, I001
from sampo_verl.patches import (
    cpu_causal_right_padding,
    cpu_chunked_logprobs,
    cpu_process_group_backend,
    cpu_response_logits,
    cpu_sft_process_group,
    disabled_patches,
    fsdp2_unpinned_cpu_offload,
    vllm_cpu_distribution,
    vllm_weight_sync_timeout,
)
from .engines import register_fsdp_engines_for_cpu
from .hf_rollout import register_hf_rollout
from .overrides import cpu_overrides  # noqa: F401  (public: tests and scripts)

register_fsdp_engines_for_cpu()
register_hf_rollout()
cpu_process_group_backend.apply()
cpu_sft_process_group.apply()
fsdp2_unpinned_cpu_offload.apply()
if os.environ.get("VLLM_TARGET_DEVICE") == "cpu" and importlib.util.find_spec("vllm") is not None:
    vllm_cpu_distribution.apply()  # before anything imports verl.third_party.vllm
    vllm_weight_sync_timeout.apply()
# speed only, same numbers: $SAMPO_DISABLE_PATCHES can leave them out (to measure what they save)
SPEED_PATCHES = {
    patch.__name__.rsplit(".", 1)[-1]: patch
    for patch in (cpu_chunked_logprobs, cpu_response_logits, cpu_causal_right_padding)  # applied in this order
}
_disabled = disabled_patches(set(SPEED_PATCHES))
for name, patch in SPEED_PATCHES.items():
    if name not in _disabled:
        patch.apply()
