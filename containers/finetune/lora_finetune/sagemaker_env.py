"""The SageMaker training-container contract: where inputs, config and outputs live.

SageMaker mounts everything under ``/opt/ml``; ``INFERFLEET_SAGEMAKER_ROOT``
moves that root for local runs and tests.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/opt/ml"


@dataclass(frozen=True)
class SageMakerPaths:
    root: Path

    @classmethod
    def from_env(cls) -> "SageMakerPaths":
        return cls(Path(os.environ.get("INFERFLEET_SAGEMAKER_ROOT", DEFAULT_ROOT)))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.root / "input" / "config" / "resourceconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


@dataclass(frozen=True)
class HostPlacement:
    """This container's position among the job's instances."""

    index: int
    count: int


def read_hyperparameters(paths: SageMakerPaths) -> dict[str, str]:
    if not paths.hyperparameters.exists():
        return {}
    # SageMaker writes every value as a string.
    return {key: str(value) for key, value in json.loads(paths.hyperparameters.read_text()).items()}


def host_placement(paths: SageMakerPaths) -> HostPlacement:
    """Index of ``current_host`` in the sorted ``hosts`` of resourceconfig.json."""
    if not paths.resource_config.exists():
        return HostPlacement(index=0, count=1)
    config = json.loads(paths.resource_config.read_text())
    hosts = sorted(config["hosts"])
    return HostPlacement(index=hosts.index(config["current_host"]), count=len(hosts))
