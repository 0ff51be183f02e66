"""The fleet spec: the YAML file users write, as pydantic models.

Validation happens in two passes. Pydantic checks the schema (types, allowed
values, ranges, unknown keys); :func:`fleet_problems` then checks what spans
fields (Neuron core counts, device memory, duplicates). Every problem carries the
YAML path it is about, so :func:`load_fleet_spec` can name the file, the line
and the field, and say the fix.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES, NeuronInstanceType
from inferfleet.infra import capacity
from inferfleet.infra.availability import offered_in
from inferfleet.infra.yaml_source import YamlDocument, YamlPath, YamlSourceError, load_yaml_file

Routing = Literal["least_outstanding_requests", "round_robin", "weighted_random"]
ServiceKind = Literal["llm", "classifier"]
WeightsDtype = Literal["bf16", "fp16", "int8"]

RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
ResourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """The model a service runs and the shape of its KV cache."""

    parameters_b: float = Field(gt=0, le=2000, description="Billions of parameters.")
    weights_dtype: WeightsDtype = "bf16"
    max_sequence_length: int = Field(4096, ge=16, le=131072)
    max_batch_size: int = Field(
        8, ge=1, le=1024, description="Sequences one replica decodes at once (continuous batching)."
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
    tensor_parallel: int = Field(ge=1)
    min: int = Field(1, ge=0, le=1000)
    max: int = Field(ge=1, le=1000)
    regions: list[RegionName] | None = Field(
        None, description="Regions this pool runs in; default every region of the fleet."
    )


class ContainerSpec(_Strict):
    """What runs in the task. Default: the built-in image for the service kind."""

    image: str | None = Field(None, description="Image URI in a registry.")
    asset_path: str | None = Field(
        None, description="Docker build context, relative to the fleet file."
    )
    port: int = Field(8000, ge=1, le=65535)
    environment: dict[str, str] = Field(default_factory=dict)


class HealthCheckSpec(_Strict):
    path: str = Field("/v2/health/ready", pattern=r"^/")
    interval_s: int = Field(30, ge=5, le=300)
    timeout_s: int = Field(10, ge=2, le=120)
    healthy_threshold: int = Field(2, ge=2, le=10)
    unhealthy_threshold: int = Field(3, ge=2, le=10)
    grace_period_s: int | None = Field(
        None, ge=0, le=14400, description="Default: sized from the weights to load and compile."
    )


class AutoscalingSpec(_Strict):
    requests_per_target_per_minute: int | None = Field(
        None, ge=1, description="ALB requests per target per minute to hold; default by kind."
    )
    scale_in_cooldown_s: int = Field(600, ge=0, le=3600)
    scale_out_cooldown_s: int = Field(60, ge=0, le=3600)


class ServiceSpec(_Strict):
    kind: ServiceKind
    model: ModelSpec
    routing: Routing = "least_outstanding_requests"
    pools: list[PoolSpec] = Field(min_length=1)
    container: ContainerSpec = Field(default_factory=ContainerSpec)
    health_check: HealthCheckSpec = Field(default_factory=HealthCheckSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    stream_idle_timeout_s: int | None = Field(
        None, ge=1, le=4000, description="ALB idle timeout; default 600 for llm, 60 otherwise."
    )
    deregistration_delay_s: int | None = Field(
        None, ge=0, le=3600, description="Time to drain streams; default 300 for llm, 30 otherwise."
    )


class VpcSpec(_Strict):
    """An existing VPC, described fully so nothing is looked up at synth."""

    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    cidr: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")
    availability_zones: list[str] = Field(min_length=2)
    private_subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]]
    public_subnet_ids: list[
        Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]
    ] = Field(default_factory=list)


class RegionSpec(_Strict):
    name: RegionName
    account: AccountId | None = None
    availability_zones: list[str] | None = Field(
        None, min_length=2, description="AZs for a new VPC; saves a lookup when account is set."
    )
    vpc: VpcSpec | None = None
    certificate_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$",
        description="ACM certificate of this region for HTTPS listeners.",
    )


class NetworkSpec(_Strict):
    internet_facing: bool = Field(
        False, description="Public load balancers; default internal, reached from the VPC."
    )
    allowed_cidrs: list[str] = Field(
        default_factory=list,
        description="Who may reach the load balancers; default the VPC's own CIDR.",
    )
    nat_gateways: int | None = Field(None, ge=0, le=6, description="Default one per AZ.")


class EndpointSpec(_Strict):
    """The SageMaker multi-model endpoint that serves every user's fine-tuned models."""

    instance_type: str = Field("ml.g5.2xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    min: int = Field(1, ge=1, le=100)
    max: int = Field(4, ge=1, le=100)
    invocations_per_instance: int = Field(
        100, ge=1, description="Target tracking: invocations per instance per minute."
    )
    routing: Literal["least_outstanding_requests", "random"] = "least_outstanding_requests"
    image_uri: str | None = Field(
        None, description="Serving image; default Triton from the SageMaker SDK's tables."
    )


class FinetuneQueueSpec(_Strict):
    training_instance_type: str = Field("ml.trn1.2xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    training_image_uri: str | None = Field(
        None, description="Training image; default built from containers/finetune."
    )
    max_running_jobs: int = Field(10, ge=1, le=1000)
    create_calls_per_second: float = Field(
        1.0, gt=0, le=10, description="Pace of CreateTrainingJob (about 1/s per account)."
    )
    max_attempts: int = Field(5, ge=1, le=50)
    batch_threshold: int = Field(
        0, ge=0, description="Queued jobs that start one multi-instance job; 0 never batches."
    )
    batch_tasks: int = Field(8, ge=2, le=1000)
    batch_instances: int = Field(2, ge=1, le=100)


class PersonalizationSpec(_Strict):
    """Per-user fine-tuning and one multi-model endpoint serving the results."""

    regions: list[RegionName] | None = Field(
        None, description="Where to deploy it; default the first region of the fleet."
    )
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    queue: FinetuneQueueSpec = Field(default_factory=FinetuneQueueSpec)


class FleetSpec(_Strict):
    name: ResourceName
    account: AccountId | None = Field(None, description="Default account of every region.")
    regions: list[RegionSpec] = Field(
        min_length=1, description="Region names, or objects with per-region settings."
    )
    services: dict[ResourceName, ServiceSpec] = Field(min_length=1)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    personalization: PersonalizationSpec | None = None
    alarm_emails: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = (
        Field(default_factory=list)
    )
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("regions", mode="before")
    @classmethod
    def _names_to_objects(cls, regions: object) -> object:
        if not isinstance(regions, list):
            return regions
        return [{"name": r} if isinstance(r, str) else r for r in regions]

    def personalized(self, region: str) -> bool:
        """Whether the fine-tune queue and multi-model endpoint run in ``region``."""
        if self.personalization is None:
            return False
        return region in (self.personalization.regions or [self.regions[0].name])

    def pools_in(self, service: ServiceSpec, region: str) -> list[PoolSpec]:
        return [p for p in service.pools if p.regions is None or region in p.regions]

    def region(self, name: str) -> RegionSpec:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)

    def account_of(self, region: RegionSpec) -> str | None:
        return region.account or self.account


