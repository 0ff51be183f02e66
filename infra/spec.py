"""The fleet spec: the YAML file users write, as pydantic models — the schema and no more.

Pydantic checks types, allowed words and unknown keys. Every other rule — what the constructs
enforce, what spans fields, device memory, AWS limits — is checked while the fleet plan is
built (:mod:`inferfleet.infra.plan`), which reports each problem with the YAML path it is
about, so :func:`describe_problems` can name the file, the line and the field, and say the fix.
Defaults of fields that map onto construct props are left to the props (``None`` here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from inferfleet.constructs.routing import Routing
from inferfleet.containers.common.serving_env import LlmEngineEnv, ServiceKind, ServingProtocol
from inferfleet.infra.yaml_source import YamlDocument, YamlPath, YamlSourceError, load_yaml_file

WeightsDtype = Literal["bf16", "fp16", "int8"]

RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
ResourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]
_ENGINE = LlmEngineEnv()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _routing(value: object) -> object:
    return Routing.parse(value) if isinstance(value, str) else value


class ModelSpec(_Strict):
    """The model a service runs and the shape of its KV cache."""

    parameters_b: float = Field(gt=0, le=2000, description="Billions of parameters.")
    weights_dtype: WeightsDtype = "bf16"
    max_sequence_length: int = Field(_ENGINE.max_seq_len, ge=16, le=131072)
    max_batch_size: int = Field(
        _ENGINE.max_num_seqs,
        ge=1,
        le=1024,
        description="Sequences one replica decodes at once (continuous batching).",
    )
    layers: int | None = Field(None, ge=1, description="Decoder layers; default by model size.")
    kv_heads: int | None = Field(None, ge=1, description="KV heads; default 8 (grouped-query).")
    head_dim: int | None = Field(None, ge=1, description="Attention head dimension; default 128.")
    artifact: str | None = Field(
        None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="S3 URI of the weights or compiled artifacts the container loads.",
    )


class PoolSpec(_Strict):
    """Instances of one type serving one service; only the TP degree differs between pools."""

    instance_type: str
    tensor_parallel: int
    min: int = 1
    max: int
    regions: list[RegionName] | None = Field(
        None, description="Regions this pool runs in; default every region of the fleet."
    )


class ContainerSpec(_Strict):
    """What runs in the task. Default: the built-in image for the service kind."""

    image: str | None = Field(None, min_length=1, description="Image URI in a registry.")
    asset_path: str | None = Field(
        None, min_length=1, description="Docker build context, relative to the fleet file."
    )
    port: int | None = Field(None, description="Default: Triton's port of the protocol.")
    environment: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Variable name -> Secrets Manager secret or SSM parameter ARN, read at "
        "task start and never written into the task definition.",
    )


class HealthCheckSpec(_Strict):
    path: str | None = Field(None, description="Default: Triton's readiness of the protocol.")
    interval_s: int = 30
    timeout_s: int = 10
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    grace_period_s: int | None = Field(
        None, description="Default: sized from the weights to load and compile."
    )


class AutoscalingSpec(_Strict):
    requests_per_target_per_minute: int | None = Field(
        None, description="ALB requests per target per minute to hold; default by kind."
    )
    scale_in_cooldown_s: int = 600
    scale_out_cooldown_s: int = 60


class ServiceSpec(_Strict):
    kind: ServiceKind
    model: ModelSpec
    routing: Routing = Routing.LEAST_OUTSTANDING_REQUESTS
    protocol: ServingProtocol | None = Field(
        None, description="http (default) or grpc (needs the region's certificate_arn)."
    )
    pools: list[PoolSpec] = Field(min_length=1)
    container: ContainerSpec = Field(default_factory=ContainerSpec)
    health_check: HealthCheckSpec = Field(default_factory=HealthCheckSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    stream_idle_timeout_s: int | None = Field(
        None, description="ALB idle timeout; default by kind (a stream must send within it)."
    )
    deregistration_delay_s: int | None = Field(
        None, description="Time for in-flight streams to drain; default by kind."
    )

    _routing = field_validator("routing", mode="before")(_routing)


class VpcSpec(_Strict):
    """An existing VPC, described fully so nothing is looked up at synth."""

    vpc_id: str
    cidr: str
    availability_zones: list[str]
    private_subnet_ids: list[str]
    public_subnet_ids: list[str] = Field(default_factory=list)


class RegionSpec(_Strict):
    name: RegionName
    account: AccountId | None = None
    availability_zones: list[str] | None = Field(
        None, description="AZs for a new VPC; saves a lookup when account is set."
    )
    vpc: VpcSpec | None = None
    certificate_arn: str | None = Field(
        None, description="ACM certificate of this region for HTTPS listeners."
    )
    web_acl_arn: str | None = Field(
        None, description="AWS WAF web ACL of this region for the load balancers."
    )


class NetworkSpec(_Strict):
    internet_facing: bool = Field(
        False, description="Public load balancers; default internal, reached from the VPC."
    )
    allow_plaintext_internet: bool | None = Field(
        None,
        description="Accept internet-facing load balancers without a certificate (plain HTTP).",
    )
    allowed_cidrs: list[str] = Field(
        default_factory=list,
        description="Who may reach the load balancers; default the VPC's own CIDR.",
    )
    nat_gateways: int | None = Field(None, description="Default one per AZ.")


Hosting = Literal["multi_model", "inference_components"]


class BaseModelSpec(_Strict):
    """The base model of inference-component hosting; each user's LoRA adapter attaches to it."""

    parameters_b: float = Field(gt=0, le=2000, description="Billions of parameters.")
    weights_dtype: WeightsDtype = "bf16"
    max_sequence_length: int = Field(_ENGINE.max_seq_len, ge=16, le=131072)
    max_batch_size: int = Field(
        _ENGINE.max_num_seqs, ge=1, le=1024, description="Sequences one copy decodes at once."
    )
    artifact: str | None = Field(
        None,
        min_length=1,
        description="Key of the base model's artifact under the endpoint's model prefix; "
        "default none (the image loads the model).",
    )


