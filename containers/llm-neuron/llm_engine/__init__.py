"""Token-streaming LLM engines behind one interface: vLLM on Neuron (over NxD Inference or
transformers-neuronx), transformers on CPU."""

from llm_engine.base import GenerationRequest, StreamingEngine
from llm_engine.settings import EngineSettings


def create_engine(settings: EngineSettings) -> StreamingEngine:
    """Build the engine the settings name; each import stays lazy so one image needs one stack."""
    if settings.engine != "cpu":
        from llm_engine.neuron import VllmNeuronEngine

        return VllmNeuronEngine(settings)
    from llm_engine.cpu import TransformersCpuEngine

    return TransformersCpuEngine(settings)


__all__ = ["EngineSettings", "GenerationRequest", "StreamingEngine", "create_engine"]
