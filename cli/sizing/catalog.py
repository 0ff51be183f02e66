"""Shipped server profiles: from public Neuron figures, or a roofline estimate where none exists.

``data/neuron_figures.yaml`` holds each public figure with its source and date, and
each accelerator's memory bandwidth and compute. From them:

- :func:`published_profile` derives a :class:`ServerProfile` from a figure. An LLM
  figure gives the time to first token at one request, the single-stream and the
  saturated tokens/s over a known workload; a classifier figure a batch's latency.
- :func:`efficiencies` measures, per accelerator, how far the published LLM figures
  sit from the roofline: decode weight reads and KV-cache reads against HBM
  bandwidth, prefill FLOPs against peak compute.
- :func:`roofline_profile` estimates any other model, dtype, instance or TP degree:
  decode step = weight bytes / (bandwidth x efficiency) + per sequence KV bytes at
  the context / (bandwidth x efficiency); prefill = 2 x parameters FLOPs per token /
  (compute x efficiency), with the efficiency factors above.

:func:`profile_for` picks the published profile when one matches, else the roofline.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import yaml

from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.constructs.neuron_instances import neuron_instance_type
from inferfleet.infra import capacity

Kind = Literal["llm", "classifier"]
GB = 1e9


@dataclass(frozen=True)
class Accelerator:
    name: str
    hbm_bytes_per_s: float
    bf16_flops_per_s: float
    source: str
    date: str


@dataclass(frozen=True)
class PublishedFigure:
    id: str
    kind: Kind
    model: str
    parameters_b: float
    weights_dtype: str
    instance_type: str
    tensor_parallel: int
    slots: int
    prompt_tokens: int
    output_tokens: int
    figures: dict[str, float]
    source: str
    date: str

    @property
    def context_tokens(self) -> float:
        """Mean tokens in a sequence's KV cache over its decode steps."""
        return self.prompt_tokens + self.output_tokens / 2


@dataclass(frozen=True)
class Efficiency:
    """Fractions of the roofline the published figures reach."""

    decode_weights: float
    decode_kv: float
    prefill: float
    basis: str


@functools.cache
def accelerators() -> dict[str, Accelerator]:
    return {
        name: Accelerator(name=name, **spec)
        for name, spec in _figures_file()["accelerators"].items()
    }


@functools.cache
def published_figures() -> tuple[PublishedFigure, ...]:
    figures = []
    for entry in _figures_file()["published"]:
        workload = entry.pop("workload")
        figures.append(PublishedFigure(**entry, **workload))
    return tuple(figures)


def _figures_file() -> dict:
    text = resources.files("inferfleet.cli.sizing").joinpath("data/neuron_figures.yaml").read_text()
    return yaml.safe_load(text)


def published_profile(figure: PublishedFigure) -> ServerProfile:
    """The profile whose simulation gives the figure's own numbers back (see the tests)."""
    numbers = figure.figures
    identity = {
        "model_name": figure.model,
        "instance_type": figure.instance_type,
        "tensor_parallel": figure.tensor_parallel,
        "weights_dtype": figure.weights_dtype,
        "source": f"published {figure.date}: {figure.source}",
    }
    if figure.kind == "classifier":
        # Compiled for a fixed batch and sequence length: a batch costs the same however full.
        latency = numbers["batch_latency_s"]
        return ServerProfile(
            batching="static",
            slots=figure.slots,
            prefill_base_s=latency,
            prefill_per_token_s=0.0,
            decode_base_s=latency,
            decode_per_sequence_s=0.0,
            **identity,
        )
    ttft, prompt, output, slots = (
        numbers["ttft_s"],
        figure.prompt_tokens,
        figure.output_tokens,
        figure.slots,
    )
    # One request alone: TTFT, then output - 1 decode steps of a batch of one.
    alone = (output / numbers["single_stream_tokens_per_s"] - ttft) / (output - 1)
    # Saturated: each request joins alone, its prefill stalls the batch, and every slot
    # decodes output - 1 steps; per slots requests that is slots x output tokens.
    full = (slots * output / numbers["saturated_tokens_per_s"] - slots * ttft) / (output - 1)
    per_sequence = max(0.0, (full - alone) / (slots - 1)) if slots > 1 else 0.0
    return ServerProfile(
        batching="continuous",
        slots=slots,
        # A prefill step reads the weights once, as a decode step does.
        prefill_base_s=alone,
        prefill_per_token_s=(ttft - alone) / prompt,
        decode_base_s=alone - per_sequence,
        decode_per_sequence_s=per_sequence,
        **identity,
    )


@dataclass(frozen=True)
class Replica:
    """What one replica of a model has to work with, and what it has to move."""

    parameters_b: float
    weights_dtype: str
    instance_type: str
    tensor_parallel: int
    shape: capacity.DecoderShape | None

    @property
    def accelerator(self) -> Accelerator:
        return accelerators()[neuron_instance_type(self.instance_type).accelerator]

    @property
    def chips(self) -> float:
        return self.tensor_parallel / neuron_instance_type(self.instance_type).cores_per_chip

    @property
    def bandwidth(self) -> float:
        return self.chips * self.accelerator.hbm_bytes_per_s

    @property
    def flops(self) -> float:
        return self.chips * self.accelerator.bf16_flops_per_s

    @property
    def weight_bytes(self) -> float:
        return self.parameters_b * GB * capacity.BYTES_PER_PARAMETER[self.weights_dtype]

    def kv_bytes(self, context_tokens: float) -> float:
        if self.shape is None:
            return 0.0
        per_token = (
            2
            * self.shape.layers
            * self.shape.kv_heads
            * self.shape.head_dim
            * capacity.KV_CACHE_BYTES_PER_VALUE
        )
        return per_token * context_tokens

    @property
    def prefill_flops_per_token(self) -> float:
        return 2 * self.parameters_b * GB


