"""Engine settings read from the container environment.

Only ``INFERFLEET_TP_DEGREE`` differs between instance types of one fleet
(24 on inf2.48xlarge, 32 on trn1.32xlarge); everything else is per model.
"""

import os
import socket
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field

ENV_PREFIX = "INFERFLEET_"


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "EngineSettings":
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }
        return cls.model_validate(values)
