"""Served models as agents: ``sampo-verl serve`` for a local checkpoint, the OpenAI client path of
``sampo-verl evaluate``, and what happens when the server misbehaves."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from sampo_verl.agent.prompts import format_response
from sampo_verl.runs.chat_client import MAX_CHARS_PER_TOKEN, ChatSettings
from sampo_verl.runs.evaluate import play_episodes, play_served, summarise, wilson_interval

LAKE = {"size": 3, "hole_prob": 0.3}
SEEDS = [5, 6, 7, 8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """``sampo-verl serve`` on loopback with the tiny model: its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sampo_verl", "serve", "--model", str(tiny_model_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(30)


def settings(base_url: str, **changes) -> ChatSettings:
    return ChatSettings(**{"base_url": base_url, "model": "tiny", "max_tokens": 12, "backoff_s": 0.01, **changes})


def test_a_served_checkpoint_plays_exactly_as_the_direct_hf_path(served, tiny_model_dir):
    direct = asyncio.run(
        play_episodes(tiny_model_dir, "frozenlake", SEEDS, env_options=LAKE, max_turns=3, response_length=12)
    )
    through_api = asyncio.run(play_served(settings(served), "frozenlake", SEEDS, env_options=LAKE, max_turns=3))
    assert [[t["reply"] for t in r["turns"]] for r in through_api] == [[t["reply"] for t in r["turns"]] for r in direct]
    for key in ("success", "episode_length", "invalid_action_rate", "env_error"):
        assert [r[key] for r in through_api] == [r[key] for r in direct]
    assert [t["messages"] for t in through_api[0]["turns"]] == [t["messages"] for t in direct[0]["turns"]]
    assert all(r["request_failed"] == 0.0 and r["prompt_tokens"] > 0 for r in through_api)


