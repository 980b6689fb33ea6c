"""Bound verl's wait for vLLM to take each bucket of synced weights, so a failed sync fails the run.

verl 0.9.1 syncs the actor's weights into vLLM through ``BucketedWeightSender``: the trainer side
fills a buffer, sends the bucket's metadata on a ZMQ REQ socket and waits in ``socket.recv()`` for
the engine's acknowledgement, with no timeout. When the engine fails to load a bucket (an error
in ``load_weights``; on CPU the receiver's clean-up then raises a ``BufferError`` of its own) no
acknowledgement ever comes and the trainer waits forever. The socket is created inside the
sender's ``_init_socket``, which no config reaches, so this patch sets send and receive timeouts on
it (``$SAMPO_WEIGHT_SYNC_TIMEOUT_S`` seconds, default 600, far above the seconds a bucket takes; no
linger on close) and turns a timeout into an error that says what happened and where to look.
"""

from __future__ import annotations

import functools
import os

import zmq

TIMEOUT_VAR = "SAMPO_WEIGHT_SYNC_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0


class WeightSyncTimeout(RuntimeError):
    """vLLM did not acknowledge a bucket of synced weights in time."""


def timeout_s() -> float:
    """The per-bucket acknowledgement timeout from ``$SAMPO_WEIGHT_SYNC_TIMEOUT_S`` (positive seconds)."""
    raw = os.environ.get(TIMEOUT_VAR, str(DEFAULT_TIMEOUT_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VAR} must be a positive number of seconds, got {raw!r}")
    return value


def apply() -> None:
    """Wrap ``BucketedWeightSender``'s socket set-up and send (idempotent)."""
    from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightSender

    if getattr(BucketedWeightSender, "_sampo_timeout", False):
        return
    init_socket, send = BucketedWeightSender._init_socket, BucketedWeightSender.async_send_weights

    @functools.wraps(init_socket)
    def init_socket_with_timeout(self) -> None:
        init_socket(self)
        milliseconds = int(timeout_s() * 1000)
        for option, value in ((zmq.RCVTIMEO, milliseconds), (zmq.SNDTIMEO, milliseconds), (zmq.LINGER, 0)):
            self.socket.setsockopt(option, value)

    @functools.wraps(send)
    async def send_or_fail(self, weights) -> None:
        try:
            await send(self, weights)
        except zmq.Again as error:
            raise WeightSyncTimeout(
                f"vLLM did not take a bucket of synced weights within {timeout_s():g} s ({TIMEOUT_VAR}): "
                "the engine's weight load failed; its error is in the vLLMHttpServer worker's log"
            ) from error

    BucketedWeightSender._init_socket = init_socket_with_timeout
    BucketedWeightSender.async_send_weights = send_or_fail
    BucketedWeightSender._sampo_timeout = True
