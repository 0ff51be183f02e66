"""Props of :class:`~inferfleet.constructs.finetune_queue.FinetuneQueue`, CDK-free."""

from __future__ import annotations

import re
from dataclasses import dataclass

from inferfleet.constructs.finetune_handlers.layout import MAX_TRAINING_JOB_PREFIX
from inferfleet.constructs.finetune_handlers.schema import (
    MAX_BATCH_TASKS,
    MAX_RUNTIME_LIMIT_S,
    MAX_WARM_POOL_KEEP_ALIVE_S,
)
from inferfleet.constructs.props.problems import PropsProblem, in_range

# SageMaker's default account quota is about one CreateTrainingJob per second.
MAX_CREATE_CALLS_PER_SECOND = 10.0
_PREFIX = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_EVENT_SOURCE = re.compile(r"^(?!aws\.)\S{1,256}$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
# SageMaker's form of endpoint and inference component names.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class AdapterComponents:
    """Serve published models as adapter inference components on a base component.

    :param endpoint_name: the endpoint holding the base component.
    :param base_component_name: the base-model inference component adapters attach to.
    """

    endpoint_name: str
    base_component_name: str

    def problems(self) -> list[PropsProblem]:
        problems = []
        for name, value in (
            ("endpoint_name", self.endpoint_name),
            ("base_component_name", self.base_component_name),
        ):
            if not SAGEMAKER_NAME.match(value):
                problems.append(
                    PropsProblem(
                        f"adapter_components.{name}",
                        f"{value!r} is not a SageMaker name (1-63 letters, digits and hyphens); "
                        "adapters need the endpoint and the base-model component they attach "
                        "to, by the names given to SageMakerEndpointProps.endpoint_name and "
                        ".base_component_name",
                    )
                )
        return problems


@dataclass(frozen=True)
class FinetuneQueueProps:
    """Uploads -> DynamoDB job queue -> SageMaker training jobs -> models on an endpoint.

    :param model_prefix: the endpoint's model prefix; each version of a model lands at
        ``{model_prefix}{user_id}/{model_id}/{job_id}.tar.gz``. Default: ``models/``.
    :param training_image_uri: the fine-tune container. Default: built from
        ``containers/finetune`` as a Docker image asset.
    :param training_instance_type: Default: ``ml.trn1.2xlarge``.
    :param training_volume_gb: Default: 100.
    :param training_max_runtime_s: run time of one job (of one task in a batch); at most
        SageMaker's 28 days. Default: 24 hours.
    :param training_network_isolation: single jobs run without network access (SageMaker
        moves their data and model). Batch jobs move their tasks' data themselves and run
        with the network, under a role that reaches only the upload and batch prefixes.
        Default: True.
    :param warm_pool_keep_alive_s: seconds SageMaker keeps a single job's instance warm for
        the next job (managed warm pools; needs a warm-pool quota, billed while warm); 0 is
        off, at most 3600. Default: 0.
    :param max_epochs: most epochs a manifest may ask for. Default: 10.
    :param max_seq_len: longest sequence a manifest may ask for. Default: 4096.
    :param max_batch_size: largest batch a manifest may ask for. Default: 64.
    :param training_job_prefix: start of every training job name (letters, digits,
        hyphens; at most 29, so names stay within SageMaker's 63); the state-change rule
        matches it. Default: derived from the construct's path and a hash of it (e.g.
        ``Personalization-Finetune-1A2B3C4D``), so two queues never share job names or grants.
    :param max_running_jobs: training jobs running at once. Default: 10.
    :param create_calls_per_second: CreateTrainingJob pace (SageMaker allows about 1).
        Default: 1.
    :param max_attempts: launches of one job before it fails. Default: 5.
    :param batch_threshold: queued jobs from which the launcher runs ``batch_tasks`` tasks as
        one multi-instance training job; 0 turns batching off. Default: 0.
    :param batch_tasks: tasks per batch job (2..49: one DynamoDB transaction ends a batch,
        its jobs, their model records and the slot). Default: 8.
    :param batch_instances: instances of a batch job (1..batch_tasks); instance ``h`` of
        ``n`` runs the tasks whose index ``i % n == h``. Default: 2.
    :param sweep_interval_s: how often the launcher sweeps the queue and the publisher looks
        for training jobs whose end it missed. Default: 60.
    :param reconcile_after_s: how long after a training job ended the publisher's sweep ends
        its jobs if no state change did. Default: 900.
    :param powertools_layer_version: version of the public Powertools for AWS Lambda
        (Python) v3 layer. Default: 27.
    :param event_source: ``source`` of the ready/failed events and of the removal requests
        the publisher takes. Default: ``inferfleet.finetune.`` and the training-job prefix,
        one of its own for each queue (two queues of one app on one bus must differ).
    """

    model_prefix: str = "models/"
    training_image_uri: str | None = None
    training_instance_type: str = "ml.trn1.2xlarge"
    training_volume_gb: int = 100
    training_max_runtime_s: int = 24 * 3600
    training_network_isolation: bool = True
    warm_pool_keep_alive_s: int = 0
    max_epochs: int = 10
    max_seq_len: int = 4096
    max_batch_size: int = 64
    training_job_prefix: str | None = None
    max_running_jobs: int = 10
    create_calls_per_second: float = 1.0
    max_attempts: int = 5
    batch_threshold: int = 0
    batch_tasks: int = 8
    batch_instances: int = 2
    sweep_interval_s: int = 60
    reconcile_after_s: int = 900
    powertools_layer_version: int = 27
    event_source: str | None = None

    @property
    def batching(self) -> bool:
        return self.batch_threshold > 0

    def problems(self) -> list[PropsProblem]:
        problems = []
        if not self.model_prefix.endswith("/") or self.model_prefix.startswith("/"):
            problems.append(
                PropsProblem("model_prefix", f"{self.model_prefix!r} must look like 'models/'")
            )
        if not _INSTANCE_TYPE.match(self.training_instance_type):
            problems.append(
                PropsProblem(
                    "training_instance_type",
                    f"{self.training_instance_type!r} needs the ml. form, e.g. ml.trn1.2xlarge",
                )
            )
        prefix = self.training_job_prefix
        if prefix is not None and (
            not _PREFIX.match(prefix) or len(prefix) > MAX_TRAINING_JOB_PREFIX
        ):
            problems.append(
                PropsProblem(
                    "training_job_prefix",
                    f"{prefix!r} must be 1-{MAX_TRAINING_JOB_PREFIX} letters, digits or "
                    "hyphens, starting and ending with a letter or digit (training job names "
                    "add the job id and stay within 63 characters)",
                )
            )
        if self.event_source is not None and not _EVENT_SOURCE.match(self.event_source):
            problems.append(
                PropsProblem(
                    "event_source",
                    f"{self.event_source!r} is not an EventBridge source (1-256 characters, "
                    "not starting with 'aws.'); leave it unset for the queue's own",
                )
            )
        problems += in_range("training_volume_gb", self.training_volume_gb, 1, 16384, "GB")
        problems += in_range(
            "training_max_runtime_s", self.training_max_runtime_s, 1, MAX_RUNTIME_LIMIT_S, "s"
        )
        problems += in_range(
            "warm_pool_keep_alive_s",
            self.warm_pool_keep_alive_s,
            0,
            MAX_WARM_POOL_KEEP_ALIVE_S,
            "s",
        )
        problems += in_range("max_epochs", self.max_epochs, 1, 1000)
        problems += in_range("max_seq_len", self.max_seq_len, 8, 131072)
        problems += in_range("max_batch_size", self.max_batch_size, 1, 4096)
        problems += in_range("reconcile_after_s", self.reconcile_after_s, 60, 7 * 86400, "s")
        problems += in_range("max_running_jobs", self.max_running_jobs, 1, 1000)
        if not 0 < self.create_calls_per_second <= MAX_CREATE_CALLS_PER_SECOND:
            problems.append(
                PropsProblem(
                    "create_calls_per_second",
                    f"{self.create_calls_per_second:g} must be in (0, "
                    f"{MAX_CREATE_CALLS_PER_SECOND:g}]; SageMaker allows about 1 per second",
                )
            )
        problems += in_range("max_attempts", self.max_attempts, 1, 50)
        problems += in_range("sweep_interval_s", self.sweep_interval_s, 60, 86400, "s")
        if self.batch_threshold < 0:
            problems.append(PropsProblem("batch_threshold", "use 0 (off) or a positive count"))
        if self.batching:
            problems += self._batch_problems()
        return problems

    def _batch_problems(self) -> list[PropsProblem]:
        problems = []
        if not 2 <= self.batch_tasks <= MAX_BATCH_TASKS:
            problems.append(
                PropsProblem(
                    "batch_tasks",
                    f"{self.batch_tasks} is outside 2..{MAX_BATCH_TASKS} (one DynamoDB "
                    "transaction ends a batch: its jobs, their model records and the slot)",
                )
            )
        if not 1 <= self.batch_instances <= self.batch_tasks:
            problems.append(
                PropsProblem(
                    "batch_instances",
                    f"{self.batch_instances} must be within 1..batch_tasks ({self.batch_tasks}); "
                    "an instance without a task would idle",
                )
            )
        if self.batch_threshold < self.batch_tasks:
            problems.append(
                PropsProblem(
                    "batch_threshold",
                    f"{self.batch_threshold} queued jobs cannot fill a batch of batch_tasks "
                    f"{self.batch_tasks}; raise batch_threshold to at least {self.batch_tasks}",
                )
            )
        return problems
