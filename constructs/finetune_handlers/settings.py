"""Settings of the handlers: the one mapping between each setting and its environment variable.

The construct builds these objects from its props and sets ``to_env()`` on the functions; the
handlers read them back with ``from_env()``. Defaults belong to the construct's props, so a
variable the construct did not set is an error here, not a second default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self


class SettingsError(RuntimeError):
    """A handler's environment lacks a setting or holds one it cannot read."""


def env(name: str) -> Any:
    return field(metadata={"env": name})


class Hosting(StrEnum):
    """How the endpoint serves the published models."""

    MULTI_MODEL = "multi_model"  # whole models on a multi-model endpoint, by TargetModel
    INFERENCE_COMPONENTS = "inference_components"  # one adapter component per user model


def _parse(kind: str, name: str, raw: str) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw not in ("true", "false"):
                raise ValueError("expected true or false")
            return raw == "true"
        if kind == "Hosting":
            return Hosting(raw)
    except ValueError as error:
        raise SettingsError(f"environment variable {name}={raw!r}: {error}") from None
    return raw


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class EnvSettings:
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        values = {}
        for setting in fields(cls):  # type: ignore[arg-type]
            name = setting.metadata["env"]
            if name not in environ:
                raise SettingsError(f"environment variable {name} is not set")
            values[setting.name] = _parse(str(setting.type), name, environ[name])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {
            setting.metadata["env"]: _format(getattr(self, setting.name))
            for setting in fields(self)  # type: ignore[arg-type]
        }


@dataclass(frozen=True)
class Tables(EnvSettings):
    jobs: str = env("JOBS_TABLE")
    models: str = env("MODELS_TABLE")


@dataclass(frozen=True)
class TrainingLimits(EnvSettings):
    """Bounds on what a user's manifest may ask of a training job."""

    max_epochs: int = env("MAX_EPOCHS")
    max_seq_len: int = env("MAX_SEQ_LEN")
    max_batch_size: int = env("MAX_BATCH_SIZE")


@dataclass(frozen=True)
class RegisterSettings(EnvSettings):
    data_bucket: str = env("DATA_BUCKET")
    idempotency_table: str = env("IDEMPOTENCY_TABLE")


@dataclass(frozen=True)
class LauncherSettings(EnvSettings):
    data_bucket: str = env("DATA_BUCKET")
    training_job_prefix: str = env("TRAINING_JOB_PREFIX")
    training_image: str = env("TRAINING_IMAGE")
    single_role_arn: str = env("SINGLE_TRAINING_ROLE_ARN")
    batch_role_arn: str = env("BATCH_TRAINING_ROLE_ARN")
    instance_type: str = env("TRAINING_INSTANCE_TYPE")
    volume_size_gb: int = env("TRAINING_VOLUME_GB")
    max_runtime_s: int = env("TRAINING_MAX_RUNTIME_S")
    network_isolation: bool = env("TRAINING_NETWORK_ISOLATION")
    warm_pool_keep_alive_s: int = env("WARM_POOL_KEEP_ALIVE_S")
    max_running_jobs: int = env("MAX_RUNNING_JOBS")
    create_calls_per_second: float = env("CREATE_CALLS_PER_SECOND")
    max_attempts: int = env("MAX_ATTEMPTS")
    lease_s: int = env("LAUNCH_LEASE_S")
    batch_threshold: int = env("BATCH_THRESHOLD")
    batch_tasks: int = env("BATCH_TASKS")
    batch_instances: int = env("BATCH_INSTANCES")
    hosting: Hosting = env("MODEL_HOSTING")  # noqa: RUF009 - env() is a dataclasses.field


@dataclass(frozen=True)
class PublisherSettings(EnvSettings):
    data_bucket: str = env("DATA_BUCKET")
    training_job_prefix: str = env("TRAINING_JOB_PREFIX")
    model_bucket: str = env("MODEL_BUCKET")
    model_prefix: str = env("MODEL_PREFIX")
    event_bus: str = env("EVENT_BUS")
    event_source: str = env("EVENT_SOURCE")
    reconcile_after_s: int = env("RECONCILE_AFTER_S")
    hosting: Hosting = env("MODEL_HOSTING")  # noqa: RUF009 - env() is a dataclasses.field
    # Inference-component hosting only ('' otherwise): where adapters go, on which base.
    endpoint_name: str = env("ENDPOINT_NAME")
    base_component_name: str = env("BASE_INFERENCE_COMPONENT")
