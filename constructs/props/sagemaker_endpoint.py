"""Props of :class:`~inferfleet.constructs.sagemaker_endpoint.SageMakerEndpoint`, CDK-free."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from inferfleet.constructs.props.problems import PropsProblem, in_range
from inferfleet.constructs.routing import Routing

DEFAULT_FRAMEWORK = "sagemaker-tritonserver"
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
# Multi-model endpoints run on CPU instances, and on GPU ones through Triton; not on
# Inferentia or Trainium (inference components serve many models there).
_NO_MULTI_MODEL = re.compile(r"^ml\.(inf|trn)\d")


class HostingMode(StrEnum):
    SINGLE_MODEL = "SingleModel"
    MULTI_MODEL = "MultiModel"


@dataclass(frozen=True)
class SageMakerEndpointProps:
    """A real-time endpoint: one model, or many per-user models behind one endpoint (MME).

    :param mode: single model, or multi-model (loads ``{model_prefix}{TargetModel}`` on
        demand). Default: single model.
    :param instance_type: production variant instance type. Default: ``ml.g5.2xlarge``.
    :param initial_instance_count: instances at creation. Default: ``min_capacity``.
    :param min_capacity: autoscaling floor. Default: 1.
    :param max_capacity: autoscaling ceiling. Default: 4.
    :param target_invocations_per_instance: target tracking on
        ``SageMakerVariantInvocationsPerInstance`` (per minute). Default: 100.
    :param routing: how SageMaker picks an instance (least outstanding requests or random).
        Default: least outstanding requests.
    :param image_uri: container image. Default: resolved at synth from the SageMaker SDK's
        image-URI tables for ``framework``/``framework_version`` in the stack's region.
    :param framework: SDK image family. Default: ``sagemaker-tritonserver`` (Triton MME).
    :param framework_version: version in the SDK tables. Default: the newest there.
    :param model_prefix: key prefix of the model artifacts in the bucket. Default: ``models/``.
    :param model_artifact: single-model mode: the artifact's key under ``model_prefix``.
        Default: none (the image carries the model).
    :param environment: container environment. Default: none.
    :param network_isolation: run the container without network access. Default: True.
    :param latency_p99_threshold_ms: ``ModelLatency`` P99 alarm threshold. Default: 1000.
    :param error_5xx_threshold: 5xx errors per 5 minutes that alarm. Default: 1.
    :param cache_hit_rate_threshold: MME: alarm when ``ModelCacheHit`` falls below it.
        Default: 0.5.
    :param loaded_models_threshold: MME: alarm when ``LoadedModelCount`` reaches it.
        Default: 1000.
    """

    mode: HostingMode = HostingMode.SINGLE_MODEL
    instance_type: str = "ml.g5.2xlarge"
    initial_instance_count: int | None = None
    min_capacity: int = 1
    max_capacity: int = 4
    target_invocations_per_instance: int = 100
    routing: Routing = Routing.LEAST_OUTSTANDING_REQUESTS
    image_uri: str | None = None
    framework: str = DEFAULT_FRAMEWORK
    framework_version: str | None = None
    model_prefix: str = "models/"
    model_artifact: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    network_isolation: bool = True
    latency_p99_threshold_ms: float = 1000
    error_5xx_threshold: int = 1
    cache_hit_rate_threshold: float = 0.5
    loaded_models_threshold: int = 1000

    @property
    def initial_count(self) -> int:
        if self.initial_instance_count is None:
            return self.min_capacity
        return self.initial_instance_count

    def problems(self) -> list[PropsProblem]:
        problems = []
        if not _INSTANCE_TYPE.match(self.instance_type):
            problems.append(
                PropsProblem(
                    "instance_type",
                    f"{self.instance_type!r} is not a SageMaker instance type; use the ml. "
                    "form, e.g. ml.g5.2xlarge or ml.inf2.xlarge",
                )
            )
        elif self.mode is HostingMode.MULTI_MODEL and _NO_MULTI_MODEL.match(self.instance_type):
            problems.append(
                PropsProblem(
                    "instance_type",
                    f"SageMaker multi-model endpoints do not run on {self.instance_type} "
                    "(Inferentia and Trainium are not supported for them); use a CPU or GPU "
                    "type such as ml.g5.2xlarge",
                )
            )
        if not 1 <= self.min_capacity <= self.max_capacity:
            problems.append(
                PropsProblem(
                    "min_capacity",
                    f"need 1 <= min <= max, got {self.min_capacity}..{self.max_capacity}; a "
                    "real-time endpoint keeps at least one instance",
                )
            )
        elif not self.min_capacity <= self.initial_count <= self.max_capacity:
            problems.append(
                PropsProblem(
                    "initial_instance_count",
                    f"{self.initial_count} must lie within min..max "
                    f"({self.min_capacity}..{self.max_capacity})",
                )
            )
        if self.target_invocations_per_instance < 1:
            problems.append(
                PropsProblem("target_invocations_per_instance", "must be at least 1 per minute")
            )
        if self.routing.sagemaker is None:
            problems.append(
                PropsProblem(
                    "routing",
                    f"SageMaker endpoints route by least_outstanding_requests or random, not "
                    f"{self.routing}",
                )
            )
        prefix = self.model_prefix
        if (prefix and not prefix.endswith("/")) or prefix.startswith("/"):
            problems.append(
                PropsProblem(
                    "model_prefix",
                    f"{prefix!r} must be a key prefix like 'models/' (no leading '/', ending "
                    "in '/')",
                )
            )
        if self.mode is HostingMode.MULTI_MODEL and self.model_artifact:
            problems.append(
                PropsProblem(
                    "model_artifact",
                    "is for single-model endpoints; a multi-model endpoint loads every "
                    "artifact under model_prefix by TargetModel",
                )
            )
        if not 0 < self.cache_hit_rate_threshold <= 1:
            problems.append(PropsProblem("cache_hit_rate_threshold", "must be in (0, 1]"))
        if self.latency_p99_threshold_ms <= 0:
            problems.append(PropsProblem("latency_p99_threshold_ms", "must be above 0 ms"))
        problems += in_range("error_5xx_threshold", self.error_5xx_threshold, 1, 10**6)
        problems += in_range("loaded_models_threshold", self.loaded_models_threshold, 1, 10**6)
        return problems