# --- derived values shared by the stacks and the checks ------------------------


def decoder_shape(service: ServiceSpec) -> capacity.DecoderShape | None:
    if service.kind != "llm":
        return None
    model = service.model
    default = capacity.default_decoder_shape(model.parameters_b)
    return capacity.DecoderShape(
        layers=model.layers or default.layers,
        kv_heads=model.kv_heads or default.kv_heads,
        head_dim=model.head_dim or default.head_dim,
    )


def replica_memory(service: ServiceSpec, tensor_parallel: int) -> capacity.ReplicaMemory:
    model = service.model
    return capacity.replica_memory(
        parameters_b=model.parameters_b,
        weights_dtype=model.weights_dtype,
        shape=decoder_shape(service),
        max_sequence_length=model.max_sequence_length,
        max_batch_size=model.max_batch_size,
        tensor_parallel=tensor_parallel,
    )


def grace_period_s(service: ServiceSpec) -> int:
    """Health-check grace: container start, weight download at ~100 MiB/s, and a
    Neuron compile when the compile cache misses (~2 s per GiB of weights)."""
    if service.health_check.grace_period_s is not None:
        return service.health_check.grace_period_s
    weights = capacity.weights_gib(service.model.parameters_b, service.model.weights_dtype)
    return min(14400, 300 + math.ceil(weights * (10.24 + 2)))


# --- cross-field checks ----------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: YamlPath
    message: str


def fleet_problems(spec: FleetSpec) -> list[Problem]:
    problems: list[Problem] = []
    seen_regions: dict[str, int] = {}
    for index, region in enumerate(spec.regions):
        if region.name in seen_regions:
            problems.append(
                Problem(
                    ("regions", index),
                    f"region {region.name} is listed twice (also "
                    f"regions[{seen_regions[region.name]}]); list each region once",
                )
            )
        seen_regions.setdefault(region.name, index)
        problems.extend(_region_problems(region, ("regions", index)))
    for name, service in spec.services.items():
        problems.extend(_service_problems(service, ("services", name)))
        problems.extend(_placement_problems(spec, name, service))
    if spec.personalization:
        problems.extend(_personalization_problems(spec, spec.personalization))
    return problems


