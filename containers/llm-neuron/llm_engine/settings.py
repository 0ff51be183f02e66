"""Engine settings: the task's serving contract plus what only this image decides.

The tensor-parallel degree, replicas, batching and precision come from the serving
contract (``serving_env``, shared with the constructs that write the task's environment):
one set of names, defaults and parsing. Only the sizing differs between instance types of
one fleet (``INFERFLEET_TP_DEGREE`` 24 on inf2.48xlarge, 32 on trn1.32xlarge, and the
replicas and cores that go with it). The rest is this image's own: which engine, where the
model folder is, and the instance id each answer carries. Each is read from
``INFERFLEET_<NAME>``; an empty value counts as unset.
"""

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from serving_env import PREFIX, LlmEngineEnv, Quantization, ServingEnvError, cores_problem

ENV_PREFIX = PREFIX
_CONTRACT = LlmEngineEnv()


class EngineSettings(BaseModel):
    engine: Literal["vllm-nxdi", "vllm-tnx", "cpu"] = Field(
        default="vllm-nxdi",
        description="vLLM over NxD Inference, vLLM over transformers-neuronx (legacy), or "
        "transformers on CPU (tests).",
    )
    model: str = Field(description="Local model directory or Hugging Face model id.")
    tp_degree: int = Field(default=_CONTRACT.tp_degree, ge=1)
    replicas: int = Field(default=_CONTRACT.replicas, ge=1)
    max_seq_len: int = Field(default=_CONTRACT.max_seq_len, ge=16)
    max_num_seqs: int = Field(default=_CONTRACT.max_num_seqs, ge=1)
    quantization: Quantization = _CONTRACT.quantization
    dtype: Literal["bfloat16", "float16", "float32"] = _CONTRACT.dtype
    compile_cache_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix holding compiled Neuron graphs, shared by all instances.",
    )
    neuron_cores: int | None = Field(
        default=None, ge=1, description="NeuronCores of the instance, when the task states them."
    )
    instance_id: str = Field(default_factory=socket.gethostname)
    default_max_tokens: int = Field(default=256, ge=1)

    @model_validator(mode="after")
    def _replicas_fit_the_cores(self) -> "EngineSettings":
        problem = self.neuron_cores and cores_problem(
            self.replicas, self.tp_degree, self.neuron_cores
        )
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "EngineSettings":
        """The contract's fields through the contract's own reader, then the image's."""
        try:
            contract = asdict(LlmEngineEnv.from_env(environ))
        except ServingEnvError as error:
            raise ValueError(str(error)) from None
        image_own = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if name not in contract and environ.get(ENV_PREFIX + name.upper())
        }
        return cls.model_validate({**contract, **image_own})
