"""An OpenAI-compatible chat-completions server for a local HF checkpoint (CPU or GPU)::

    sampo-verl serve --model CKPT_DIR [--host 127.0.0.1] [--port 8000]

``POST /v1/chat/completions`` applies the checkpoint's chat template to ``messages`` (with verl's
rendering, as the agent loop does), generates with the package's batching HF server
(:class:`sampo_verl.cpu.hf_server.HFServer`, the ``hf`` rollout's engine: concurrent requests share
a batch) and answers in the OpenAI format
with token usage; ``GET /v1/models`` lists the one model. Sampling: ``temperature`` (0 = greedy,
as is anything below 1e-5, as in vLLM, so that dividing by it cannot overflow; default 1 as in
OpenAI's API), ``top_p``, ``max_tokens`` / ``max_completion_tokens``; ``n`` must be 1. A request that
breaks these rules gets 422 (with NaN or infinities too), and no request can fail another: the prompt
is rendered off the event loop. It listens on loopback by default; it has no authentication, so do not expose it.
A checkpoint served here is evaluated exactly like an API model:
``sampo-verl evaluate --base-url http://127.0.0.1:8000/v1 --model NAME --env ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, Field

DEFAULT_MAX_TOKENS = 256


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1)


def local_server(
    model: str | Path, response_length: int, max_num_seqs: int, seed: int = 0, device: str = "cpu"
) -> tuple[Any, dict]:
    """The batching HF server (:class:`sampo_verl.cpu.hf_server.HFServer`) on ``model`` and its rollout config.

    On ``device`` (``cpu``, ``cuda``, ...) the model runs; sampling is on the CPU either way.
    """
    from omegaconf import OmegaConf
    from transformers import AutoConfig

    from sampo_verl.cpu.hf_server import HFServer

    hf_config = AutoConfig.from_pretrained(str(model))
    rollout = {
        "prompt_length": hf_config.max_position_embeddings - response_length,
        "response_length": response_length,
        "max_model_len": hf_config.max_position_embeddings,
        "max_num_seqs": max_num_seqs,
        "dtype": "float32",
        "seed": seed,
        "device": device,
    }
    model_config = SimpleNamespace(path=str(model), override_config={}, trust_remote_code=False)
    return HFServer(OmegaConf.create(rollout), model_config, replica_rank=0), rollout


def build_app(
    model: str | Path, name: str | None = None, max_num_seqs: int = 32, seed: int = 0, device: str = "cpu"
) -> Any:
    """The FastAPI application serving ``model`` under ``name`` (default: the folder's name)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from transformers import AutoTokenizer
    from verl.utils.tokenizer.chat_template import apply_chat_template
    from verl.utils.tokenizer.tokenizer import normalize_token_ids

    name = name or Path(model).name
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    server, rollout = local_server(model, DEFAULT_MAX_TOKENS, max_num_seqs, seed, device)
    app = FastAPI(title=f"sampo-verl serve: {name}")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Any, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the values, and a NaN one cannot be written as JSON (a 500)
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error(422, where)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "sampo_verl"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> Any:
        messages = [m.model_dump() for m in request.messages]
        # verl's own rendering, as the agent loop's token builder does it; a long prompt takes seconds
        prompt_ids = await asyncio.to_thread(
            lambda: normalize_token_ids(apply_chat_template(tokenizer, messages, tokenize=True))
        )
        room = rollout["max_model_len"] - len(prompt_ids)
        if room < 1:
            return error(
                400, f"the prompt has {len(prompt_ids)} tokens; the model's context is {rollout['max_model_len']}"
            )
        max_tokens = min(request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS, room)
        params = {"temperature": request.temperature, "top_p": request.top_p, "max_tokens": max_tokens}
        output = await server.generate(prompt_ids=prompt_ids, sampling_params=params, request_id=uuid.uuid4().hex)
        ids = list(output.token_ids)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": tokenizer.decode(ids, skip_special_tokens=True)},
                    "finish_reason": output.extra_fields.get("finish_reason") or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": len(ids),
                "total_tokens": len(prompt_ids) + len(ids),
            },
        }

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="HF model directory")
    parser.add_argument("--name", default=None, help="model name clients ask for (default: the folder's name)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default loopback: no authentication)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-num-seqs", type=int, default=32, help="requests batched together")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the server")
    parser.add_argument("--device", default=None, help="torch device of the model (default: cuda if present, else cpu)")
    args = parser.parse_args(argv)
    import torch
    import uvicorn

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    app = build_app(args.model, args.name, args.max_num_seqs, args.seed, device)
    print(f"serving {args.model} as {args.name or args.model.name} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