def _personalization_problems(spec: FleetSpec, section: PersonalizationSpec) -> list[Problem]:
    problems = []
    fleet_regions = [region.name for region in spec.regions]
    for region in section.regions or []:
        if region not in fleet_regions:
            problems.append(
                Problem(
                    ("personalization", "regions"),
                    f"{region} is not a region of the fleet; use some of "
                    f"{', '.join(fleet_regions)}",
                )
            )
    endpoint = section.endpoint
    if endpoint.min > endpoint.max:
        problems.append(
            Problem(
                ("personalization", "endpoint", "min"),
                f"min {endpoint.min} is greater than max {endpoint.max}; set min <= max",
            )
        )
    queue = section.queue
    if queue.batch_threshold and queue.batch_threshold < queue.batch_tasks:
        problems.append(
            Problem(
                ("personalization", "queue", "batch_threshold"),
                f"{queue.batch_threshold} queued jobs cannot fill a batch of batch_tasks "
                f"{queue.batch_tasks}; raise batch_threshold to at least {queue.batch_tasks}",
            )
        )
    return problems


def _placement_problems(spec: FleetSpec, name: str, service: ServiceSpec) -> list[Problem]:
    problems = []
    fleet_regions = [region.name for region in spec.regions]
    for index, pool in enumerate(service.pools):
        path = ("services", name, "pools", index)
        for region in pool.regions or fleet_regions:
            if region not in fleet_regions:
                problems.append(
                    Problem(
                        (*path, "regions"),
                        f"{region} is not a region of the fleet; use some of "
                        f"{', '.join(fleet_regions)}",
                    )
                )
            elif offered_in(pool.instance_type, region) is False:
                problems.append(
                    Problem(
                        (*path, "instance_type"),
                        f"{pool.instance_type} is not offered in {region}; limit the pool "
                        "with regions: [...] and serve that region from another pool",
                    )
                )
    for region in fleet_regions:
        if not spec.pools_in(service, region):
            problems.append(
                Problem(
                    ("services", name, "pools"),
                    f"no pool serves {region}; add {region} to a pool's regions",
                )
            )
    return problems


def _region_problems(region: RegionSpec, path: YamlPath) -> list[Problem]:
    problems = []
    if region.vpc and region.availability_zones:
        problems.append(
            Problem(
                (*path, "availability_zones"),
                "availability_zones is for a new VPC; with vpc set, "
                "give the zones in vpc.availability_zones",
            )
        )
    vpc = region.vpc
    if vpc:
        for key in ("private_subnet_ids", "public_subnet_ids"):
            subnets = getattr(vpc, key)
            if subnets and len(subnets) != len(vpc.availability_zones):
                problems.append(
                    Problem(
                        (*path, "vpc", key),
                        f"{len(subnets)} subnets for {len(vpc.availability_zones)} availability "
                        "zones; give one subnet per zone, in the order of vpc.availability_zones",
                    )
                )
        if not vpc.private_subnet_ids:
            problems.append(
                Problem(
                    (*path, "vpc", "private_subnet_ids"),
                    "an existing VPC needs private subnets for the instances; list one per zone",
                )
            )
    wrong_zones = [z for z in region.availability_zones or [] if not z.startswith(region.name)]
    if wrong_zones:
        problems.append(
            Problem(
                (*path, "availability_zones"),
                f"{', '.join(wrong_zones)} not in region {region.name}; "
                f"use zones like {region.name}a",
            )
        )
    return problems


def _service_problems(service: ServiceSpec, path: YamlPath) -> list[Problem]:
    problems = []
    seen_types: dict[str, int] = {}
    for index, pool in enumerate(service.pools):
        pool_path = (*path, "pools", index)
        instance = NEURON_INSTANCE_TYPES.get(pool.instance_type)
        if instance is None:
            problems.append(
                Problem(
                    (*pool_path, "instance_type"),
                    f"unknown instance type {pool.instance_type!r}; use one of: "
                    + ", ".join(NEURON_INSTANCE_TYPES),
                )
            )
            continue
        if pool.instance_type in seen_types:
            problems.append(
                Problem(
                    (*pool_path, "instance_type"),
                    f"a second pool of {pool.instance_type} (also "
                    f"pools[{seen_types[pool.instance_type]}]); merge them into one pool "
                    "with a wider min/max",
                )
            )
        seen_types.setdefault(pool.instance_type, index)
        if pool.min > pool.max:
            problems.append(
                Problem(
                    (*pool_path, "min"),
                    f"min {pool.min} is greater than max {pool.max}; set min <= max",
                )
            )
        problems.extend(_tensor_parallel_problems(service, pool, instance, pool_path))
    return problems


