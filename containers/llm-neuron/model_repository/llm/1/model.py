"""Triton Python backend glue: requests in, one response per token out.

The engine logic lives in ``llm_engine`` at the root of the image's build
context, three levels above this file.
"""

import asyncio
import json
import os
import sys
import threading
import uuid
from contextlib import aclosing
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from llm_engine import EngineSettings, GenerationRequest, create_engine
from llm_engine.replicas import replica_cores, replica_index
from llm_engine.timing import TokenTimer

LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self._settings = EngineSettings.from_env()
        replica = replica_index(args["model_instance_name"])
        if self._settings.replicas > 1:
            # This instance is its own process: the runtime it starts sees only these cores.
            cores = replica_cores(
                os.environ.get("NEURON_RT_VISIBLE_CORES"), replica, self._settings.tp_degree
            )
            os.environ["NEURON_RT_VISIBLE_CORES"] = cores
            pb_utils.Logger.log_info(
                f"llm replica {replica} of {self._settings.replicas} on NeuronCores {cores}"
            )
        self._engine = create_engine(self._settings)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._loop_thread.start()
        labels = {
            "model": args["model_name"],
            "instance_id": self._settings.instance_id,
            "replica": str(replica),
        }
        self._ttft_family = pb_utils.MetricFamily(
            name="inferfleet_time_to_first_token_seconds",
            description="Time from request arrival in the model to its first token",
            kind=pb_utils.MetricFamily.HISTOGRAM,
        )
        self._itl_family = pb_utils.MetricFamily(
            name="inferfleet_inter_token_latency_seconds",
            description="Time between consecutive tokens of one stream",
            kind=pb_utils.MetricFamily.HISTOGRAM,
        )
        self._ttft = self._ttft_family.Metric(labels=labels, buckets=LATENCY_BUCKETS)
        self._itl = self._itl_family.Metric(labels=labels, buckets=LATENCY_BUCKETS)

    def execute(self, requests: list) -> None:
        for request in requests:
            asyncio.run_coroutine_threadsafe(self._respond(request), self._loop)

    def finalize(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=30)
        self._engine.close()

    async def _respond(self, request) -> None:
        sender = request.get_response_sender()
        timer = TokenTimer()
        try:
            generation = self._parse(request)
            streaming = _optional_scalar(request, "stream", default=True)
            pieces: list[str] = []
            async with aclosing(self._engine.stream(generation)) as stream:
                async for piece in stream:
                    gap = timer.mark()
                    (self._ttft if timer.tokens == 1 else self._itl).observe(gap)
                    if sender.is_cancelled():
                        break
                    if streaming:
                        sender.send(self._response(piece))
                    else:
                        pieces.append(piece)
            if streaming:
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            else:
                sender.send(
                    self._response("".join(pieces)),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )
        except Exception as error:  # every failure must reach the client
            sender.send(
                pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))),
                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
            )

    def _parse(self, request) -> GenerationRequest:
        text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
        prompt = text.decode() if isinstance(text, bytes) else str(text)
        max_tokens = int(
            _optional_scalar(request, "max_tokens", default=self._settings.default_max_tokens)
        )
        if max_tokens < 1:
            raise ValueError(f"max_tokens: must be at least 1, got {max_tokens}")
        # Keys of a generate request that name no input arrive as request parameters.
        parameters = json.loads(request.parameters() or "{}")
        return GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt=prompt,
            max_tokens=max_tokens,
            ignore_eos=bool(parameters.get("ignore_eos", False)),
        )

    def _response(self, text: str):
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_)),
                pb_utils.Tensor(
                    "instance_id",
                    np.array([self._settings.instance_id.encode()], dtype=np.object_),
                ),
            ]
        )


def _optional_scalar(request, name: str, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0].item()
