"""vLLM on NeuronCores with continuous batching, over one of two Neuron back ends.

``vllm-nxdi`` (the default) runs vLLM over NxD Inference (``neuronx-distributed-inference``),
the library AWS develops for Inf2/Trn1/Trn2 and the one vLLM's Neuron support builds on;
``vllm-tnx`` runs it over transformers-neuronx, which reached end of support on 2025-09-16
and stays for fleets that compiled with it. Both stream through the same vLLM engine, and
only the tensor-parallel degree differs between instance types. vLLM picks the back end from
``VLLM_NEURON_FRAMEWORK``; their quantisation and bucketing settings differ and live here.
"""

import os
from collections.abc import AsyncIterator
from typing import Any

from llm_engine.base import GenerationRequest
from llm_engine.settings import EngineSettings

NEURON_FRAMEWORKS = {
    "vllm-nxdi": "neuronx-distributed-inference",
    "vllm-tnx": "transformers-neuronx",
}


def neuron_environment(settings: EngineSettings) -> dict[str, str]:
    """Variables the Neuron compiler, runtime and vLLM read before the engine starts."""
    environment = {"VLLM_NEURON_FRAMEWORK": NEURON_FRAMEWORKS[settings.engine]}
    if settings.engine == "vllm-tnx":
        # One bucket at the full length: vLLM on transformers-neuronx needs
        # block_size == max_model_len, so a single graph per phase suffices.
        environment["NEURON_CONTEXT_LENGTH_BUCKETS"] = str(settings.max_seq_len)
        environment["NEURON_TOKEN_GEN_BUCKETS"] = str(settings.max_seq_len)
        if settings.quantization == "int8":
            environment["NEURON_QUANT_DTYPE"] = "s8"
    else:
        # Traced and compiled graphs next to the weights: a restart loads, not recompiles.
        environment["NEURON_COMPILED_ARTIFACTS"] = os.path.join(
            settings.model, "neuron-compiled-artifacts"
        )
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
        # Both back ends keep a contiguous KV cache: one block of the full length per sequence.
        "block_size": settings.max_seq_len,
        "dtype": settings.dtype,
        "disable_log_requests": True,
    }
    if settings.quantization != "int8":
        return arguments
    if settings.engine == "vllm-tnx":
        arguments["quantization"] = "neuron_quant"
        arguments["override_neuron_config"] = {"cast_logits_dtype": settings.dtype}
    else:
        # NxD Inference quantises through its own config, not vLLM's --quantization; the
        # int8 checkpoint is written once next to the weights and reused.
        arguments["override_neuron_config"] = {
            "quantized": True,
            "quantization_dtype": "int8",
            "quantization_type": "per_channel_symmetric",
            "quantized_checkpoints_path": os.path.join(settings.model, "int8-checkpoint"),
        }
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