def _tensor_parallel_problems(
    service: ServiceSpec, pool: PoolSpec, instance: NeuronInstanceType, path: YamlPath
) -> list[Problem]:
    cores = instance.neuron_cores
    degrees = instance.tensor_parallel_degrees()
    if pool.tensor_parallel > cores:
        return [
            Problem(
                (*path, "tensor_parallel"),
                f"{pool.tensor_parallel} is more than the {cores} NeuronCores of "
                f"{instance.name}; use one of {', '.join(map(str, degrees))}",
            )
        ]
    if cores % pool.tensor_parallel:
        return [
            Problem(
                (*path, "tensor_parallel"),
                f"{pool.tensor_parallel} does not divide the {cores} NeuronCores of "
                f"{instance.name}; use one of {', '.join(map(str, degrees))}",
            )
        ]
    need = replica_memory(service, pool.tensor_parallel)
    have = capacity.available_gib(instance, pool.tensor_parallel)
    if need.total_gib <= have:
        return []
    fitting = [
        d
        for d in degrees
        if replica_memory(service, d).total_gib <= capacity.available_gib(instance, d)
    ]
    model = service.model
    fix = (
        f"raise tensor_parallel to {fitting[0]} or more"
        if fitting
        else f"no tensor_parallel degree fits on {instance.name}; use a larger instance type"
    )
    if model.weights_dtype != "int8":
        fix += ", use weights_dtype int8"
    if service.kind == "llm":
        fix += ", or lower model.max_batch_size / model.max_sequence_length"
    return [
        Problem(
            (*path, "tensor_parallel"),
            f"a replica needs {need.total_gib:.1f} GiB of device memory (weights "
            f"{need.weights_gib:.1f} GiB {model.weights_dtype}, KV cache "
            f"{need.kv_cache_gib:.1f} GiB for {model.max_batch_size} x "
            f"{model.max_sequence_length} tokens, runtime "
            f"{need.runtime_gib:.1f} GiB) but tensor_parallel {pool.tensor_parallel} on "
            f"{instance.name} gives {have:.0f} GiB ({pool.tensor_parallel} NeuronCores x "
            f"{instance.core_memory_gib:.0f} GiB); {fix}",
        )
    ]


# --- loading ------------------------------------------------------------------


class FleetSpecError(ValueError):
    """A fleet file that cannot be used; the message lists every problem, one per line."""


def parse_fleet_spec(document: YamlDocument, source: str) -> FleetSpec:
    if not isinstance(document.data, dict):
        raise FleetSpecError(
            f"{source}: the file must be a mapping with name, regions and services; "
            "run `inferfleet init` for an example"
        )
    try:
        spec = FleetSpec.model_validate(document.data)
    except ValidationError as error:
        problems = [_schema_problem(detail) for detail in error.errors()]
        raise FleetSpecError(_describe(problems, document, source)) from None
    problems = fleet_problems(spec)
    if problems:
        raise FleetSpecError(_describe(problems, document, source))
    return spec


def load_fleet_spec(path: Path | str) -> FleetSpec:
    path = Path(path)
    try:
        document = load_yaml_file(path)
    except FileNotFoundError:
        raise FleetSpecError(
            f"{path}: no such file; pass --config with the path of your fleet file, "
            "or run `inferfleet init` to write an example"
        ) from None
    except YamlSourceError as error:
        raise FleetSpecError(error.located(str(path))) from None
    return parse_fleet_spec(document, str(path))


def _describe(problems: list[Problem], document: YamlDocument, source: str) -> str:
    lines = []
    for problem in problems:
        line = document.line_of(problem.path)
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {_dotted(problem.path)}: {problem.message}")
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in {source}"
    return count + "\n" + "\n".join(lines)


def _dotted(path: YamlPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _schema_problem(detail: dict) -> Problem:
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
        "vpc_id": "use an id like vpc-0abc12345def67890",
        "cidr": "use a CIDR like 10.0.0.0/16",
        "artifact": "use an S3 URI like s3://my-bucket/models/llama",
        "certificate_arn": "use an ACM certificate ARN of the same region",
        "instance_type": "use a SageMaker instance type like ml.g5.2xlarge",
        "training_instance_type": "use a SageMaker instance type like ml.trn1.2xlarge",
        "alarm_emails": "use an e-mail address",
        "path": "start the path with /",
    }
    if leaf in hints:
        return hints[leaf]
    if leaf.endswith("subnet_ids"):
        return "use subnet ids like subnet-0abc1234"
    return "check the format"


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
    (PersonalizationSpec, "endpoint"): (EndpointSpec, False),
    (PersonalizationSpec, "queue"): (FinetuneQueueSpec, False),
}
