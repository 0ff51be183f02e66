"""The serving-environment contract: what a task tells a serving image, and how it reads it.

The constructs write the environment of every model container with :meth:`ServingEnv.to_env`;
the images read it back with :meth:`ServingEnv.from_env` (this file is copied into each
serving image as ``serving_env.py``). Both sides share these fields and their defaults, so a
variable cannot be spelled, defaulted or parsed two ways. A classifier is sent only what a
classifier reads: the LLM engine's sizing goes with ``kind="llm"`` alone.

Standard library only: the images carry no inferfleet package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

PREFIX = "INFERFLEET_"
# Read by the Neuron runtime itself: the cores a process may use, "first-last".
NEURON_VISIBLE_CORES = "NEURON_RT_VISIBLE_CORES"

# Triton's ports in every serving image (serve.sh starts it on them); the load balancer
# reaches the one of the service's protocol.
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
ServingProtocol = Literal["http", "grpc"]
SERVING_PROTOCOLS: tuple[ServingProtocol, ...] = ("http", "grpc")
TRITON_PORTS: dict[ServingProtocol, int] = {"http": TRITON_HTTP_PORT, "grpc": TRITON_GRPC_PORT}

ServiceKind = Literal["llm", "classifier"]
SERVICE_KINDS: tuple[ServiceKind, ...] = ("llm", "classifier")
Quantization = Literal["int8", "none"]
QUANTIZATIONS: tuple[Quantization, ...] = ("int8", "none")
EngineDtype = Literal["bfloat16", "float16", "float32"]
ENGINE_DTYPES: tuple[EngineDtype, ...] = ("bfloat16", "float16", "float32")


class ServingEnvError(ValueError):
    """A variable of the contract is missing or malformed; the message names it."""


@dataclass(frozen=True)
class LlmEngineEnv:
    """How one LLM replica is sized and batched; only the TP degree differs between pools.

    :param tp_degree: NeuronCores one model copy spans. Default: 1.
    :param replicas: model copies on the instance, each on cores of its own. Default: 1.
    :param max_seq_len: prompt plus generated tokens of one sequence. Default: 4096.
    :param max_num_seqs: sequences one replica decodes at once (continuous batching).
        Default: 8.
    :param quantization: ``int8`` weight-only quantisation or ``none``. Default: none.
    :param dtype: compute dtype of the engine. Default: bfloat16.
    """

    tp_degree: int = 1
    replicas: int = 1
    max_seq_len: int = 4096
    max_num_seqs: int = 8
    quantization: Quantization = "none"
    dtype: EngineDtype = "bfloat16"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LlmEngineEnv:
        """The engine's sizing as a task set it; unset variables keep the defaults above."""
        return cls(
            **{
                item.name: value
                for item in fields(cls)
                if (value := _read(environ, item.name, _TYPES[item.name])) is not None
            }
        )

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ServingEnvError(
                f"{_name('quantization')}={self.quantization}: use one of "
                + ", ".join(QUANTIZATIONS)
            )
        if self.dtype not in ENGINE_DTYPES:
            raise ServingEnvError(
                f"{_name('dtype')}={self.dtype}: use one of {', '.join(ENGINE_DTYPES)}"
            )


@dataclass(frozen=True)
class ServingEnv:
    """Everything a serving image learns from its task.

    :param kind: ``llm`` or ``classifier``; an image refuses the other kind.
    :param instance_type: the Neuron instance type the task runs on.
    :param neuron_cores: NeuronCores of that instance; the task may use them all.
    :param model_artifact: ``s3://bucket/prefix/`` fetched at start. Default: none (baked in).
    :param compile_cache_url: ``s3://`` prefix shared by the service's tasks for compiled
        graphs. Default: none.
    :param llm: the LLM engine's sizing; set for ``kind="llm"`` only.
    """

    kind: ServiceKind
    instance_type: str
    neuron_cores: int
    model_artifact: str | None = None
    compile_cache_url: str | None = None
    llm: LlmEngineEnv | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in SERVICE_KINDS:
            raise ServingEnvError(f"{PREFIX}SERVICE_KIND={self.kind}: use one of llm, classifier")
        if (self.llm is not None) != (self.kind == "llm"):
            raise ServingEnvError("the LLM engine sizing goes with kind llm, and only with it")
        problem = self.llm and cores_problem(
            self.llm.replicas, self.llm.tp_degree, self.neuron_cores
        )
        if problem:
            raise ServingEnvError(problem)

    def to_env(self) -> dict[str, str]:
        env = {
            f"{PREFIX}SERVICE_KIND": self.kind,
            f"{PREFIX}INSTANCE_TYPE": self.instance_type,
            f"{PREFIX}NEURON_CORES": str(self.neuron_cores),
            f"{PREFIX}MODEL_ARTIFACT": self.model_artifact or "",
            f"{PREFIX}COMPILE_CACHE_URL": self.compile_cache_url or "",
            NEURON_VISIBLE_CORES: f"0-{self.neuron_cores - 1}",
        }
        if self.llm is not None:
            env |= {
                _name(item.name): str(getattr(self.llm, item.name)) for item in fields(self.llm)
            }
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServingEnv:
        """The contract as a task set it; an empty variable counts as unset."""
        kind = _read(environ, "kind", str, required=True)
        return cls(
            kind=kind,  # type: ignore[arg-type]
            instance_type=_read(environ, "instance_type", str) or "unknown",
            neuron_cores=_read(environ, "neuron_cores", int) or 1,
            model_artifact=_read(environ, "model_artifact", str),
            compile_cache_url=_read(environ, "compile_cache_url", str),
            llm=LlmEngineEnv.from_env(environ) if kind == "llm" else None,
        )


def cores_problem(replicas: int, tp_degree: int, neuron_cores: int) -> str | None:
    """Why ``replicas`` copies of ``tp_degree`` cores do not fit the instance, if they don't."""
    if replicas * tp_degree <= neuron_cores:
        return None
    return (
        f"{_name('replicas')}={replicas} copies of {_name('tp_degree')}={tp_degree} cores "
        f"need {replicas * tp_degree} NeuronCores, but {_name('neuron_cores')}={neuron_cores}; "
        "lower one of the first two"
    )


_TYPES = {"tp_degree": int, "replicas": int, "max_seq_len": int, "max_num_seqs": int,
          "quantization": str, "dtype": str}  # fmt: skip
_ENV_NAMES = {"kind": "SERVICE_KIND"}


def _name(field_name: str) -> str:
    return PREFIX + _ENV_NAMES.get(field_name, field_name.upper())


def _read(environ: Mapping[str, str], field_name: str, kind: type, *, required: bool = False):
    name = _name(field_name)
    text = environ.get(name, "").strip()
    if not text:
        if required:
            raise ServingEnvError(f"{name} is not set; the task definition sets it")
        return None
    if kind is int:
        try:
            value = int(text)
        except ValueError:
            raise ServingEnvError(f"{name}={text!r} is not a whole number") from None
        if value < 1:
            raise ServingEnvError(f"{name}={text} must be at least 1")
        return value
    return text
