"""Props of :class:`~inferfleet.constructs.neuron_model_service.NeuronModelService`, CDK-free.

Every field has its default here, and the defaults that depend on the service kind or on the
model's size are resolved here too (:meth:`NeuronModelServiceProps.resolved`), so the
construct, ``inferfleet validate`` and the plan all see the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES, NeuronInstanceType
from inferfleet.constructs.props.problems import (
    ANYWHERE,
    PropsProblem,
    cidr_problems,
    collapsed_cidrs,
    covers_the_internet,
    in_range,
)
from inferfleet.constructs.routing import Routing
from inferfleet.containers.common.serving_env import (
    SERVICE_KINDS,
    SERVING_PROTOCOLS,
    TRITON_PORTS,
    LlmEngineEnv,
    ServiceKind,
    ServingEnv,
    ServingEnvError,
    ServingProtocol,
)

MAX_INSTANCES_PER_POOL = 1000
# ALB limits: idle timeout 1..4000 s, deregistration delay 0..3600 s.
IDLE_TIMEOUT_RANGE_S = (1, 4000)
DEREGISTRATION_DELAY_RANGE_S = (0, 3600)
MAX_GRACE_PERIOD_S = 14400
_CERTIFICATE_ARN = re.compile(
    r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]+$"
)
_WEB_ACL_ARN = re.compile(
    r"^arn:aws[a-z-]*:wafv2:(?P<region>[a-z0-9-]+):\d{12}:regional/webacl/[\w-]+/[0-9a-f-]+$"
)
# A Secrets Manager secret (optionally one JSON key of it: ``...:secret:NAME:KEY``) or an
# SSM parameter, as ECS takes them for a container's secrets.
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:(?:secretsmanager:(?P<sm_region>[a-z0-9-]+):\d{12}:secret:"
    r"(?P<secret>[\w/+=.@-]+)(?::(?P<json_key>[^:]+))?"
    r"|ssm:(?P<ssm_region>[a-z0-9-]+):\d{12}:parameter/[\w/.-]+)$"
)
# Triton's readiness, as each protocol asks for it.
READY_PATHS: dict[ServingProtocol, str] = {
    "http": "/v2/health/ready",
    "grpc": "/inference.GRPCInferenceService/ServerReady",
}
# A gRPC health check calls one method: /package.Service/Method.
_GRPC_METHOD_PATH = re.compile(r"^/[A-Za-z_][\w.]*/[A-Za-z_]\w*$")
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Environment names that usually hold a credential: they belong in ``secrets``.
_SECRET_LIKE_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY)", re.I)
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


@dataclass(frozen=True)
class KindDefaults:
    """Defaults sized for a token stream (llm) or a millisecond classifier."""

    idle_timeout_s: int
    deregistration_delay_s: int
    latency_alarm_p99_ms: float
    requests_per_target_per_minute: int


KIND_DEFAULTS: dict[ServiceKind, KindDefaults] = {
    # An idle stream is cut at the idle timeout; streams need minutes to drain.
    "llm": KindDefaults(600, 300, 1000, 120),
    "classifier": KindDefaults(60, 30, 10, 60000),
}


def default_grace_period_s(weights_gib: float) -> int:
    """Health-check grace: container start, weight download at ~100 MiB/s, and a Neuron
    compile when the compile cache misses (~2 s per GiB of weights)."""
    return min(MAX_GRACE_PERIOD_S, 300 + math.ceil(weights_gib * (10.24 + 2)))


@dataclass(frozen=True)
class NeuronPool:
    """Instances of one type serving the model; pools of a service differ only in TP degree.

    :param instance_type: an inf2/trn1/trn2 type (see ``neuron_instances``).
    :param tensor_parallel: NeuronCores per model replica; must divide the instance's cores.
    :param min_capacity: instances (one task each) kept serving. Default: 1.
    :param max_capacity: upper bound of instances. Default: 2.
    """

    instance_type: str
    tensor_parallel: int
    min_capacity: int = 1
    max_capacity: int = 2

    @property
    def instance(self) -> NeuronInstanceType:
        return NEURON_INSTANCE_TYPES[self.instance_type]

    @property
    def replicas_per_instance(self) -> int:
        return self.instance.neuron_cores // self.tensor_parallel

    def problems(self) -> list[PropsProblem]:
        instance = NEURON_INSTANCE_TYPES.get(self.instance_type)
        if instance is None:
            return [
                PropsProblem(
                    "instance_type",
                    f"unknown instance type {self.instance_type!r}; use one of: "
                    + ", ".join(NEURON_INSTANCE_TYPES),
                )
            ]
        problems = []
        cores = instance.neuron_cores
        degrees = ", ".join(map(str, instance.tensor_parallel_degrees()))
        if self.tensor_parallel < 1 or self.tensor_parallel > cores:
            problems.append(
                PropsProblem(
                    "tensor_parallel",
                    f"{self.tensor_parallel} is "
                    + ("below 1" if self.tensor_parallel < 1 else f"more than the {cores}")
                    + f" NeuronCores of {instance.name}; use one of {degrees}",
                )
            )
        elif cores % self.tensor_parallel:
            problems.append(
                PropsProblem(
                    "tensor_parallel",
                    f"{self.tensor_parallel} does not divide the {cores} NeuronCores of "
                    f"{instance.name}; use one of {degrees}",
                )
            )
        if self.min_capacity < 0:
            problems.append(PropsProblem("min_capacity", f"{self.min_capacity} is below 0"))
        if not 1 <= self.max_capacity <= MAX_INSTANCES_PER_POOL:
            problems.append(
                PropsProblem(
                    "max_capacity",
                    f"{self.max_capacity} is outside 1..{MAX_INSTANCES_PER_POOL}; "
                    "a pool serves with at least one instance",
                )
            )
        if self.min_capacity > self.max_capacity:
            problems.append(
                PropsProblem(
                    "min_capacity",
                    f"min {self.min_capacity} is greater than max {self.max_capacity}; "
                    "set min <= max",
                )
            )
        return problems


@dataclass(frozen=True)
class HealthCheck:
    """The target group's health check.

    Defaults: Triton's readiness of the service's protocol (:data:`READY_PATHS`: ``GET
    /v2/health/ready`` answering HTTP 200, or the gRPC ``ServerReady`` method answering gRPC
    code 0) every 30 s with a 10 s timeout, healthy after 2 and unhealthy after 3 checks.
    """

    path: str | None = None
    interval_s: int = 30
    timeout_s: int = 10
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    healthy_http_codes: str = "200"
    healthy_grpc_codes: str = "0"

    def for_protocol(self, protocol: ServingProtocol) -> HealthCheck:
        """A copy with the readiness path of ``protocol`` when none is given."""
        return replace(self, path=self.path or READY_PATHS.get(protocol, READY_PATHS["http"]))

    def problems(self, protocol: ServingProtocol = "http") -> list[PropsProblem]:
        problems = []
        path = self.for_protocol(protocol).path or ""
        if not path.startswith("/"):
            problems.append(PropsProblem("path", f"{path!r}: start the path with /"))
        elif protocol == "grpc" and not _GRPC_METHOD_PATH.match(path):
            problems.append(
                PropsProblem(
                    "path",
                    f"{path!r} is not a gRPC method; a gRPC health check calls "
                    f"/package.Service/Method, like {READY_PATHS['grpc']} (Triton's readiness)",
                )
            )
        problems += in_range("interval_s", self.interval_s, 5, 300, "s")
        problems += in_range("timeout_s", self.timeout_s, 2, 120, "s")
        if self.timeout_s >= self.interval_s:
            problems.append(
                PropsProblem(
                    "timeout_s",
                    f"{self.timeout_s} s is not shorter than interval_s {self.interval_s} s "
                    "(the load balancer requires it); lower timeout_s or raise interval_s",
                )
            )
        problems += in_range("healthy_threshold", self.healthy_threshold, 2, 10)
        problems += in_range("unhealthy_threshold", self.unhealthy_threshold, 2, 10)
        return problems


@dataclass(frozen=True)
class SecretSource:
    """Where one secret of a container comes from, as the construct hands it to ECS.

    :param service: ``secretsmanager`` or ``ssm``.
    :param arn: the secret's complete ARN, or the parameter's ARN.
    :param json_key: one key of a JSON secret. Default: the whole secret.
    """

    service: str
    arn: str
    json_key: str | None = None

    @property
    def parameter_name(self) -> str:
        """An SSM parameter's name, as ECS and IAM spell it (with its leading '/')."""
        return "/" + self.arn.split(":parameter/", 1)[1]


