"""Triton Inference Server's gRPC streaming: ``ModelStreamInfer`` through ``tritonclient.grpc.aio``.

The request carries what the HTTP ``generate_stream`` client sends (:mod:`.triton`): the model's
inputs as tensors, every other key as a request parameter, so both APIs ask the same model for
the same work. The llm model is decoupled: one response per token with ``text_output`` and the
``instance_id`` of the server, then a bare final flag. tritonclient's stream cannot ask for an
empty final response (``triton_*`` parameters are reserved), so each request is its own
stream: the client half-closes after sending it, and the server ends the stream once the model
sent its final flag — the end of the answer. All streams share one HTTP/2 channel.

``--target`` is ``http://host:port`` (plaintext, Triton's gRPC port) or ``https://host[:port]``
(TLS, a load balancer's HTTPS listener).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from inferfleet.cli.bench.clients.base import (
    EMULATED_PARAMETER,
    Client,
    ClientSettings,
    StreamFormatError,
)
from inferfleet.cli.bench.clients.triton import TritonClient
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec
from inferfleet.cli.errors import UserError

try:
    import grpc
    import tritonclient.grpc.aio as grpcclient
except ImportError:  # the grpc extra is not installed: said when the client is made
    grpc = grpcclient = None

# The llm model's inputs and their Triton datatypes; the other keys are request parameters.
MODEL_INPUTS = {
    "text_input": ("BYTES", np.object_),
    "max_tokens": ("INT32", np.int32),
    "stream": ("BOOL", np.bool_),
}
INSTANCE_OUTPUT = "instance_id"
TEXT_OUTPUT = "text_output"
# The error kind of a stream that ends with one of these gRPC status codes.
_STATUS_KINDS = {"UNAVAILABLE": "connect", "DEADLINE_EXCEEDED": "timeout"}


def channel_options() -> list[tuple[str, int]]:
    """tritonclient's own channel options, with gRPC's transparent retries off: a stream
    that failed before reaching the server is a failed request (bench never retries)."""
    from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions

    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.enable_retries", 0),
    ]


def grpc_address(target: str) -> tuple[str, bool]:
    """``host:port`` and whether TLS is on, from an http(s) URL."""
    parts = urlsplit(target)
    tls = parts.scheme == "https"
    if not parts.hostname:
        raise UserError(f"--target: '{target}' names no host; use http://HOST:PORT")
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        raise UserError(f"--target: '{target}' has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tls


class TritonGrpcClient(Client):
    api = "triton-grpc"

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(settings)
        if grpcclient is None:
            raise UserError(
                "--api triton-grpc needs tritonclient[grpc]; install it with "
                "`pip install 'inferfleet[grpc]'`",
                exit_code=1,
            )
        self.address, self.tls = grpc_address(settings.target)
        self._client: Any = None

    async def __aenter__(self) -> TritonGrpcClient:
        self._client = grpcclient.InferenceServerClient(
            url=self.address, ssl=self.tls, channel_args=channel_options()
        )
        try:
            await self.prepare()
        except BaseException:
            await self._client.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.close()

    async def prepare(self) -> None:
        self.model = self.settings.model or await self._only_ready_model()

    async def _only_ready_model(self) -> str:
        try:
            index = await self._client.get_model_repository_index(
                as_json=True, client_timeout=min(self.settings.timeout, 30.0)
            )
        except grpcclient.InferenceServerException as error:
            raise UserError(
                f"--target: cannot read the model repository of {self.address} over gRPC "
                f"({error.message()}); check the URL (Triton's gRPC port) or pass --model",
                exit_code=1,
            ) from None
        ready = [m["name"] for m in index.get("models", []) if m.get("state") == "READY"]
        if len(ready) != 1:
            listed = ", ".join(ready) or "none found"
            raise UserError(f"--model: name the Triton model to call (ready models: {listed})")
        return ready[0]

    def describe(self) -> dict:
        scheme = "grpcs" if self.tls else "grpc"
        return {"api": self.api, "url": f"{scheme}://{self.address}", "model": self.model}

    def request(self, spec: RequestSpec) -> dict[str, Any]:
        """The stream_infer request of ``spec``: the HTTP client's payload, split."""
        payload = TritonClient.payload(spec)
        inputs = []
        for name, (datatype, dtype) in MODEL_INPUTS.items():
            tensor = grpcclient.InferInput(name, [1], datatype)
            value = payload[name].encode() if datatype == "BYTES" else payload[name]
            tensor.set_data_from_numpy(np.array([value], dtype=dtype))
            inputs.append(tensor)
        parameters = {k: v for k, v in payload.items() if k not in MODEL_INPUTS}
        return {"model_name": self.model, "inputs": inputs, "parameters": parameters}

    async def exchange(self, spec: RequestSpec, record: RequestRecord) -> None:
        request = self.request(spec)

        async def one_request() -> AsyncIterator[dict[str, Any]]:
            yield request

        responses = self._client.stream_infer(one_request(), stream_timeout=self.settings.timeout)
        got_any = False
        try:
            async for result, error in responses:
                now = perf_counter()
                got_any = True
                if error is not None:
                    record.end = now
                    record.fail("server_error", str(error.message())[:300])
                    return
                self._note_outputs(result, record, now)
        except grpc.aio.AioRpcError as error:
            # The stream itself failed (the model's own errors arrive as responses above).
            code = error.code().name
            kind = _STATUS_KINDS.get(code, f"grpc_{code.lower()}")
            if kind == "connect" and got_any:
                kind = "disconnected"
            record.end = perf_counter()
            record.fail(kind, str(error.details() or code)[:300])
            return
        except asyncio.CancelledError:
            responses.cancel()
            raise
        record.end = perf_counter()
        if not got_any:
            record.fail("truncated", "the stream ended without a response")

    def _note_outputs(self, result: Any, record: RequestRecord, now: float) -> None:
        text = result.as_numpy(TEXT_OUTPUT)
        if text is None:
            raise StreamFormatError(f"a ModelStreamInfer response without '{TEXT_OUTPUT}'")
        if record.instance is None:
            instance = result.as_numpy(INSTANCE_OUTPUT)
            if instance is not None and instance.size:
                record.instance = _text(instance.reshape(-1)[0])[:200] or None
            parameters = result.get_response().parameters
            record.emulated = (
                EMULATED_PARAMETER in parameters and parameters[EMULATED_PARAMETER].bool_param
            )
        if text.size and _text(text.reshape(-1)[0]):
            record.token(now)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
