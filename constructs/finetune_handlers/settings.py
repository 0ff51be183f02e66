"""Settings of the handlers, read from the environment the construct sets."""

import os
from dataclasses import dataclass


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class Tables:
    jobs: str
    models: str

    @classmethod
    def from_env(cls) -> "Tables":
        return cls(jobs=_env("JOBS_TABLE"), models=_env("MODELS_TABLE"))


@dataclass(frozen=True)
class LauncherSettings:
    data_bucket: str
    training_job_prefix: str
    training_image: str
    training_role_arn: str
    instance_type: str
    volume_size_gb: int
    max_runtime_s: int
    max_running_jobs: int
    create_calls_per_second: float
    max_attempts: int
    lease_s: int
    batch_threshold: int
    batch_tasks: int
    batch_instances: int

    @classmethod
    def from_env(cls) -> "LauncherSettings":
        return cls(
            data_bucket=_env("DATA_BUCKET"),
            training_job_prefix=_env("TRAINING_JOB_PREFIX"),
            training_image=_env("TRAINING_IMAGE"),
            training_role_arn=_env("TRAINING_ROLE_ARN"),
            instance_type=_env("TRAINING_INSTANCE_TYPE"),
            volume_size_gb=int(_env("TRAINING_VOLUME_GB", "100")),
            max_runtime_s=int(_env("TRAINING_MAX_RUNTIME_S", "86400")),
            max_running_jobs=int(_env("MAX_RUNNING_JOBS")),
            create_calls_per_second=float(_env("CREATE_CALLS_PER_SECOND", "1")),
            max_attempts=int(_env("MAX_ATTEMPTS", "5")),
            lease_s=int(_env("LAUNCH_LEASE_S", "900")),
            batch_threshold=int(_env("BATCH_THRESHOLD", "0")),
            batch_tasks=int(_env("BATCH_TASKS", "8")),
            batch_instances=int(_env("BATCH_INSTANCES", "2")),
        )


@dataclass(frozen=True)
class PublisherSettings:
    data_bucket: str
    training_job_prefix: str
    model_bucket: str
    model_prefix: str
    event_bus: str
    event_source: str

    @classmethod
    def from_env(cls) -> "PublisherSettings":
        return cls(
            data_bucket=_env("DATA_BUCKET"),
            training_job_prefix=_env("TRAINING_JOB_PREFIX"),
            model_bucket=_env("MODEL_BUCKET"),
            model_prefix=_env("MODEL_PREFIX"),
            event_bus=_env("EVENT_BUS", "default"),
            event_source=_env("EVENT_SOURCE"),
        )
