"""The gRPC face of an emulated server: Triton's ``inference.GRPCInferenceService``.

It answers what ``inferfleet bench --api triton-grpc`` and a load balancer's gRPC health check
ask for — ``ServerLive``, ``ServerReady``, ``ModelReady``, ``RepositoryIndex`` and
``ModelStreamInfer`` — as the llm model answers: one response per token with the
``text_output`` and ``instance_id`` outputs, requests on one stream answered concurrently, and
a stream that ends once the client half-closed and every answer is complete. Tokens come from
the same batch scheduler as the server's HTTP face, so ``/health`` counts both. Every response
carries the ``inferfleet_emulated`` parameter. Built on the protobuf stubs ``tritonclient``
ships and ``grpc.aio``, in the host's event loop.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from inferfleet.cli.bench.clients.base import EMULATED_PARAMETER
from inferfleet.cli.local.emulator import EmulatedServer, Sequence, drain, text_tokens, token_text


class _BadRequest(Exception):
    """A request the llm model would answer with an error response."""


def _bytes_element(value: str) -> bytes:
    """One BYTES tensor element as Triton's raw contents carry it: a 4-byte length, then it."""
    data = value.encode()
    return struct.pack("<I", len(data)) + data


class GrpcFace(service_pb2_grpc.GRPCInferenceServiceServicer):
    """``server``'s scheduler behind Triton's gRPC service (the other methods: UNIMPLEMENTED).

    The methods keep the service's own names: grpc calls them by those.
    """

    def __init__(self, server: EmulatedServer) -> None:
        self.server = server

    @property
    def _ready(self) -> bool:
        return self.server.scheduler.running

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self._ready)

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self._ready and request.name == self.server.model)

    async def RepositoryIndex(self, request, context):
        state = "READY" if self._ready else "LOADING"
        model = pb.RepositoryIndexResponse.ModelIndex(name=self.server.model, state=state)
        return pb.RepositoryIndexResponse(models=[model])

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        outbox: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        answers: set[asyncio.Task[None]] = set()

        async def read_requests() -> None:
            async for request in request_iterator:
                task = asyncio.create_task(self._answer(request, outbox))
                answers.add(task)
                task.add_done_callback(answers.discard)
            # Half-closed: the stream ends when the answers in flight are complete.
            if answers:
                await asyncio.wait(set(answers))
            outbox.put_nowait(None)

        reader = asyncio.create_task(read_requests())
        try:
            while (response := await outbox.get()) is not None:
                yield response
            await reader
        finally:
            reader.cancel()
            for task in list(answers):
                task.cancel()

    async def _answer(
        self, request: pb.ModelInferRequest, outbox: asyncio.Queue[pb.ModelStreamInferResponse]
    ) -> None:
        try:
            prompt, max_tokens = self._parse(request)
        except _BadRequest as error:
            outbox.put_nowait(pb.ModelStreamInferResponse(error_message=str(error)))
            return
        profile = self.server.profile
        sequence = Sequence(
            prompt_tokens=max(1, text_tokens(prompt, profile)), max_tokens=max_tokens
        )
        self.server.scheduler.submit(sequence)
        try:
            async for index in drain(sequence):
                outbox.put_nowait(self._token_response(request, token_text(index)))
        finally:
            # A stream cancelled by its client frees the slot, as a real server aborts it.
            if not sequence.finished:
                sequence.cancelled = True

    def _parse(self, request: pb.ModelInferRequest) -> tuple[str, int]:
        if request.model_name != self.server.model:
            raise _BadRequest(f"Request for unknown model: '{request.model_name}' is not found")
        inputs = {tensor.name: index for index, tensor in enumerate(request.inputs)}
        if "text_input" not in inputs:
            raise _BadRequest("expected the input 'text_input'")
        prompt = self._text_input(request, inputs["text_input"])
        max_tokens = self.server.profile.default_max_tokens
        if "max_tokens" in inputs:
            max_tokens = self._int_input(request, inputs["max_tokens"])
        if not 1 <= max_tokens <= self.server.profile.max_output_tokens:
            raise _BadRequest(
                f"max_tokens: must be 1..{self.server.profile.max_output_tokens}, got {max_tokens}"
            )
        return prompt, max_tokens

    @staticmethod
    def _text_input(request: pb.ModelInferRequest, index: int) -> str:
        if index < len(request.raw_input_contents):
            raw = request.raw_input_contents[index]
            length = struct.unpack_from("<I", raw)[0] if len(raw) >= 4 else -1
            if not 0 <= length <= len(raw) - 4:
                raise _BadRequest("text_input: malformed BYTES contents")
            return raw[4 : 4 + length].decode("utf-8", "replace")
        contents = request.inputs[index].contents.bytes_contents
        if not contents:
            raise _BadRequest("text_input: no contents")
        return contents[0].decode("utf-8", "replace")

    @staticmethod
    def _int_input(request: pb.ModelInferRequest, index: int) -> int:
        if index < len(request.raw_input_contents):
            raw = request.raw_input_contents[index]
            if len(raw) != 4:
                raise _BadRequest("max_tokens: expected one INT32")
            return struct.unpack("<i", raw)[0]
        contents = request.inputs[index].contents.int_contents
        if not contents:
            raise _BadRequest("max_tokens: no contents")
        return contents[0]

    def _token_response(
        self, request: pb.ModelInferRequest, text: str
    ) -> pb.ModelStreamInferResponse:
        tensors = [("text_output", text), ("instance_id", self.server.instance_id)]
        response = pb.ModelInferResponse(
            model_name=self.server.model,
            model_version="1",
            id=request.id,
            outputs=[
                pb.ModelInferResponse.InferOutputTensor(name=name, datatype="BYTES", shape=[1])
                for name, _ in tensors
            ],
            raw_output_contents=[_bytes_element(value) for _, value in tensors],
        )
        response.parameters[EMULATED_PARAMETER].bool_param = True
        return pb.ModelStreamInferResponse(infer_response=response)


async def start_grpc_face(server: EmulatedServer) -> tuple[grpc.aio.Server, int]:
    """Serve ``server`` over gRPC on a free 127.0.0.1 port; the started server and its port."""
    grpc_server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(GrpcFace(server), grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    return grpc_server, port