def _replica(figure: PublishedFigure) -> Replica:
    shape = capacity.default_decoder_shape(figure.parameters_b) if figure.kind == "llm" else None
    return Replica(
        figure.parameters_b,
        figure.weights_dtype,
        figure.instance_type,
        figure.tensor_parallel,
        shape,
    )


def efficiencies(accelerator: str) -> Efficiency:
    """Roofline fractions of the accelerator's published LLM figures at their widest batch
    (the one that measures the per-sequence cost best); an accelerator without a figure
    takes the mean over the other accelerators' widest figures, and says so."""
    llm = [figure for figure in published_figures() if figure.kind == "llm"]
    widest: dict[str, PublishedFigure] = {}
    for figure in llm:
        name = neuron_instance_type(figure.instance_type).accelerator
        if name not in widest or figure.slots > widest[name].slots:
            widest[name] = figure
    own = [widest[accelerator]] if accelerator in widest else []
    basis = own or list(widest.values())
    measured = []
    for figure in basis:
        profile, replica = published_profile(figure), _replica(figure)
        measured.append(
            (
                replica.weight_bytes / replica.bandwidth / profile.decode_base_s,
                replica.kv_bytes(figure.context_tokens)
                / replica.bandwidth
                / profile.decode_per_sequence_s,
                replica.prefill_flops_per_token / replica.flops / profile.prefill_per_token_s,
            )
        )
    weights, kv, prefill = (sum(values) / len(values) for values in zip(*measured, strict=True))
    where = accelerator if own else f"all accelerators (none published for {accelerator})"
    return Efficiency(weights, kv, prefill, basis=f"{len(basis)} published figure(s) on {where}")


def roofline_profile(
    replica: Replica, *, slots: int, context_tokens: float, kind: Kind = "llm"
) -> ServerProfile:
    """An estimate from bandwidth, compute and the published figures' efficiency factors."""
    accelerator = replica.accelerator
    efficiency = efficiencies(accelerator.name)
    identity = {
        "instance_type": replica.instance_type,
        "tensor_parallel": replica.tensor_parallel,
        "weights_dtype": replica.weights_dtype,
        "model_name": f"{replica.parameters_b:g}B {kind}",
    }
    if kind == "classifier":
        classifier = next(f for f in published_figures() if f.kind == "classifier")
        reference, measured = _replica(classifier), published_profile(classifier).prefill_base_s
        tokens = classifier.slots * classifier.prompt_tokens
        encoder_efficiency = reference.prefill_flops_per_token * tokens / reference.flops / measured
        batch = replica.prefill_flops_per_token * slots * context_tokens / replica.flops
        latency = batch / encoder_efficiency
        return ServerProfile(
            batching="static",
            slots=slots,
            prefill_base_s=latency,
            prefill_per_token_s=0.0,
            decode_base_s=latency,
            decode_per_sequence_s=0.0,
            source=f"roofline estimate: {classifier.id}'s encoder efficiency "
            f"{encoder_efficiency:.0%} of {accelerator.name}'s BF16 compute",
            **identity,
        )
    decode_base = replica.weight_bytes / replica.bandwidth / efficiency.decode_weights
    return ServerProfile(
        batching="continuous",
        slots=slots,
        prefill_base_s=decode_base,
        prefill_per_token_s=replica.prefill_flops_per_token / replica.flops / efficiency.prefill,
        decode_base_s=decode_base,
        decode_per_sequence_s=(
            replica.kv_bytes(context_tokens) / replica.bandwidth / efficiency.decode_kv
        ),
        source=(
            f"roofline estimate at a {context_tokens:.0f}-token context, efficiency from "
            f"{efficiency.basis}: weights {efficiency.decode_weights:.0%} and KV cache "
            f"{efficiency.decode_kv:.0%} of HBM bandwidth, prefill {efficiency.prefill:.0%} "
            "of BF16 compute"
        ),
        **identity,
    )


def profile_for(
    *,
    kind: Kind,
    parameters_b: float,
    weights_dtype: str,
    instance_type: str,
    tensor_parallel: int,
    slots: int | None,
    context_tokens: float,
    shape: capacity.DecoderShape | None = None,
) -> ServerProfile:
    """The published profile of this model, dtype width, instance and TP if there is one
    (its slots set to ``slots``), else the roofline estimate. ``slots`` None keeps the
    figure's batch (a classifier runs the batch it was compiled for)."""
    width = capacity.BYTES_PER_PARAMETER[weights_dtype]
    matches = [
        figure
        for figure in published_figures()
        if figure.kind == kind
        and figure.parameters_b == parameters_b
        and capacity.BYTES_PER_PARAMETER[figure.weights_dtype] == width
        and figure.instance_type == instance_type
        and figure.tensor_parallel == tensor_parallel
    ]
    if matches:
        figure = min(matches, key=lambda f: abs(f.slots - (slots or f.slots)))
        profile = published_profile(figure)
        if slots is None or figure.slots == slots:
            return profile
        return profile.model_copy(
            update={
                "slots": slots,
                "source": f"{profile.source} (published at {figure.slots} "
                f"slots, decode cost extended linearly to {slots})",
            }
        )
    if slots is None:
        slots = next(f.slots for f in published_figures() if f.kind == kind)
    if shape is None and kind == "llm":
        shape = capacity.default_decoder_shape(parameters_b)
    replica = Replica(parameters_b, weights_dtype, instance_type, tensor_parallel, shape)
    return roofline_profile(replica, slots=slots, context_tokens=context_tokens, kind=kind)
