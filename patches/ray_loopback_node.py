"""Let a local Ray cluster started with ``_node_ip_address=127.0.0.1`` actually stay on loopback (Ray 2.x).

verl starts Ray with ``ray.init(**ray_kwargs.ray_init)``, and the cpu preset asks for
``_node_ip_address: 127.0.0.1``. Ray's ``init`` passes that address through
``ray._private.services.resolve_ip_for_localhost``, which turns a loopback address into the
machine's network address unless ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` is false; that
constant is read once, at ``import ray``, from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` (true on
Linux). So the GCS, raylet, every worker's gRPC server, the agents and TransferQueue's sockets
(bound to ``ray.util.get_node_ip_address()``) listen on the network whatever ``ray.init`` is given:
no ray_init key can change it, and the variable comes too late once verl has imported Ray.
:func:`apply` clears the constant in the driver and sets the variable for the processes Ray
starts, only when the run asks for a loopback node address and Ray is not running yet; a cluster
run (any other address, or ``ray_init.address``) is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ENV_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def wants_loopback(ray_init: Mapping[str, Any]) -> bool:
    """Whether ``ray_init`` starts a local cluster on a loopback node address."""
    return ray_init.get("_node_ip_address") in LOOPBACK and not ray_init.get("address")


def apply(ray_init: Mapping[str, Any]) -> bool:
    """Keep the cluster ``ray.init(**ray_init)`` will start on loopback; returns whether it acted."""
    import ray
    from ray._private import ray_constants

    if not wants_loopback(ray_init) or ray.is_initialized():
        return False
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[ENV_VAR] = "0"
    return True