class EndpointSpec(_Strict):
    """The SageMaker endpoint that serves every user's fine-tuned models."""

    hosting: Hosting = Field(
        "multi_model",
        description="multi_model: whole models on a multi-model endpoint (CPU/GPU); "
        "inference_components: LoRA adapters on a base-model component (GPU or Inferentia), "
        "copies scale to zero.",
    )
    instance_type: str | None = None
    min: int | None = Field(
        None, description="Instances (multi_model) or base-model copies (inference_components)."
    )
    max: int | None = None
    invocations_per_instance: int | None = Field(
        None, description="Target tracking: invocations per instance per minute."
    )
    routing: Routing | None = None
    image_uri: str | None = Field(
        None, description="Serving image; default from the SageMaker SDK's tables."
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Serving container environment; a multi-model endpoint's published models "
        "load their base weights from INFERFLEET_BASE_MODEL, a folder of the serving image.",
    )
    base_model: BaseModelSpec | None = Field(
        None, description="inference_components: the model the adapters attach to."
    )
    accelerators_per_copy: int | None = Field(
        None, description="NeuronCores or GPUs per base-model copy; default sized from memory."
    )
    memory_gib_per_copy: float | None = Field(
        None, gt=0, description="Host memory one base-model copy reserves."
    )
    max_instances: int | None = Field(
        None, description="Most instances SageMaker places for the copies."
    )
    concurrent_requests_per_copy: int | None = Field(
        None, description="Target tracking: concurrent requests per base-model copy."
    )

    _routing = field_validator("routing", mode="before")(_routing)


class FinetuneQueueSpec(_Strict):
    training_instance_type: str | None = None
    training_image_uri: str | None = Field(
        None, description="Training image; default built from containers/finetune."
    )
    max_running_jobs: int | None = None
    create_calls_per_second: float | None = Field(
        None, description="Pace of CreateTrainingJob (about 1/s per account)."
    )
    max_attempts: int | None = None
    batch_threshold: int | None = Field(
        None, description="Queued jobs that start one multi-instance job; 0 never batches."
    )
    batch_tasks: int | None = None
    batch_instances: int | None = None


class PersonalizationSpec(_Strict):
    """Per-user fine-tuning and one endpoint serving the results."""

    regions: list[RegionName] | None = Field(
        None, description="Where to deploy it; default the first region of the fleet."
    )
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    queue: FinetuneQueueSpec = Field(default_factory=FinetuneQueueSpec)


class BatchJobSpec(_Strict):
    """A periodic Batch Transform job on Neuron instances (the duplicate-pair scorer)."""

    name: ResourceName
    model_artifact: str = Field(
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$",
        description="S3 URI of the model's .tar.gz (an encoder folder or traced graphs).",
    )
    input_prefix: str = Field(description="S3 prefix of the JSON Lines input files.")
    output_prefix: str = Field(description="S3 prefix the runs write to, outside the input.")
    instance_type: str | None = Field(None, description="Default ml.inf2.xlarge.")
    instance_count: int | None = Field(None, description="Default 1.")
    schedule: str | None = Field(
        None, description="rate(...) or cron(...), UTC; default none (started by hand)."
    )
    regions: list[RegionName] | None = Field(
        None, description="Where the job runs; default the first region of the fleet."
    )
    image_uri: str | None = Field(None, description="Default the built-in pair-neuron image.")
    max_payload_mb: int | None = None
    max_attempts: int | None = Field(None, description="Runs of a job failing transiently.")
    late_after_hours: float | None = None
    max_run_hours: float | None = None
    price_per_instance_hour: float | None = Field(
        None, description="USD, for the cost estimate of each run's summary."
    )