class FakeAPI:
    """An OpenAI-style server that answers the frozenlake move ``right`` and misbehaves as told."""

    def __init__(self, behaviour: str):
        self.behaviour, self.requests, self.keys = behaviour, 0, set()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            self.requests += 1
            self.keys.add(request.headers.get("authorization", ""))
            if self.behaviour == "429_then_200" and self.requests <= len(SEEDS):  # every episode's first ask
                return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"retry-after": "0"})
            if self.behaviour == "timeout":
                await asyncio.sleep(3)
            if self.behaviour == "401_echoing_the_key":
                return JSONResponse({"error": {"message": f"bad key: {request.headers.get('authorization')}"}}, 401)
            if self.behaviour == "trickle":  # a byte at a time, each well within the read timeout, for 20 s

                async def drip():
                    for _ in range(60):
                        await asyncio.sleep(0.3)
                        yield b" "

                return StreamingResponse(drip(), media_type="application/json")
            if self.behaviour == "malformed":
                return PlainTextResponse("{not json", media_type="application/json")
            content = format_response("", "right") + ("x" * 5_000_000 if self.behaviour == "huge" else "")
            reply = {"role": "assistant", "content": content}
            return {
                "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "message": reply, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }  # fmt: skip

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_rate_limits_are_retried_and_the_episodes_play_on():
    fake = FakeAPI("429_then_200")
    with fake as url:
        records = asyncio.run(play_served(settings(url), "frozenlake", SEEDS, env_options=LAKE, max_turns=3))
    result = summarise(records)
    assert result.failed_request_rate == 0.0 and all(r["turns"] for r in records)
    assert fake.requests == len(SEEDS) + sum(len(r["turns"]) for r in records)  # 4 refused, then one per turn
    assert all(t["action"] == "right" for r in records for t in r["turns"])
    assert result.prompt_tokens == 10 * sum(len(r["turns"]) for r in records)


@pytest.mark.parametrize("behaviour, retries", [("timeout", 1), ("trickle", 1), ("malformed", 3)])
def test_a_request_that_keeps_failing_ends_its_episode_failed_and_counted(behaviour, retries):
    fake = FakeAPI(behaviour)
    with fake as url:
        api = settings(url, request_timeout_s=0.5, retries=retries)
        began = time.monotonic()
        records = asyncio.run(play_served(api, "frozenlake", SEEDS, env_options=LAKE, max_turns=3))
    result = summarise(records)
    assert result.episodes == 4 and result.failed_request_rate == 1.0 and result.success_rate == 0.0
    assert all(r["turns"] == [] and r["episode_length"] == 0 for r in records)
    # a timeout is retried (1 + retries attempts per episode); a reply that is not a completion is not
    assert fake.requests == 4 * (1 + retries if behaviour in ("timeout", "trickle") else 1)
    assert time.monotonic() - began < 30


def test_a_huge_reply_is_cut_to_what_max_tokens_allows():
    fake = FakeAPI("huge")
    with fake as url:
        api = settings(url, max_tokens=16)
        records = asyncio.run(play_served(api, "frozenlake", SEEDS[:1], env_options=LAKE, max_turns=2))
    replies = [t["reply"] for r in records for t in r["turns"]]
    assert replies and all(len(reply) == MAX_CHARS_PER_TOKEN * 16 for reply in replies)


@pytest.mark.parametrize("behaviour", ["ok", "401_echoing_the_key"])
def test_the_api_key_is_used_but_never_printed_or_written(tmp_path, behaviour):
    secret = "sk-test-" + os.urandom(8).hex()
    out = tmp_path / "eval"
    fake = FakeAPI(behaviour)
    with fake as url:
        done = subprocess.run(
            [sys.executable, "-m", "sampo_verl", "evaluate", "--base-url", url, "--model", "fake",
             "--env", "frozenlake", "--episodes", "3", "--env-options", json.dumps(LAKE), "--max-turns", "2",
             "--api-key-env", "MY_KEY", "--out", str(out)],
            capture_output=True, text=True, timeout=180, env={**os.environ, "MY_KEY": secret},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert fake.keys == {f"Bearer {secret}"}  # the server got the key
    assert secret not in done.stdout + done.stderr
    if behaviour != "ok":  # the server's refusal is reported, without the key it echoed
        assert "AuthenticationError" in done.stderr and "bad key: Bearer <api key>" in done.stderr
    files = list(out.rglob("*"))
    assert {f.name for f in files} == {"summary.json", "episodes.jsonl"}
    assert all(secret not in f.read_text() for f in files)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["served"] and len(summary["success_ci95"]) == 2


def test_wilson_interval_by_hand():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_the_server_refuses_what_it_cannot_do(served):
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}).encode()
    request = urllib.request.Request(f"{served}/chat/completions", body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 422


def test_sampling_values_that_would_break_the_batch_are_refused_or_greedy(served):
    """NaN/infinite values get 422 (not a 500 the error body cannot be written in); a temperature too small
    to divide by samples greedily, and the request batched beside it is served as usual."""

    def ask(body: str) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(f"{served}/chat/completions", body.encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    messages = '"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4'
    for value in ("NaN", "Infinity", "-1"):
        status, body = ask(f'{{{messages}, "temperature": {value}}}')
        assert status == 422 and "temperature" in body["error"]["message"], (value, body)
    with ThreadPoolExecutor(2) as pool:
        tiny, usual = pool.map(ask, [f'{{{messages}, "temperature": 1e-40}}', f'{{{messages}, "temperature": 1.0}}'])
    greedy = ask(f'{{{messages}, "temperature": 0}}')
    assert tiny[0] == usual[0] == 200
    assert tiny[1]["choices"][0]["message"] == greedy[1]["choices"][0]["message"]


def test_a_huge_prompt_does_not_hold_the_other_requests(served):
    """Rendering and tokenising a 10 MB prompt takes seconds; it runs off the event loop, so a small
    request sent after it is answered first (the huge one is then refused: it exceeds the context)."""
    done: list[str] = []

    def ask(name: str, content: str) -> int:
        body = json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": 2}).encode()
        request = urllib.request.Request(f"{served}/chat/completions", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                status = answer.status
        except urllib.error.HTTPError as refused:
            status = refused.code
        done.append(name)
        return status

    with ThreadPoolExecutor(2) as pool:
        huge = pool.submit(ask, "huge", "word " * 2_000_000)
        time.sleep(0.5)
        small = pool.submit(ask, "small", "hi")
        assert (small.result(), huge.result()) == (200, 400)
    assert done == ["small", "huge"]
