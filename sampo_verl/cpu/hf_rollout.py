"""The ``hf`` rollout backend (``actor_rollout_ref.rollout.name=hf``) for verl's agent loops.

- :class:`HFReplica` (verl ``RolloutReplicaRegistry``): launches one :class:`~.hf_server.HFServer`
  Ray actor per replica; the agent loops' ``LLMServerClient`` calls its ``generate``.
- :class:`HFServerAdapter` (verl ``_ROLLOUT_REGISTRY[("hf", "async")]``): the rollout object in
  each trainer worker. With ``checkpoint_engine.backend=naive`` verl's ``update_weights`` hands it
  the FSDP engine's per-tensor generator; every rank drains it (gathering a DTensor is a
  collective) and the replica's leader rank sends the full state dict to its server.

One server holds the whole model, so the rollout world size (tensor x data x pipeline parallel)
must be 1.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import ray
import torch
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry

from .hf_server import HFServer

BACKEND_NAME = "hf"


def server_actor_name(replica_rank: int, name_suffix: str = "") -> str:
    return f"sampo_hf_rollout_server_{replica_rank}{name_suffix}"


def check_single_process_rollout(config: Any) -> None:
    """The HF server runs the whole model in one process: no tensor/data/pipeline parallelism."""
    for field in ("tensor_model_parallel_size", "data_parallel_size", "pipeline_model_parallel_size"):
        if getattr(config, field) != 1:
            raise ValueError(
                f"actor_rollout_ref.rollout.{field}={getattr(config, field)} is not supported by "
                f"rollout.name={BACKEND_NAME}: set it to 1"
            )


class HFReplica(RolloutReplica):
    """A rollout replica served by one :class:`HFServer` actor."""

    async def launch_servers(self) -> None:
        check_single_process_rollout(self.config)
        server = (
            ray.remote(HFServer)
            .options(
                name=server_actor_name(self.replica_rank, self.name_suffix),
                num_cpus=0,
                max_concurrency=self.max_concurrency,
            )
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        address, _ = await server.get_server_address.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{BACKEND_NAME}-{self.replica_rank}{self.name_suffix}@{address}"


class HFServerAdapter(BaseRollout):
    """Trainer-side rollout: forwards weight updates to this rank's replica server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, **kwargs):
        super().__init__(config, model_config, device_mesh)
        check_single_process_rollout(self.config)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else int(os.environ.get("RANK", 0))
        self.replica_rank = rank if replica_rank == -1 else replica_rank
        self.is_leader_rank = True  # one process per replica
        self.sleep_level = 2
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        pass

    async def release(self) -> None:
        pass

    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        peft_config: Any = None,
        global_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(
                f"rollout.name={BACKEND_NAME} receives full tensors only (wire_format={wire_format!r}): "
                "use actor_rollout_ref.rollout.checkpoint_engine.backend=naive"
            )
        if peft_config is not None:
            raise NotImplementedError(
                f"rollout.name={BACKEND_NAME} cannot load LoRA adapters: set actor_rollout_ref.model.lora.merge=True"
            )
        state_dict = {name: tensor.detach().to("cpu").clone() for name, tensor in weights}
        await self._server_handle().update_weights.remote(state_dict, global_steps)


def register_hf_rollout() -> None:
    """Make ``rollout.name=hf`` known to verl (replica factory and trainer-side adapter)."""
    rollout_base._ROLLOUT_REGISTRY[(BACKEND_NAME, "async")] = f"{__name__}.HFServerAdapter"
    RolloutReplicaRegistry.register(BACKEND_NAME, lambda: HFReplica)