TrafficMode = Literal["route53", "global_accelerator"]
HostedZoneId = Annotated[str, StringConstraints(pattern=r"^Z[A-Z0-9]{1,31}$")]


class TrafficZoneSpec(_Strict):
    """The DNS zone of the services' names: a new one, or an existing one by id."""

    name: str = Field(description="Zone name, e.g. shopping.internal.")
    id: HostedZoneId | None = Field(
        None, description="An existing hosted zone to add the records to; default a new zone."
    )
    private: bool | None = Field(
        None,
        description="A new private zone associated with every region's VPC; default private "
        "when the load balancers are internal.",
    )


class TrafficServiceSpec(_Strict):
    """One service behind one name across the regions."""

    record: str | None = Field(None, description="Label under the zone; default the service name.")
    objective_s: float | None = Field(
        None,
        description="TTFT P99 (ALB target response time P99) a region must stay under; default "
        "the service's latency alarm (1 s for llm).",
    )


class TrafficSpec(_Strict):
    """Weighted names over the regions, re-weighted from CloudWatch by the traffic controller."""

    zone: TrafficZoneSpec
    services: dict[ResourceName, TrafficServiceSpec] = Field(
        min_length=1, description="The services to put behind one name each."
    )
    mode: TrafficMode | None = Field(
        None,
        description="route53 (weighted records) or global_accelerator (internet-facing ALBs).",
    )
    period_s: int | None = Field(None, description="Control period, whole minutes.")
    step: int | None = Field(None, description="Largest weight change per period (of 100).")
    floor: int | None = Field(None, description="Least weight of a healthy region.")
    record_ttl_s: int | None = Field(None, description="TTL of the weighted records.")
    home_region: RegionName | None = Field(
        None, description="Region of the global stack; default the fleet's first region."
    )

    @field_validator("services", mode="before")
    @classmethod
    def _names_to_entries(cls, services: object) -> object:
        if not isinstance(services, list):
            return services
        return (
            {name: {} for name in services}
            if all(isinstance(n, str) for n in services)
            else services
        )


class FleetSpec(_Strict):
    name: ResourceName
    account: AccountId | None = Field(None, description="Default account of every region.")
    regions: list[RegionSpec] = Field(
        min_length=1, description="Region names, or objects with per-region settings."
    )
    services: dict[ResourceName, ServiceSpec] = Field(min_length=1)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    personalization: PersonalizationSpec | None = None
    batch_jobs: list[BatchJobSpec] = Field(default_factory=list)
    traffic: TrafficSpec | None = None
    alarm_emails: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("regions", mode="before")
    @classmethod
    def _names_to_objects(cls, regions: object) -> object:
        if not isinstance(regions, list):
            return regions
        return [{"name": r} if isinstance(r, str) else r for r in regions]

    def personalization_regions(self) -> list[str]:
        """Where the fine-tune queue and its endpoint run; none without the section."""
        if self.personalization is None:
            return []
        return list(self.personalization.regions or [self.regions[0].name])

    def batch_job_regions(self, job: BatchJobSpec) -> list[str]:
        """Where a batch job runs: a data set is scored once, so one region by default."""
        return list(job.regions or [self.regions[0].name])

    def pools_in(self, service: ServiceSpec, region: str) -> list[tuple[int, PoolSpec]]:
        """``(index in the spec, pool)`` of the pools of ``service`` that run in ``region``."""
        return [
            (index, pool)
            for index, pool in enumerate(service.pools)
            if pool.regions is None or region in pool.regions
        ]

    def account_of(self, region: RegionSpec) -> str | None:
        return region.account or self.account


# --- problems and how they are told -------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: YamlPath
    message: str


