"""Engine settings read from the container environment.

Each field ``name`` is read from ``INFERFLEET_<NAME>``; an empty value counts as
unset, so a task definition can list every variable. Only ``INFERFLEET_TP_DEGREE``
differs between instance types of one fleet (24 on inf2.48xlarge, 32 on
trn1.32xlarge); everything else is per model. Variables that name no field
(``INFERFLEET_MODEL_ARTIFACT``, read by ``fetch_model.sh``, and the task's sizing
facts) are left to the scripts that use them.
"""

import os
import socket
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, field_validator

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
    instance_id: str = Field(default_factory=socket.gethostname)
    default_max_tokens: int = Field(default=256, ge=1)

    @field_validator("dtype", mode="before")
    @classmethod
    def _full_dtype_name(cls, value: object) -> object:
        return DTYPE_ALIASES.get(value, value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "EngineSettings":
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if environ.get(ENV_PREFIX + name.upper())
        }
        return cls.model_validate(values)
