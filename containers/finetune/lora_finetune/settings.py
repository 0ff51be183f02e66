"""Fine-tune settings from SageMaker hyperparameters (all strings) and the container environment.

The base model is the image's (``INFERFLEET_BASE_MODEL``), never a hyperparameter: a user's
manifest sets how to train, not what to train on or which code to run.
"""

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

BASE_MODEL_ENV = "INFERFLEET_BASE_MODEL"


class FineTuneSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    epochs: int = Field(default=1, ge=1)
    max_steps: int = Field(default=0, ge=0, description="Stop after this many steps; 0: no cap.")
    lr: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=4, ge=1)
    max_seq_len: int = Field(default=512, ge=8)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    seed: int = 0

    @classmethod
    def from_hyperparameters(cls, values: Mapping[str, str]) -> "FineTuneSettings":
        return cls.model_validate(dict(values))


def base_model() -> str:
    """Folder (or model id) of the base causal LM the adapter applies to."""
    base = os.environ.get(BASE_MODEL_ENV)
    if not base:
        raise RuntimeError(f"{BASE_MODEL_ENV} is not set: the image names its base model")
    return base