class FleetSpecError(ValueError):
    """A fleet file that cannot be used; the message lists every problem, one per line."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def parse_fleet_spec(document: YamlDocument, source: str) -> FleetSpec:
    """The schema only; :func:`inferfleet.infra.plan.build_plan` checks the rest."""
    if not isinstance(document.data, dict):
        raise FleetSpecError(
            f"{source}: the file must be a mapping with name, regions and services; "
            "run `inferfleet init` for an example"
        )
    try:
        return FleetSpec.model_validate(document.data)
    except ValidationError as error:
        problems = [_schema_problem(detail) for detail in error.errors()]
        raise FleetSpecError(describe_problems(problems, document, source), problems) from None


def load_fleet_document(path: Path | str) -> YamlDocument:
    path = Path(path)
    try:
        return load_yaml_file(path)
    except FileNotFoundError:
        raise FleetSpecError(
            f"{path}: no such file; pass --config with the path of your fleet file, "
            "or run `inferfleet init` to write an example"
        ) from None
    except YamlSourceError as error:
        raise FleetSpecError(error.located(str(path))) from None


def describe_problems(problems: list[Problem], document: YamlDocument, source: str) -> str:
    lines = []
    for problem in _unique(problems):
        line = document.line_of(problem.path)
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {dotted(problem.path)}: {problem.message}")
    count = len(lines)
    return f"{count} problem{'s' if count > 1 else ''} in {source}\n" + "\n".join(lines)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def dotted(path: YamlPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _schema_problem(detail: Any) -> Problem:
    location = tuple(detail["loc"])
    kind = detail["type"]
    given = detail.get("input")
    context = detail.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = location[:-1]
        return Problem(
            location,
            f"unknown key {location[-1]!r}; allowed here: {', '.join(_allowed_keys(parent))}",
        )
    if kind == "missing":
        return Problem(location, "required key is missing; add it")
    if kind == "literal_error":
        return Problem(
            location, f"{given!r} is not allowed; use one of {context.get('expected', '')}"
        )
    if kind == "string_pattern_mismatch":
        return Problem(location, f"{given!r} is not valid here; {_pattern_hint(location)}")
    message = detail["msg"].removeprefix("Value error, ")
    return Problem(location, f"{message} (got {given!r})" if given is not None else message)


def _pattern_hint(location: YamlPath) -> str:
    leaf = next((p for p in reversed(location) if isinstance(p, str)), "")
    if location[:1] == ("regions",) and leaf == "name":
        leaf = "regions"
    hints = {
        "name": "use lowercase letters, digits and hyphens, starting with a letter (2-32 chars)",
        "regions": "use a region name such as us-east-1",
        "services": "use lowercase letters, digits and hyphens, starting with a letter",
        "account": "use the 12-digit AWS account id",
        "artifact": "use an S3 URI like s3://my-bucket/models/llama",
        "model_artifact": "use an S3 URI like s3://my-bucket/models/pair-scorer/model.tar.gz",
        "home_region": "use a region name such as us-east-1",
        "id": "use a Route 53 hosted zone id like Z0123456789ABCDEFGHIJ",
    }
    return hints.get(leaf, "check the format")


def _allowed_keys(parent: YamlPath) -> list[str]:
    model: type[BaseModel] = FleetSpec
    parts = iter(parent)
    for part in parts:
        nested = _NESTED_MODELS.get((model, part))
        if nested is None:
            return []
        model, keyed = nested
        if keyed:  # skip the list index or mapping key that selects one item
            next(parts, None)
    return list(model.model_fields)


# (model, field) -> (model of the value, whether an index or key comes first)
_NESTED_MODELS: dict[tuple[type[BaseModel], str | int], tuple[type[BaseModel], bool]] = {
    (FleetSpec, "network"): (NetworkSpec, False),
    (FleetSpec, "regions"): (RegionSpec, True),
    (FleetSpec, "services"): (ServiceSpec, True),
    (ServiceSpec, "model"): (ModelSpec, False),
    (ServiceSpec, "pools"): (PoolSpec, True),
    (ServiceSpec, "container"): (ContainerSpec, False),
    (ServiceSpec, "health_check"): (HealthCheckSpec, False),
    (ServiceSpec, "autoscaling"): (AutoscalingSpec, False),
    (RegionSpec, "vpc"): (VpcSpec, False),
    (FleetSpec, "personalization"): (PersonalizationSpec, False),
    (FleetSpec, "batch_jobs"): (BatchJobSpec, True),
    (PersonalizationSpec, "endpoint"): (EndpointSpec, False),
    (EndpointSpec, "base_model"): (BaseModelSpec, False),
    (PersonalizationSpec, "queue"): (FinetuneQueueSpec, False),
    (FleetSpec, "traffic"): (TrafficSpec, False),
    (TrafficSpec, "zone"): (TrafficZoneSpec, False),
    (TrafficSpec, "services"): (TrafficServiceSpec, True),
}
