"""The cpu preset's Ray stays on loopback: every Ray listener and what a worker sees as its node IP."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import pytest
from hydra import compose, initialize_config_dir

from sampo_verl.main_ppo import CONFIG_DIR
from sampo_verl.patches import ray_loopback_node

LISTENERS = """
import json, sys, psutil, ray
from sampo_verl.patches import ray_loopback_node
acted = ray_loopback_node.apply(json.loads(sys.argv[1])) if sys.argv[2] == "patched" else False
ray.init(**json.loads(sys.argv[1]), num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[3])

@ray.remote
def node_ip():
    import ray.util
    return ray.util.get_node_ip_address()

@ray.remote
class Actor:
    def ip(self):
        import ray.util
        return ray.util.get_node_ip_address()

ips = {ray.get(node_ip.remote()), ray.get(Actor.remote().ip.remote())}
tree = {psutil.Process().pid, *(p.pid for p in psutil.Process().children(recursive=True))}
addresses = sorted({c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in tree})
print(json.dumps({"acted": acted, "ips": sorted(ips), "listen": addresses}))
ray.shutdown()
"""


def cpu_ray_init() -> dict:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose(config_name="sampo_ppo", overrides=["preset=cpu"])
    return {k: v for k, v in dict(config.ray_kwargs.ray_init).items() if k == "_node_ip_address"}


def listeners(ray_init: dict, mode: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as temp_dir:  # Ray's socket paths must be short
        done = subprocess.run(
            [sys.executable, "-c", LISTENERS, json.dumps(ray_init), mode, temp_dir],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cpu_presets_ray_listens_on_loopback_only():
    ray_init = cpu_ray_init()
    assert ray_init == {"_node_ip_address": "127.0.0.1"}
    seen = listeners(ray_init, "patched")
    assert seen["acted"] and seen["ips"] == ["127.0.0.1"]
    assert seen["listen"] and set(seen["listen"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, seen


@pytest.mark.slow
def test_without_the_patch_ray_listens_on_the_network():
    """What the patch is for (machines with a network address): Ray rewrites the loopback address."""
    seen = listeners(cpu_ray_init(), "plain")
    assert seen["ips"] != ["127.0.0.1"] and not set(seen["listen"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}


def test_a_cluster_address_is_left_alone():
    assert not ray_loopback_node.wants_loopback({"_node_ip_address": "10.0.0.5"})
    assert not ray_loopback_node.wants_loopback({"_node_ip_address": "127.0.0.1", "address": "10.0.0.1:6379"})
    assert not ray_loopback_node.wants_loopback({})