@dataclass(frozen=True)
class NeuronModelServiceProps:
    """What a model service is: its pools, image, model, routing, timeouts and scaling.

    :param pools: one or more :class:`NeuronPool`, at most one per instance type.
    :param kind: ``llm`` (token streams) or ``classifier``; picks the built-in image and the
        defaults in :data:`KIND_DEFAULTS`. Default: ``llm``.
    :param engine: the LLM engine's batching and precision (tensor-parallel degree and
        replicas are set per pool). Default: :class:`LlmEngineEnv` defaults for ``llm``,
        none for a classifier.
    :param image_uri: image in a registry. Default: the built-in image of ``kind``, built
        from this package's ``containers/`` as an asset.
    :param image_asset_path: a Docker build context to build the image from instead.
    :param protocol: what the load balancer speaks to clients and tasks: ``http`` (HTTP/1.1,
        Triton's generate endpoints) or ``grpc`` (HTTP/2 to Triton's gRPC service, streams
        through ``ModelStreamInfer``; the target group's protocol version is GRPC and its
        health check calls ``ServerReady``). gRPC needs an HTTPS listener, so
        ``certificate_arn``. Default: ``http``.
    :param container_port: port the server listens on. Default: Triton's port of the
        protocol (:data:`~inferfleet.containers.common.serving_env.TRITON_PORTS`: 8000 HTTP,
        8001 gRPC).
    :param environment: extra container environment (non-secret configuration).
    :param secrets: container environment read from AWS at task start, never written into
        the task definition: name -> ARN of a Secrets Manager secret (``...:secret:NAME``, or
        ``...:secret:NAME:KEY`` for one JSON key) or an SSM parameter (``...:parameter/NAME``),
        in the stack's region. The task execution role may read exactly these. Default: none.
    :param model_artifact: ``s3://bucket/prefix/`` the tasks may read, and nothing else of
        the bucket; a prefix without its trailing ``/`` gets one (``models/a`` would also
        match ``models/ab``). Default: none.
    :param weights_gib: size of the weights, for root volumes and the grace period.
    :param routing: target-group algorithm. Default: least outstanding requests.
    :param idle_timeout_s: load balancer idle timeout; a stream must send a byte within it.
        Default: by kind (600 s llm, 60 s classifier).
    :param deregistration_delay_s: time for in-flight streams to finish when a task leaves.
        Default: by kind (300 s llm, 30 s classifier).
    :param health_check: Default: :class:`HealthCheck` (readiness of the protocol).
    :param health_check_grace_period_s: time to download, load and compile the model before
        failed checks count. Default: :func:`default_grace_period_s` of ``weights_gib``.
    :param requests_per_target_per_minute: autoscaling target on ALB requests per target.
        Default: by kind (120 llm, 60000 classifier).
    :param scale_in_cooldown_s: Default: 600. :param scale_out_cooldown_s: Default: 60.
    :param certificate_arn: ACM certificate of the stack's region: an HTTPS listener
        (TLS 1.2+) and an HTTP redirect, internal or internet-facing. Default: none, and an
        internal load balancer listens on plain HTTP.
    :param internet_facing: public load balancer in public subnets; needs
        ``certificate_arn`` unless ``allow_plaintext_internet``. Default: internal.
    :param allow_plaintext_internet: accept an internet-facing load balancer without a
        certificate (plain HTTP across the internet; a warning says so). Default: False.
    :param allowed_cidrs: who may reach the load balancer. Blocks that together cover every
        IPv4 address (``0.0.0.0/1`` + ``128.0.0.0/1``) count as ``0.0.0.0/0``: open to the
        world, which only an internet-facing load balancer may be. Default: the VPC's CIDR.
    :param web_acl_arn: an AWS WAF web ACL (``arn:aws:wafv2:REGION:...:regional/webacl/...``)
        of the stack's region to associate with the load balancer. Default: none.
    :param latency_alarm_p99_ms: alarm when target response time P99 (time to first byte:
        time to first token for streams) exceeds it. Default: by kind (1000 / 10 ms).
    :param alarms: create the 5xx, unhealthy-host and latency alarms. Default: True.
    :param health_alarm_name: also create an alarm of this name that is in ALARM while the
        service has no healthy target (3 minutes), for a Route 53 health check in another
        stack to follow (a multi-region fleet's traffic layer). Needs ``alarms``. Default:
        none.
    :param request_count_scaling: scale on ALB requests per target. Default: True.
    :param dashboard_widgets: add this service to the cluster's dashboard. Default: True.
    """

    pools: tuple[NeuronPool, ...]
    kind: ServiceKind = "llm"
    engine: LlmEngineEnv | None = None
    image_uri: str | None = None
    image_asset_path: str | None = None
    protocol: ServingProtocol = "http"
    container_port: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    model_artifact: str | None = None
    weights_gib: float = 0
    routing: Routing = Routing.LEAST_OUTSTANDING_REQUESTS
    idle_timeout_s: int | None = None
    deregistration_delay_s: int | None = None
    health_check: HealthCheck = HealthCheck()
    health_check_grace_period_s: int | None = None
    requests_per_target_per_minute: int | None = None
    scale_in_cooldown_s: int = 600
    scale_out_cooldown_s: int = 60
    certificate_arn: str | None = None
    internet_facing: bool = False
    allow_plaintext_internet: bool = False
    allowed_cidrs: tuple[str, ...] = ()
    web_acl_arn: str | None = None
    latency_alarm_p99_ms: float | None = None
    alarms: bool = True
    health_alarm_name: str | None = None
    request_count_scaling: bool = True
    dashboard_widgets: bool = True

    def resolved(self) -> NeuronModelServiceProps:
        """A copy with every default that depends on the kind or the weights filled in."""
        defaults = KIND_DEFAULTS.get(self.kind, KIND_DEFAULTS["llm"])
        return replace(
            self,
            pools=tuple(self.pools),
            allowed_cidrs=tuple(self.allowed_cidrs),
            model_artifact=_with_trailing_slash(self.model_artifact),
            engine=self.engine or (LlmEngineEnv() if self.kind == "llm" else None),
            container_port=_or(self.container_port, TRITON_PORTS.get(self.protocol)),
            health_check=self.health_check.for_protocol(self.protocol),
            idle_timeout_s=_or(self.idle_timeout_s, defaults.idle_timeout_s),
            deregistration_delay_s=_or(
                self.deregistration_delay_s, defaults.deregistration_delay_s
            ),
            health_check_grace_period_s=_or(
                self.health_check_grace_period_s, default_grace_period_s(self.weights_gib)
            ),
            requests_per_target_per_minute=_or(
                self.requests_per_target_per_minute, defaults.requests_per_target_per_minute
            ),
            latency_alarm_p99_ms=_or(self.latency_alarm_p99_ms, defaults.latency_alarm_p99_ms),
        )

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None

    @property
    def open_to_the_internet(self) -> bool:
        """``allowed_cidrs`` reach every IPv4 address (however they are split)."""
        try:
            return covers_the_internet(self.allowed_cidrs)
        except ValueError:  # an invalid block: a problem of its own
            return False

    @property
    def model_artifact_location(self) -> tuple[str, str] | None:
        """``(bucket, prefix)`` of the artifact, the prefix ending in '/' (or '' for the
        whole bucket); None without an artifact or when it is not an S3 URI."""
        match = _S3_URI.match(_with_trailing_slash(self.model_artifact) or "")
        if match is None:
            return None
        return match["bucket"], match["prefix"] or ""

    def serving_env(self, pool: NeuronPool, *, compile_cache_url: str | None) -> ServingEnv:
        """The contract the service's tasks on ``pool`` are started with."""
        engine = self.resolved().engine
        return ServingEnv(
            kind=self.kind,
            instance_type=pool.instance_type,
            neuron_cores=pool.instance.neuron_cores,
            model_artifact=self.model_artifact,
            compile_cache_url=compile_cache_url,
            llm=replace(
                engine,
                tp_degree=pool.tensor_parallel,
                replicas=pool.replicas_per_instance,
            )
            if engine is not None
            else None,
        )

    def problems(
        self, *, region: str | None = None, public_subnets: bool | None = None
    ) -> list[PropsProblem]:
        """Every rule the construct enforces. ``region`` (the stack's) checks the certificate;
        ``public_subnets`` (whether the VPC has any) checks ``internet_facing``."""
        problems: list[PropsProblem] = []
        if self.kind not in SERVICE_KINDS:
            return [PropsProblem("kind", f"{self.kind!r} is not a kind; use llm or classifier")]
        if self.protocol not in SERVING_PROTOCOLS:
            return [
                PropsProblem("protocol", f"{self.protocol!r} is not a protocol; use http or grpc")
            ]
        problems += self._pool_problems()
        if self.engine is not None and self.kind != "llm":
            problems.append(
                PropsProblem("engine", "the LLM engine settings apply to kind llm only; drop them")
            )
        if self.image_uri and self.image_asset_path:
            problems.append(
                PropsProblem(
                    "image_uri",
                    "both an image URI and an image asset path are given; keep one "
                    "(image_uri for a registry image, image_asset_path to build one)",
                )
            )
        resolved = self.resolved()
        problems += in_range("container_port", resolved.container_port, 1, 65535)
        if self.model_artifact is not None and self.model_artifact_location is None:
            problems.append(
                PropsProblem(
                    "model_artifact",
                    f"{self.model_artifact!r} must be an s3:// URI of a bucket and prefix, "
                    "like s3://bucket/prefix/",
                )
            )
        if self.weights_gib < 0:
            problems.append(PropsProblem("weights_gib", f"{self.weights_gib} is below 0"))
        problems += in_range("idle_timeout_s", resolved.idle_timeout_s, *IDLE_TIMEOUT_RANGE_S, "s")
        problems += in_range(
            "deregistration_delay_s",
            resolved.deregistration_delay_s,
            *DEREGISTRATION_DELAY_RANGE_S,
            "s",
        )
        problems += [p.under("health_check") for p in self.health_check.problems(self.protocol)]
        problems += in_range(
            "health_check_grace_period_s",
            resolved.health_check_grace_period_s,
            0,
            MAX_GRACE_PERIOD_S,
            "s",
        )
        if resolved.requests_per_target_per_minute < 1:
            problems.append(
                PropsProblem("requests_per_target_per_minute", "must be at least 1 per minute")
            )
        problems += in_range("scale_in_cooldown_s", self.scale_in_cooldown_s, 0, 3600, "s")
        problems += in_range("scale_out_cooldown_s", self.scale_out_cooldown_s, 0, 3600, "s")
        if resolved.latency_alarm_p99_ms <= 0:
            problems.append(PropsProblem("latency_alarm_p99_ms", "must be above 0 ms"))
        if self.protocol == "grpc" and not self.https:
            problems.append(
                PropsProblem(
                    "protocol",
                    "grpc needs an HTTPS listener (the load balancer takes gRPC over HTTPS "
                    "only), and there is no certificate_arn; give the region's certificate_arn, "
                    "or use protocol http",
                )
            )
        if self.health_alarm_name is not None and not 1 <= len(self.health_alarm_name) <= 255:
            problems.append(PropsProblem("health_alarm_name", "must be 1..255 characters"))
        problems += self._certificate_problems(region)
        problems += self._load_balancer_problems(region)
        if self.internet_facing and public_subnets is False:
            problems.append(
                PropsProblem(
                    "internet_facing",
                    "an internet-facing load balancer needs public subnets, and the VPC has "
                    "none; list the VPC's public subnets or keep the load balancer internal",
                )
            )
        problems += self._environment_problems()
        problems += self._secret_problems(region)
        return problems

    def warnings(self) -> list[PropsProblem]:
        """Accepted, but worth a second look; the construct adds each as a CDK warning."""
        warnings = []
        if self.internet_facing and not self.https and self.allow_plaintext_internet:
            warnings.append(
                PropsProblem(
                    "allow_plaintext_internet",
                    "the load balancer serves plain HTTP across the internet: requests, "
                    "answers and any token in them can be read on the way; give "
                    "certificate_arn to serve HTTPS",
                )
            )
        if self.internet_facing and self.open_to_the_internet and self.web_acl_arn is None:
            warnings.append(
                PropsProblem(
                    "allowed_cidrs",
                    f"the load balancer is open to the whole internet ({ANYWHERE}) with no "
                    "AWS WAF web ACL in front; set web_acl_arn to filter and rate-limit it, "
                    "or list the ranges that should reach it",
                )
            )
        location = self.model_artifact_location
        if location is not None and not location[1]:
            warnings.append(
                PropsProblem(
                    "model_artifact",
                    f"no prefix: the tasks may read every object of bucket {location[0]}; "
                    f"give the model's own prefix, like s3://{location[0]}/my-model/",
                )
            )
        secret_like = sorted(name for name in self.environment if _SECRET_LIKE_NAME.search(name))
        if secret_like:
            warnings.append(
                PropsProblem(
                    "environment",
                    f"{', '.join(secret_like)} look like credentials, and environment values "
                    "are written into the task definition in the clear; move them to secrets "
                    "(a Secrets Manager secret or SSM parameter ARN)",
                )
            )
        return warnings

    def _pool_problems(self) -> list[PropsProblem]:
        if not self.pools:
            return [PropsProblem("pools", "give at least one pool")]
        problems = []
        seen: dict[str, int] = {}
        for index, pool in enumerate(self.pools):
            problems += [p.under(f"pools[{index}]") for p in pool.problems()]
            if pool.instance_type in seen:
                problems.append(
                    PropsProblem(
                        f"pools[{index}].instance_type",
                        f"a second pool of {pool.instance_type} (also "
                        f"pools[{seen[pool.instance_type]}]); merge them into one pool with a "
                        "wider min/max",
                    )
                )
            seen.setdefault(pool.instance_type, index)
        return problems

    def _certificate_problems(self, region: str | None) -> list[PropsProblem]:
        if self.certificate_arn is None:
            return []
        match = _CERTIFICATE_ARN.match(self.certificate_arn)
        if match is None:
            return [
                PropsProblem(
                    "certificate_arn",
                    f"{self.certificate_arn!r} is not an ACM certificate ARN; use "
                    "arn:aws:acm:REGION:ACCOUNT:certificate/ID",
                )
            ]
        if region is not None and match["region"] != region:
            return [
                PropsProblem(
                    "certificate_arn",
                    f"the certificate is in {match['region']}, but the load balancer is in "
                    f"{region}; a load balancer takes certificates of its own region only",
                )
            ]
        return []

    def _load_balancer_problems(self, region: str | None) -> list[PropsProblem]:
        problems = cidr_problems("allowed_cidrs", self.allowed_cidrs)
        if self.internet_facing and not self.https and not self.allow_plaintext_internet:
            problems.append(
                PropsProblem(
                    "internet_facing",
                    "an internet-facing load balancer without certificate_arn would serve "
                    "plain HTTP across the internet; give the region's certificate_arn, or "
                    "set allow_plaintext_internet: true to accept plaintext",
                )
            )
        if self.allow_plaintext_internet and (not self.internet_facing or self.https):
            problems.append(
                PropsProblem(
                    "allow_plaintext_internet",
                    "applies to an internet-facing load balancer without a certificate only; "
                    "drop it",
                )
            )
        if self.open_to_the_internet and not self.internet_facing:
            problems.append(
                PropsProblem(
                    "allowed_cidrs",
                    f"{', '.join(self.allowed_cidrs)} together cover every IPv4 address "
                    f"({ANYWHERE}), for an internal load balancer; list the ranges that "
                    "should reach it, or make it internet_facing",
                )
            )
        if self.web_acl_arn is not None:
            match = _WEB_ACL_ARN.match(self.web_acl_arn)
            if match is None:
                problems.append(
                    PropsProblem(
                        "web_acl_arn",
                        f"{self.web_acl_arn!r} is not a regional AWS WAF web ACL ARN; use "
                        "arn:aws:wafv2:REGION:ACCOUNT:regional/webacl/NAME/ID",
                    )
                )
            elif region is not None and match["region"] != region:
                problems.append(
                    PropsProblem(
                        "web_acl_arn",
                        f"the web ACL is in {match['region']}, but the load balancer is in "
                        f"{region}; associate a web ACL of its own region",
                    )
                )
        return problems

    @property
    def secret_sources(self) -> dict[str, SecretSource]:
        """Each valid entry of ``secrets``, parsed once for the construct."""
        sources = {}
        for name, arn in self.secrets.items():
            match = _SECRET_ARN.match(arn)
            if match is None:
                continue
            if match["ssm_region"]:
                sources[name] = SecretSource("ssm", arn)
            else:
                key = match["json_key"]
                whole = arn.removesuffix(f":{key}") if key else arn
                sources[name] = SecretSource("secretsmanager", whole, key)
        return sources

    @property
    def ingress_cidrs(self) -> tuple[str, ...]:
        """``allowed_cidrs`` as the fewest blocks (the security group's rules)."""
        return collapsed_cidrs(self.allowed_cidrs)

    def _environment_problems(self) -> list[PropsProblem]:
        reserved = set(self._probe_env())
        problems = []
        clashes = sorted(reserved & (set(self.environment) | set(self.secrets)))
        if clashes:
            problems.append(
                PropsProblem(
                    "environment",
                    f"{', '.join(clashes)} are set by inferfleet from the service's settings; "
                    "drop them from environment and secrets and set the matching field instead",
                )
            )
        both = sorted(set(self.environment) & set(self.secrets))
        if both:
            problems.append(
                PropsProblem(
                    "secrets",
                    f"{', '.join(both)} are also in environment; keep each name in one of them",
                )
            )
        return problems

    def _secret_problems(self, region: str | None) -> list[PropsProblem]:
        problems = []
        for name, arn in self.secrets.items():
            field_name = f"secrets.{name}"
            if not _ENV_NAME.match(name):
                problems.append(
                    PropsProblem(
                        field_name, f"{name!r} is not an environment variable name; use A-Z0-9_"
                    )
                )
            match = _SECRET_ARN.match(arn)
            if match is None:
                problems.append(
                    PropsProblem(
                        field_name,
                        f"{arn!r} is neither a Secrets Manager secret ARN "
                        "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:JSON_KEY]) nor an "
                        "SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)",
                    )
                )
                continue
            if match["secret"] and not _SECRET_SUFFIX.search(match["secret"]):
                problems.append(
                    PropsProblem(
                        field_name,
                        f"{arn!r} is not a complete secret ARN; give the ARN Secrets Manager "
                        "shows, ending in the 6-character suffix it adds to the name "
                        "(NAME-AbCdEf), so the task may read exactly that secret",
                    )
                )
            secret_region = match["sm_region"] or match["ssm_region"]
            if region is not None and secret_region != region:
                problems.append(
                    PropsProblem(
                        field_name,
                        f"the secret is in {secret_region}, but the service runs in {region}; "
                        "ECS reads secrets of its own region, so replicate it there",
                    )
                )
        return problems

    def _probe_env(self) -> dict[str, str]:
        if not self.pools or any(pool.problems() for pool in self.pools):
            return {}
        try:
            return self.serving_env(self.pools[0], compile_cache_url=None).to_env()
        except ServingEnvError:
            return {}


def _or(value, default):  # type: ignore[no-untyped-def]
    return default if value is None else value


def _with_trailing_slash(uri: str | None) -> str | None:
    """``s3://b/models/a`` -> ``s3://b/models/a/``: an IAM prefix ``models/a*`` would also
    match ``models/ab``."""
    if uri is None or not uri.startswith("s3://") or uri.endswith("/"):
        return uri
    return uri + "/"
