"""vLLM on NeuronCores (transformers-neuronx underneath) with continuous batching."""

import os
from collections.abc import AsyncIterator
from typing import Any

from llm_engine.base import GenerationRequest
from llm_engine.settings import EngineSettings


def neuron_environment(settings: EngineSettings) -> dict[str, str]:
    """Variables the Neuron compiler and runtime read before the engine starts."""
    environment = {
        # One bucket at the full length: vLLM on transformers-neuronx needs
        # block_size == max_model_len, so a single graph per phase suffices.
        "NEURON_CONTEXT_LENGTH_BUCKETS": str(settings.max_seq_len),
        "NEURON_TOKEN_GEN_BUCKETS": str(settings.max_seq_len),
    }
    if settings.quantization == "int8":
        environment["NEURON_QUANT_DTYPE"] = "s8"
    if settings.compile_cache_url:
        # New instances fetch compiled graphs instead of recompiling for ~minutes.
        environment["NEURON_COMPILE_CACHE_URL"] = settings.compile_cache_url
    return environment


def engine_arguments(settings: EngineSettings) -> dict[str, Any]:
    """Keyword arguments for vllm.AsyncEngineArgs."""
    arguments: dict[str, Any] = {
        "model": settings.model,
        "device": "neuron",
        "tensor_parallel_size": settings.tp_degree,
        "max_num_seqs": settings.max_num_seqs,
        "max_model_len": settings.max_seq_len,
        "block_size": settings.max_seq_len,
        "dtype": settings.dtype,
        "disable_log_requests": True,
    }
    if settings.quantization == "int8":
        arguments["quantization"] = "neuron_quant"
        arguments["override_neuron_config"] = {"cast_logits_dtype": settings.dtype}
    return arguments


class VllmNeuronEngine:
    def __init__(self, settings: EngineSettings) -> None:
        os.environ.update(neuron_environment(settings))
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self._engine = AsyncLLMEngine.from_engine_args(
            AsyncEngineArgs(**engine_arguments(settings))
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        from vllm import SamplingParams

        parameters = SamplingParams(
            max_tokens=request.max_tokens, temperature=0.0, ignore_eos=request.ignore_eos
        )
        shown, finished = "", False
        try:
            async for output in self._engine.generate(
                request.prompt, parameters, request.request_id
            ):
                completion = output.outputs[0]
                yield completion.text[len(shown) :]
                shown, finished = completion.text, output.finished
        finally:
            if not finished:
                await self._engine.abort(request.request_id)

    def close(self) -> None:
        self._engine.shutdown_background_loop()
