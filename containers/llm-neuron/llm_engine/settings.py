"""Engine settings read from the container environment.

Each field ``name`` is read from ``INFERFLEET_<NAME>``; an empty value counts as
unset, so a task definition can list every variable. Only the sizing differs
between instance types of one fleet (``INFERFLEET_TP_DEGREE`` 24 on inf2.48xlarge,
32 on trn1.32xlarge, and the replicas and cores that go with it); everything else
is per model. ``INFERFLEET_MODEL_ARTIFACT`` and ``INFERFLEET_SERVICE_KIND`` are
read by ``start.sh`` and ``fetch_model.sh``; ``INFERFLEET_INSTANCE_TYPE`` by nothing.
"""

import os
import socket
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

ENV_PREFIX = "INFERFLEET_"
# Short names as fleet specs write them, mapped to the names vLLM takes.
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class EngineSettings(BaseModel):
    engine: Literal["neuron", "cpu"] = "neuron"
    model: str = Field(description="Local model directory or Hugging Face model id.")
    tp_degree: int = Field(default=24, ge=1, description="NeuronCores one model copy spans.")
    max_seq_len: int = Field(default=4096, ge=16, description="Prompt plus generated tokens.")
    max_num_seqs: int = Field(default=32, ge=1, description="Sequences batched continuously.")
    quantization: Literal["int8", "none"] = "int8"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    compile_cache_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix holding compiled Neuron graphs, shared by all instances.",
    )
    replicas: int = Field(default=1, ge=1, description="Model copies on this instance.")
    neuron_cores: int | None = Field(
        default=None, ge=1, description="NeuronCores of the instance, when the task states them."
    )
    instance_id: str = Field(default_factory=socket.gethostname)
    default_max_tokens: int = Field(default=256, ge=1)

    @field_validator("dtype", mode="before")
    @classmethod
    def _full_dtype_name(cls, value: object) -> object:
        return DTYPE_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _replicas_fit_the_cores(self) -> "EngineSettings":
        if self.neuron_cores is not None and self.replicas * self.tp_degree > self.neuron_cores:
            raise ValueError(
                f"INFERFLEET_REPLICAS={self.replicas} copies of INFERFLEET_TP_DEGREE="
                f"{self.tp_degree} cores need {self.replicas * self.tp_degree} NeuronCores, but"
                f" INFERFLEET_NEURON_CORES={self.neuron_cores}; lower one of the first two"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "EngineSettings":
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if environ.get(ENV_PREFIX + name.upper())
        }
        return cls.model_validate(values)
