"""Does one replica of a model fit the device memory of the cores it is given?

A replica of tensor-parallel degree ``tp`` owns ``tp`` NeuronCores and their HBM
(16 GiB per core on inf2/trn1). It must hold:

- the weights: parameters x bytes per dtype (int8 is weight-only quantisation);
- the KV cache of a full continuous batch: 2 (K and V) x layers x KV heads x head
  dim x 2 bytes (bf16 cache) x max sequence length x max batch size;
- runtime headroom: 1 GiB per core for the Neuron runtime's scratchpad,
  collectives buffers and activations.

Encoder-only classifiers keep no KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from inferfleet.constructs.neuron_instances import NeuronInstanceType

if TYPE_CHECKING:
    from inferfleet.constructs.props.model_service import NeuronPool
    from inferfleet.infra.spec import ServiceSpec

GIB = 1024**3
BYTES_PER_PARAMETER = {"bf16": 2, "fp16": 2, "int8": 1}
KV_CACHE_BYTES_PER_VALUE = 2
RUNTIME_HEADROOM_GIB_PER_CORE = 1.0

# Llama-family decoder shapes by size, used when a spec gives no architecture.
# (upper bound in billions of parameters, layers, KV heads, head dim)
_DECODER_SHAPES = (
    (4, 28, 8, 128),
    (10, 32, 8, 128),
    (16, 40, 8, 128),
    (40, 64, 8, 128),
    (90, 80, 8, 128),
    (float("inf"), 126, 8, 128),
)


@dataclass(frozen=True)
class DecoderShape:
    layers: int
    kv_heads: int
    head_dim: int


def default_decoder_shape(parameters_b: float) -> DecoderShape:
    for bound, layers, kv_heads, head_dim in _DECODER_SHAPES:
        if parameters_b <= bound:
            return DecoderShape(layers, kv_heads, head_dim)
    raise AssertionError("the last bound is infinite")


@dataclass(frozen=True)
class ReplicaMemory:
    """GiB one replica needs, by part."""

    weights_gib: float
    kv_cache_gib: float
    runtime_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.runtime_gib


def weights_gib(parameters_b: float, weights_dtype: str) -> float:
    return parameters_b * 1e9 * BYTES_PER_PARAMETER[weights_dtype] / GIB


def kv_cache_gib(
    shape: DecoderShape | None, max_sequence_length: int, max_batch_size: int
) -> float:
    if shape is None:
        return 0.0
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * KV_CACHE_BYTES_PER_VALUE
    return per_token * max_sequence_length * max_batch_size / GIB


def replica_memory(
    *,
    parameters_b: float,
    weights_dtype: str,
    shape: DecoderShape | None,
    max_sequence_length: int,
    max_batch_size: int,
    tensor_parallel: int,
) -> ReplicaMemory:
    return ReplicaMemory(
        weights_gib=weights_gib(parameters_b, weights_dtype),
        kv_cache_gib=kv_cache_gib(shape, max_sequence_length, max_batch_size),
        runtime_gib=RUNTIME_HEADROOM_GIB_PER_CORE * tensor_parallel,
    )


def available_gib(instance: NeuronInstanceType, tensor_parallel: int) -> float:
    return instance.core_memory_gib * tensor_parallel


def decoder_shape(service: ServiceSpec) -> DecoderShape | None:
    """The KV-cache shape of an LLM service: the spec's, else the default for its size."""
    if service.kind != "llm":
        return None
    model = service.model
    default = default_decoder_shape(model.parameters_b)
    return DecoderShape(
        layers=model.layers or default.layers,
        kv_heads=model.kv_heads or default.kv_heads,
        head_dim=model.head_dim or default.head_dim,
    )


def replica_memory_of(service: ServiceSpec, tensor_parallel: int) -> ReplicaMemory:
    model = service.model
    return replica_memory(
        parameters_b=model.parameters_b,
        weights_dtype=model.weights_dtype,
        shape=decoder_shape(service),
        max_sequence_length=model.max_sequence_length,
        max_batch_size=model.max_batch_size,
        tensor_parallel=tensor_parallel,
    )


def does_not_fit(service: ServiceSpec, pool: NeuronPool, instance: NeuronInstanceType) -> str:
    """Why a replica of ``service`` at the pool's degree overflows its cores, and the fix."""
    need = replica_memory_of(service, pool.tensor_parallel)
    have = available_gib(instance, pool.tensor_parallel)
    fitting = [
        degree
        for degree in instance.tensor_parallel_degrees()
        if replica_memory_of(service, degree).total_gib <= available_gib(instance, degree)
    ]
    model = service.model
    fix = (
        f"raise tensor_parallel to {fitting[0]} or more"
        if fitting
        else f"no tensor_parallel degree fits on {instance.name}; use a larger instance type"
    )
    if model.weights_dtype != "int8":
        fix += ", use weights_dtype int8"
    if service.kind == "llm":
        fix += ", or lower model.max_batch_size / model.max_sequence_length"
    return (
        f"a replica needs {need.total_gib:.1f} GiB of device memory (weights "
        f"{need.weights_gib:.1f} GiB {model.weights_dtype}, KV cache "
        f"{need.kv_cache_gib:.1f} GiB for {model.max_batch_size} x "
        f"{model.max_sequence_length} tokens, runtime "
        f"{need.runtime_gib:.1f} GiB) but tensor_parallel {pool.tensor_parallel} on "
        f"{instance.name} gives {have:.0f} GiB ({pool.tensor_parallel} NeuronCores x "
        f"{instance.core_memory_gib:.0f} GiB); {fix}"
    )
