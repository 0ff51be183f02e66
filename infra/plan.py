"""The fleet plan: everything a fleet file will create, resolved once, without aws_cdk.

::

    fleet.yaml ─► FleetSpec ─► build_plan ─► FleetPlan
                                               ├─ RegionPlan per region: stack name, account,
                                               │  zones, cluster props, a ServicePlan per service
                                               │  (model-service props, pool figures) and the
                                               │  personalization props and the batch jobs
                                               │  that run there
                                               ├─ batch_jobs (planned once for every region)
                                               ├─ deploy_order (canary first)
                                               └─ global_plan (filled by a traffic section)

Every default, name, limit and derived value is decided here or in the props it fills; the
stacks, the CLI and the containers read the plan. Building it checks every rule — the fleet
file's own (:mod:`inferfleet.infra.fleet_rules`), each props object's ``problems()``, device
memory — so whatever the plan accepts, the app builds.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES
from inferfleet.constructs.props.batch_inference import NeuronBatchInferenceProps
from inferfleet.constructs.props.finetune_queue import AdapterComponents, FinetuneQueueProps
from inferfleet.constructs.props.global_traffic import (
    GlobalTrafficProps,
    TrafficEndpoint,
    TrafficService,
    deploy_time,
)
from inferfleet.constructs.props.model_service import (
    HealthCheck,
    NeuronModelServiceProps,
    NeuronPool,
)
from inferfleet.constructs.props.problems import PropsProblem
from inferfleet.constructs.props.sagemaker_endpoint import HostingMode, SageMakerEndpointProps
from inferfleet.constructs.props.serving_cluster import ImportedVpc, NeuronServingClusterProps
from inferfleet.constructs.traffic_controller.config import GLOBAL_ACCELERATOR
from inferfleet.constructs.traffic_controller.weights import WeightPolicy
from inferfleet.containers.common.serving_env import LlmEngineEnv
from inferfleet.infra import capacity, names
from inferfleet.infra.fleet_rules import fleet_problems
from inferfleet.infra.spec import (
    BaseModelSpec,
    BatchJobSpec,
    EndpointSpec,
    FleetSpec,
    FleetSpecError,
    PersonalizationSpec,
    Problem,
    RegionSpec,
    ServiceSpec,
    TrafficSpec,
    describe_problems,
    dotted,
    load_fleet_document,
    parse_fleet_spec,
)
from inferfleet.infra.stack_limits import MAX_PARAMETERS, limit_problems, resources_upper_bound
from inferfleet.infra.yaml_source import YamlPath

# Compute dtype of the serving engine; int8 is weight-only, activations stay bf16.
ENGINE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "int8": "bfloat16"}
DEFAULT_MAX_AZS = 3


@dataclass(frozen=True)
class PoolPlan:
    """The figures people check per pool before deploying."""

    instance_type: str
    tensor_parallel: int
    neuron_cores: int
    replicas_per_instance: int
    replica_need_gib: float
    replica_available_gib: float
    min_instances: int
    max_instances: int


@dataclass(frozen=True)
class TrafficOutputs:
    """Outputs of a service behind the traffic layer, which the global stack reads."""

    load_balancer: dict[str, str]  # what (names.service_load_balancer_outputs) -> output key
    # one per pool of the service's props, in order: outputs every service has
    # (names.pool_outputs), which the traffic layer reads too
    auto_scaling_groups: tuple[str, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The outputs the traffic layer adds to the regional stack."""
        return tuple(self.load_balancer.values())


@dataclass(frozen=True)
class ServicePlan:
    name: str
    props: NeuronModelServiceProps
    pools: tuple[PoolPlan, ...]
    endpoint_output: str
    target_group_output: str
    traffic_outputs: TrafficOutputs | None = None


@dataclass(frozen=True)
class PersonalizationPlan:
    """The endpoint and the fine-tune queue publishing to it; with inference components,
    ``adapters`` names the endpoint and base component the queue's adapters attach to."""

    endpoint: SageMakerEndpointProps
    queue: FinetuneQueueProps
    adapters: AdapterComponents | None = None


@dataclass(frozen=True)
class BatchJobPlan:
    """A periodic Batch Transform job, the same in every region it runs in.

    :param name: the job's name in the fleet file (``batch run --job NAME``).
    :param props: the construct's props; ``props.name`` (fleet and job) starts its
        transform jobs' names.
    :param regions: where it runs.
    :param state_machine_output: the stack output holding its state machine's ARN.
    """

    name: str
    props: NeuronBatchInferenceProps
    regions: tuple[str, ...]
    state_machine_output: str


@dataclass(frozen=True)
class RegionPlan:
    region: str
    account: str | None
    stack_name: str
    description: str
    availability_zones: tuple[str, ...] | None
    cluster: NeuronServingClusterProps
    services: tuple[ServicePlan, ...]
    personalization: PersonalizationPlan | None
    tags: dict[str, str]
    untagged_resource_types: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    batch_jobs: tuple[BatchJobPlan, ...] = ()

    def service(self, name: str) -> ServicePlan:
        return next(service for service in self.services if service.name == name)

    @property
    def resources_upper_bound(self) -> int:
        """At most this many resources in the stack (CloudFormation takes 500)."""
        return resources_upper_bound(self)

    @property
    def behind_traffic(self) -> bool:
        """Whether a service of this region is behind the fleet's traffic layer."""
        return any(service.traffic_outputs is not None for service in self.services)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every output key the stack has."""
        keys = [names.CLUSTER_NAME]
        for service in self.services:
            keys += [service.endpoint_output, service.target_group_output]
            for pool in service.props.pools:
                keys += names.pool_outputs(service.name, pool.instance_type)
            if service.traffic_outputs is not None:
                keys += service.traffic_outputs.keys
        if self.behind_traffic:
            keys.append(names.VPC_ID)
        if self.personalization is not None:
            keys += names.PERSONALIZATION_OUTPUTS
            if self.personalization.adapters is not None:
                keys.append(names.PERSONALIZATION_BASE_COMPONENT)
        keys += [job.state_machine_output for job in self.batch_jobs]
        return tuple(keys)


@dataclass(frozen=True)
class GlobalParameter:
    """A parameter of the global stack, filled at deploy time from a regional stack's output.

    CloudFormation resolves no reference across regions, and CDK's ``crossRegionReferences``
    writes them through a Lambda-backed custom resource, which moto cannot run. The regional
    ALBs' ARNs and DNS names are only known once those stacks exist, so `deploy` reads the
    outputs of the regions (after deploying them) and passes them as parameters. Synth needs
    none of them, and it works the same in moto. What can be named in advance (the health
    alarms) is named in :mod:`inferfleet.infra.names` instead.
    """

    name: str
    region: str
    stack: str
    output: str


@dataclass(frozen=True)
class GlobalPlan:
    """The traffic layer: one stack in the home region, after the regions it points at."""

    stack_name: str
    region: str
    account: str | None
    description: str
    props: GlobalTrafficProps
    parameters: tuple[GlobalParameter, ...]
    tags: dict[str, str]
    untagged_resource_types: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    @property
    def outputs(self) -> tuple[str, ...]:
        return (
            names.GLOBAL_HOSTED_ZONE_ID,
            *(names.traffic_record_output(s.name) for s in self.props.services),
        )

    def parameter_values(self, outputs_by_stack: dict[str, dict[str, str]]) -> dict[str, str]:
        """Each parameter's value from the regional stacks' outputs (stack -> key -> value);
        a missing one raises KeyError naming the stack and output."""
        values = {}
        for parameter in self.parameters:
            try:
                values[parameter.name] = outputs_by_stack[parameter.stack][parameter.output]
            except KeyError:
                raise KeyError(f"{parameter.stack} has no output {parameter.output}") from None
        return values


@dataclass(frozen=True)
class PlanWarning:
    """Accepted, but worth a second look: ``validate`` prints it with its file and line."""

    path: YamlPath
    message: str
    line: int | None = None

    @property
    def field(self) -> str:
        return dotted(self.path)

    def located(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True)
class FleetPlan:
    name: str
    regions: tuple[RegionPlan, ...]
    deploy_order: tuple[str, ...]
    personalization_regions: tuple[str, ...]
    emulator: bool = False
    global_plan: GlobalPlan | None = None
    warnings: tuple[PlanWarning, ...] = ()
    batch_jobs: tuple[BatchJobPlan, ...] = ()

    def batch_job(self, name: str) -> BatchJobPlan:
        for job in self.batch_jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    def region(self, name: str) -> RegionPlan:
        for region in self.regions:
            if region.region == name:
                return region
        raise KeyError(name)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(region.region for region in self.regions)

    @property
    def stacks(self) -> tuple[str, ...]:
        """Every stack of the fleet, in deploy order."""
        return self.deploy_order

    def as_dict(self) -> dict[str, Any]:
        planned = json.loads(json.dumps(asdict(self), default=str))
        for region, shown in zip(self.regions, planned["regions"], strict=True):
            shown["resources_upper_bound"] = region.resources_upper_bound
        return planned


class PlanError(FleetSpecError):
    """A fleet spec the plan cannot be built from; ``problems`` carry their YAML paths."""


# --- building --------------------------------------------------------------------------------


def load_fleet_plan(path: Path | str, *, emulator: bool = False) -> FleetPlan:
    """Read, check and plan a fleet file; every problem is named with its file and line."""
    path = Path(path)
    document = load_fleet_document(path)
    spec = parse_fleet_spec(document, str(path))
    try:
        plan = build_plan(spec, config_dir=path.parent, emulator=emulator)
    except PlanError as error:
        raise PlanError(
            describe_problems(error.problems, document, str(path)), error.problems
        ) from None
    located = tuple(replace(w, line=document.line_of(w.path)) for w in plan.warnings)
    return replace(plan, warnings=located)


def build_plan(
    spec: FleetSpec, *, config_dir: Path = Path("."), emulator: bool = False
) -> FleetPlan:
    """The plan of ``spec``; raises :class:`PlanError` listing every problem."""
    plan, problems = draft_plan(spec, config_dir=config_dir)
    if emulator and spec.traffic is not None and spec.traffic.mode == GLOBAL_ACCELERATOR:
        problems.append(
            Problem(
                ("traffic", "mode"),
                "global_accelerator cannot be deployed to an emulator (moto has no Global "
                "Accelerator); use mode route53 there",
            )
        )
    if problems:
        raise PlanError(f"{len(problems)} problems", problems)
    if emulator:
        from inferfleet.infra.emulator import emulated, emulated_global

        plan = replace(
            plan,
            regions=tuple(emulated(r) for r in plan.regions),
            global_plan=emulated_global(plan.global_plan) if plan.global_plan else None,
            emulator=True,
        )
    return plan


def draft_plan(spec: FleetSpec, *, config_dir: Path = Path(".")) -> tuple[FleetPlan, list[Problem]]:
    """The plan as the fleet file says it, and every problem with it, unchecked.

    Only for tools that must see both (a test that builds what validation would refuse);
    everything else calls :func:`build_plan`.
    """
    problems = fleet_problems(spec)
    recorded = _recorded_context(config_dir)
    personalization = None
    if spec.personalization is not None:
        personalization = _personalization(spec, spec.personalization, problems)
    batch_jobs = _batch_jobs(spec, problems)
    regions = []
    warnings: list[Problem] = []
    for index, region in enumerate(spec.regions):
        planner = _RegionPlanner(spec, region, index, config_dir, recorded)
        region_plan = planner.plan(
            personalization if region.name in spec.personalization_regions() else None
        )
        regions.append(
            replace(
                region_plan,
                batch_jobs=tuple(job for job in batch_jobs if region.name in job.regions),
            )
        )
        problems += planner.problems
        warnings += planner.warnings
        problems += [Problem(planner.path, m) for m in limit_problems(regions[-1])]
    global_plan = None
    if spec.traffic is not None:
        global_plan = _global_plan(spec, spec.traffic, tuple(regions), problems)
    plan = FleetPlan(
        name=spec.name,
        regions=tuple(regions),
        # The global stack points at the regions' load balancers, so it comes after them.
        deploy_order=(
            *(region.stack_name for region in regions),
            *((global_plan.stack_name,) if global_plan else ()),
        ),
        personalization_regions=tuple(spec.personalization_regions()),
        batch_jobs=batch_jobs,
        global_plan=global_plan,
        # The same service in every region warns once.
        warnings=tuple(PlanWarning(w.path, w.message) for w in dict.fromkeys(warnings)),
    )
    return plan, problems


def _recorded_context(config_dir: Path) -> dict[str, Any]:
    path = config_dir / names.CONTEXT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise FleetSpecError(
            f"{path}: not readable JSON ({error}); fix it, or delete it to let `cdk synth` "
            "record the zones again"
        ) from None


def zones_context_key(account: str, region: str) -> str:
    """The context key under which the CDK looks up a region's zones."""
    return f"availability-zones:account={account}:region={region}"


class _RegionPlanner:
    """Plans one region and collects its problems with their YAML paths."""

    def __init__(
        self,
        spec: FleetSpec,
        region: RegionSpec,
        index: int,
        config_dir: Path,
        recorded: dict[str, Any],
    ) -> None:
        self.spec = spec
        self.region = region
        self.path: YamlPath = ("regions", index)
        self.config_dir = config_dir
        self.recorded = recorded
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def plan(self, personalization: PersonalizationPlan | None) -> RegionPlan:
        spec, region = self.spec, self.region
        account = spec.account_of(region)
        zones = self._zones(account)
        cluster = self._cluster(zones)
        services = tuple(
            self._service(name, service, cluster) for name, service in spec.services.items()
        )
        return RegionPlan(
            region=region.name,
            account=account,
            stack_name=names.regional_stack_name(spec.name, region.name),
            description=f"inferfleet {spec.name}: model serving in {region.name}",
            availability_zones=zones,
            cluster=cluster,
            services=services,
            personalization=personalization,
            tags={names.FLEET_TAG_KEY: spec.name, **spec.tags},
        )

    # -- parts --------------------------------------------------------------------------------

    def _zones(self, account: str | None) -> tuple[str, ...] | None:
        region = self.region
        given = region.vpc.availability_zones if region.vpc else region.availability_zones
        if given:
            return tuple(given)
        if account is None:
            return None
        recorded = self.recorded.get(zones_context_key(account, region.name))
        if recorded:
            return tuple(recorded[:DEFAULT_MAX_AZS])
        self.problems.append(
            Problem(
                self.path,
                f"with account {account}, synth would look up the zones of {region.name} in "
                "AWS; give them here (availability_zones: [...]) or record them in "
                f"{self.config_dir / names.CONTEXT_FILE} (run `cdk synth` once with credentials)",
            )
        )
        return None

    def _cluster(self, zones: tuple[str, ...] | None) -> NeuronServingClusterProps:
        spec, region = self.spec, self.region
        vpc = region.vpc
        props = NeuronServingClusterProps(
            vpc=ImportedVpc(
                vpc_id=vpc.vpc_id,
                cidr=vpc.cidr,
                availability_zones=tuple(vpc.availability_zones),
                private_subnet_ids=tuple(vpc.private_subnet_ids),
                public_subnet_ids=tuple(vpc.public_subnet_ids),
            )
            if vpc
            else None,
            availability_zones=zones if not vpc else None,
            max_azs=len(zones) if zones else DEFAULT_MAX_AZS,
            nat_gateways=None if vpc else spec.network.nat_gateways,
            alarm_emails=tuple(spec.alarm_emails),
        )
        self._report(props.problems(), self._cluster_path)
        return props

    def _cluster_path(self, parts: tuple) -> YamlPath:
        head, rest = parts[0], parts[1:]
        if head == "vpc":
            return (*self.path, "vpc", *rest)
        if head in ("availability_zones", "max_azs"):
            return (*self.path, "availability_zones", *rest)
        if head == "nat_gateways":
            return ("network", "nat_gateways")
        if head == "alarm_emails":
            return ("alarm_emails", *rest)
        return self.path

    def _service(
        self, name: str, service: ServiceSpec, cluster: NeuronServingClusterProps
    ) -> ServicePlan:
        region = self.region
        placed = self.spec.pools_in(service, region.name)
        model = service.model
        container = service.container
        health = service.health_check
        autoscaling = service.autoscaling
        asset_path = (
            str((self.config_dir / container.asset_path).resolve())
            if container.asset_path
            else None
        )
        props = NeuronModelServiceProps(
            pools=tuple(
                NeuronPool(
                    instance_type=pool.instance_type,
                    tensor_parallel=pool.tensor_parallel,
                    min_capacity=pool.min,
                    max_capacity=pool.max,
                )
                for _, pool in placed
            ),
            kind=service.kind,
            engine=LlmEngineEnv(
                max_seq_len=model.max_sequence_length,
                max_num_seqs=model.max_batch_size,
                quantization="int8" if model.weights_dtype == "int8" else "none",
                dtype=ENGINE_DTYPES[model.weights_dtype],
            )
            if service.kind == "llm"
            else None,
            image_uri=container.image,
            image_asset_path=asset_path,
            environment=dict(container.environment),
            secrets=dict(container.secrets),
            model_artifact=model.artifact,
            weights_gib=capacity.weights_gib(model.parameters_b, model.weights_dtype),
            routing=service.routing,
            idle_timeout_s=service.stream_idle_timeout_s,
            deregistration_delay_s=service.deregistration_delay_s,
            health_check=HealthCheck(
                **_given(path=health.path),
                interval_s=health.interval_s,
                timeout_s=health.timeout_s,
                healthy_threshold=health.healthy_threshold,
                unhealthy_threshold=health.unhealthy_threshold,
            ),
            health_check_grace_period_s=health.grace_period_s,
            requests_per_target_per_minute=autoscaling.requests_per_target_per_minute,
            scale_in_cooldown_s=autoscaling.scale_in_cooldown_s,
            scale_out_cooldown_s=autoscaling.scale_out_cooldown_s,
            certificate_arn=region.certificate_arn,
            web_acl_arn=region.web_acl_arn,
            internet_facing=self.spec.network.internet_facing,
            allowed_cidrs=tuple(self.spec.network.allowed_cidrs),
            health_alarm_name=names.region_health_alarm_name(self.spec.name, region.name, name)
            if self._behind_traffic(name)
            else None,
            **_given(
                allow_plaintext_internet=self.spec.network.allow_plaintext_internet,
                protocol=service.protocol,
                container_port=container.port,
            ),
        ).resolved()
        spec_indices = [index for index, _ in placed]
        problems = props.problems(region=region.name, public_subnets=cluster.has_public_subnets)

        def to_yaml(parts: tuple) -> YamlPath:
            return self._service_path(name, spec_indices, parts)

        self._report(problems, to_yaml)
        _report(self.warnings, props.warnings(), to_yaml, self.path)
        pools = tuple(
            self._pool_plan(name, service, pool, spec_index)
            for pool, spec_index in zip(props.pools, spec_indices, strict=True)
            if pool.instance_type in NEURON_INSTANCE_TYPES
        )
        endpoint_output, target_group_output = names.service_outputs(name)
        traffic_outputs = (
            TrafficOutputs(
                load_balancer=names.service_load_balancer_outputs(name),
                auto_scaling_groups=tuple(
                    names.pool_outputs(name, pool.instance_type)[1] for pool in props.pools
                ),
            )
            if self._behind_traffic(name)
            else None
        )
        return ServicePlan(
            name, props, pools, endpoint_output, target_group_output, traffic_outputs
        )

    def _behind_traffic(self, service: str) -> bool:
        return self.spec.traffic is not None and service in self.spec.traffic.services

    def _service_path(self, service: str, spec_indices: list[int], parts: tuple) -> YamlPath:
        base: YamlPath = ("services", service)
        head, rest = parts[0], parts[1:]
        if head == "pools" and rest:
            index, *leaf = rest
            leaf = [_POOL_FIELDS.get(leaf[0], leaf[0]), *leaf[1:]] if leaf else []
            return (*base, "pools", spec_indices[index], *leaf)
        if head in ("certificate_arn", "web_acl_arn"):
            return (*self.path, head)
        if head in ("internet_facing", "allow_plaintext_internet", "allowed_cidrs"):
            return ("network", head, *rest)
        if head == "health_check":
            return (*base, "health_check", *rest)
        mapped = _SERVICE_FIELDS.get(head)
        return (*base, *mapped, *rest) if mapped else base

    def _pool_plan(
        self, name: str, service: ServiceSpec, pool: NeuronPool, spec_index: int
    ) -> PoolPlan:
        instance = pool.instance
        need = capacity.replica_memory_of(service, pool.tensor_parallel)
        have = capacity.available_gib(instance, pool.tensor_parallel)
        valid_degree = 1 <= pool.tensor_parallel <= instance.neuron_cores and not (
            instance.neuron_cores % pool.tensor_parallel
        )
        if valid_degree and need.total_gib > have:
            self.problems.append(
                Problem(
                    ("services", name, "pools", spec_index, "tensor_parallel"),
                    capacity.does_not_fit(service, pool, instance),
                )
            )
        return PoolPlan(
            instance_type=pool.instance_type,
            tensor_parallel=pool.tensor_parallel,
            neuron_cores=instance.neuron_cores,
            replicas_per_instance=pool.replicas_per_instance if valid_degree else 0,
            replica_need_gib=round(need.total_gib, 1),
            replica_available_gib=round(have, 1),
            min_instances=pool.min_capacity,
            max_instances=pool.max_capacity,
        )

    def _report(self, problems: list[PropsProblem], to_yaml) -> None:  # type: ignore[no-untyped-def]
        _report(self.problems, problems, to_yaml, self.path)


def _report(found: list[Problem], problems: list[PropsProblem], to_yaml, whole: YamlPath) -> None:  # type: ignore[no-untyped-def]
    """Props problems as fleet-file problems: ``to_yaml`` maps a props field to its YAML path."""
    for problem in problems:
        parts = _field_parts(problem.field)
        found.append(Problem(to_yaml(parts) if parts else whole, problem.message))


def _personalization(
    spec: FleetSpec, section: PersonalizationSpec, found: list[Problem]
) -> PersonalizationPlan:
    """The same in every region it runs in, so planned (and checked) once."""
    endpoint, queue = section.endpoint, section.queue
    endpoint_props = _endpoint_props(spec.name, endpoint)
    queue_props = FinetuneQueueProps(
        model_prefix=endpoint_props.model_prefix,
        training_job_prefix=names.training_job_prefix(spec.name),
        **_given(
            training_instance_type=queue.training_instance_type,
            training_image_uri=queue.training_image_uri,
            max_running_jobs=queue.max_running_jobs,
            create_calls_per_second=queue.create_calls_per_second,
            max_attempts=queue.max_attempts,
            batch_threshold=queue.batch_threshold,
            batch_tasks=queue.batch_tasks,
            batch_instances=queue.batch_instances,
        ),
    )
    section_path: YamlPath = ("personalization",)
    found += _scaling_field_problems(endpoint)
    _report(
        found,
        endpoint_props.problems(),
        lambda parts: _endpoint_path((*section_path, "endpoint"), parts),
        section_path,
    )
    _report(
        found,
        queue_props.problems(),
        lambda parts: (
            ("name",) if parts[0] == "training_job_prefix" else (*section_path, "queue", *parts)
        ),
        section_path,
    )
    adapters = (
        AdapterComponents(
            endpoint_name=endpoint_props.endpoint_name,  # type: ignore[arg-type]
            base_component_name=endpoint_props.base_component_name,  # type: ignore[arg-type]
        )
        if endpoint_props.components
        else None
    )
    return PersonalizationPlan(endpoint_props, queue_props, adapters)


HOSTING_MODES = {
    "multi_model": HostingMode.MULTI_MODEL,
    "inference_components": HostingMode.INFERENCE_COMPONENTS,
}


def _endpoint_props(fleet: str, endpoint: EndpointSpec) -> SageMakerEndpointProps:
    """The personalization endpoint; with inference components it and its base component are
    named here, since the queue's adapters and IAM policies name them before they exist."""
    mode = HOSTING_MODES[endpoint.hosting]
    components = mode is HostingMode.INFERENCE_COMPONENTS
    base = endpoint.base_model
    memory_gib = endpoint.memory_gib_per_copy
    return SageMakerEndpointProps(
        mode=mode,
        **_given(
            instance_type=endpoint.instance_type,
            min_capacity=endpoint.min,
            max_capacity=endpoint.max,
            max_instances=endpoint.max_instances,
            target_invocations_per_instance=endpoint.invocations_per_instance,
            target_concurrent_requests_per_copy=endpoint.concurrent_requests_per_copy,
            routing=endpoint.routing,
            image_uri=endpoint.image_uri,
            environment=endpoint.environment or None,
            model_artifact=base.artifact if base else None,
            base_model_memory_gib=base_model_memory_gib(base) if base else None,
            accelerators_per_copy=endpoint.accelerators_per_copy,
            memory_mb_per_copy=round(memory_gib * 1024) if memory_gib is not None else None,
            endpoint_name=names.personalization_endpoint_name(fleet) if components else None,
            base_component_name=names.base_component_name(fleet) if components else None,
        ),
    ).resolved()


def _scaling_field_problems(endpoint: EndpointSpec) -> list[Problem]:
    """Instances scale on invocations, inference-component copies on concurrency: a target
    for the other mode would be silently unused."""
    path: YamlPath = ("personalization", "endpoint")
    if endpoint.hosting == "inference_components" and endpoint.invocations_per_instance:
        return [
            Problem(
                (*path, "invocations_per_instance"),
                "inference components scale base-model copies on concurrent requests, not "
                "instances on invocations; use concurrent_requests_per_copy",
            )
        ]
    if endpoint.hosting == "multi_model" and endpoint.concurrent_requests_per_copy:
        return [
            Problem(
                (*path, "concurrent_requests_per_copy"),
                "is for hosting: inference_components; a multi-model endpoint scales instances "
                "on invocations_per_instance",
            )
        ]
    return []


def base_model_memory_gib(base: BaseModelSpec) -> float:
    """Accelerator memory one copy of the base model needs: its weights and its KV cache."""
    shape = capacity.default_decoder_shape(base.parameters_b)
    need = capacity.weights_gib(base.parameters_b, base.weights_dtype) + capacity.kv_cache_gib(
        shape, base.max_sequence_length, base.max_batch_size
    )
    return round(need, 1)


def _batch_jobs(spec: FleetSpec, found: list[Problem]) -> tuple[BatchJobPlan, ...]:
    """Each job planned (and checked) once, whatever the regions it runs in."""
    fleet_regions = [region.name for region in spec.regions]
    first_of: dict[str, int] = {}
    outputs: dict[str, int] = {}
    plans = []
    for index, job in enumerate(spec.batch_jobs):
        path: YamlPath = ("batch_jobs", index)
        if job.name in first_of:
            found.append(
                Problem(
                    (*path, "name"),
                    f"{job.name!r} is also the name of batch_jobs[{first_of[job.name]}]; give "
                    "each job its own name",
                )
            )
        first_of.setdefault(job.name, index)
        output = names.batch_state_machine(job.name)
        if output in outputs and spec.batch_jobs[outputs[output]].name != job.name:
            found.append(
                Problem(
                    (*path, "name"),
                    f"{job.name!r} and batch_jobs[{outputs[output]}] "
                    f"({spec.batch_jobs[outputs[output]].name!r}) give one stack output, "
                    f"{output}; rename one (hyphens do not tell names apart there)",
                )
            )
        outputs.setdefault(output, index)
        for at, region in enumerate(job.regions or []):
            if region not in fleet_regions:
                found.append(
                    Problem(
                        (*path, "regions", at),
                        f"{region} is not a region of the fleet; use one of "
                        + ", ".join(fleet_regions),
                    )
                )
        regions = spec.batch_job_regions(job)
        if len(set(regions)) != len(regions):
            found.append(Problem((*path, "regions"), "a region is listed twice; list it once"))
        props = _batch_props(spec, job)

        def to_yaml(parts: tuple, path: YamlPath = path) -> YamlPath:
            return (*path, parts[0]) if parts[0] in BatchJobSpec.model_fields else path

        _report(found, props.problems(), to_yaml, path)
        plans.append(
            BatchJobPlan(
                name=job.name,
                props=props,
                regions=tuple(dict.fromkeys(regions)),
                state_machine_output=output,
            )
        )
    return tuple(plans)


def _batch_props(spec: FleetSpec, job: BatchJobSpec) -> NeuronBatchInferenceProps:
    return NeuronBatchInferenceProps(
        name=names.batch_job_prefix(spec.name, job.name),
        model_artifact=job.model_artifact,
        input_prefix=job.input_prefix,
        output_prefix=job.output_prefix,
        **_given(
            instance_type=job.instance_type,
            instance_count=job.instance_count,
            schedule=job.schedule,
            image_uri=job.image_uri,
            max_payload_mb=job.max_payload_mb,
            max_attempts=job.max_attempts,
            late_after_hours=job.late_after_hours,
            max_run_hours=job.max_run_hours,
            price_per_instance_hour=job.price_per_instance_hour,
        ),
    )


# --- the traffic layer -------------------------------------------------------------------

_TRAFFIC_FIELDS = {
    "mode": ("mode",),
    "period_s": ("period_s",),
    "record_ttl_s": ("record_ttl_s",),
    "zone_name": ("zone", "name"),
    "hosted_zone_id": ("zone", "id"),
    "services": ("services",),
}
# policy fields the traffic section sets for every service (the rest are per service)
_SECTION_POLICY_FIELDS = ("step", "floor")


def _global_plan(
    spec: FleetSpec, section: TrafficSpec, regions: tuple[RegionPlan, ...], found: list[Problem]
) -> GlobalPlan:
    """The global stack's props, built once from the traffic section and the regional plans."""
    path: YamlPath = ("traffic",)
    parameters: list[GlobalParameter] = []

    def from_output(region: RegionPlan, output: str) -> str:
        name = names.global_parameter(region.region, output)
        parameters.append(GlobalParameter(name, region.region, region.stack_name, output))
        return deploy_time(name)

    # Only what the mode reads becomes a parameter (an unused one is a lint warning).
    mode = section.mode or GlobalTrafficProps.mode
    reads = {
        "LoadBalancerArn": mode == GLOBAL_ACCELERATOR,
        "LoadBalancerDnsName": mode != GLOBAL_ACCELERATOR,
        "LoadBalancerZoneId": mode != GLOBAL_ACCELERATOR,
    }
    services = []
    listed = [name for name in section.services if name in spec.services]
    for name in section.services:
        if name not in spec.services:
            found.append(
                Problem(
                    (*path, "services", name),
                    f"{name!r} is not a service of this fleet; use one of "
                    f"{', '.join(spec.services)}",
                )
            )
    for name in listed:
        entry = section.services[name]
        endpoints = []
        for region in regions:
            service = region.service(name)
            outputs = service.traffic_outputs
            assert outputs is not None  # every listed service has them (_behind_traffic)
            lb = {
                what: from_output(region, key) if reads.get(what, True) else ""
                for what, key in outputs.load_balancer.items()
            }
            endpoints.append(
                TrafficEndpoint(
                    region=region.region,
                    load_balancer_arn=lb["LoadBalancerArn"],
                    load_balancer_full_name=lb["LoadBalancerFullName"],
                    target_group_full_name=lb["TargetGroupFullName"],
                    dns_name=lb["LoadBalancerDnsName"],
                    canonical_hosted_zone_id=lb["LoadBalancerZoneId"],
                    auto_scaling_group_names=tuple(
                        from_output(region, key) for key in outputs.auto_scaling_groups
                    ),
                    health_alarm_name=service.props.health_alarm_name or "",
                )
            )
        resolved = regions[0].service(name).props.resolved()
        policy = WeightPolicy(
            # The objective is the service's own latency alarm unless the section says.
            objective_s=entry.objective_s
            if entry.objective_s is not None
            else resolved.latency_alarm_p99_ms / 1000,
            requests_per_target_per_minute=resolved.requests_per_target_per_minute,
            **_given(step=section.step, floor=section.floor),
        )
        services.append(TrafficService(name, tuple(endpoints), policy, record_label=entry.record))

    zone = section.zone
    if mode == GLOBAL_ACCELERATOR and not spec.network.internet_facing:
        found.append(
            Problem(
                (*path, "mode"),
                "global_accelerator reaches internet-facing load balancers only, and "
                "network.internet_facing is false; use mode route53 (a private zone serves "
                "internal load balancers) or set network.internet_facing: true",
            )
        )
    if zone.id is not None and zone.private:
        found.append(
            Problem(
                (*path, "zone", "private"),
                "applies to a new zone; an existing zone keeps its own VPC associations "
                "(associate it with each region's VPC yourself); drop private",
            )
        )
    private = (
        zone.private
        if zone.private is not None
        else zone.id is None and not spec.network.internet_facing and mode != GLOBAL_ACCELERATOR
    )
    vpcs = (
        tuple(
            (
                region.cluster.vpc.vpc_id
                if region.cluster.vpc
                else from_output(region, names.VPC_ID),
                region.region,
            )
            for region in regions
        )
        if private and zone.id is None
        else ()
    )
    home = section.home_region or regions[0].region
    if home not in (region.region for region in regions):
        found.append(
            Problem(
                (*path, "home_region"),
                f"{home} is not a region of this fleet; use one of "
                f"{', '.join(region.region for region in regions)}",
            )
        )
    props = GlobalTrafficProps(
        fleet=spec.name,
        services=tuple(services),
        zone_name=zone.name,
        private_zone_vpcs=vpcs,
        hosted_zone_id=zone.id,
        **_given(mode=mode, period_s=section.period_s, record_ttl_s=section.record_ttl_s),
    )
    index_of = {region.region: index for index, region in enumerate(regions)}

    def to_yaml(parts: tuple) -> YamlPath:
        head, rest = parts[0], parts[1:]
        if head == "private_zone_vpcs" and rest:
            return ("regions", index_of[vpcs[rest[0]][1]], "vpc", "vpc_id")
        if head == "services" and rest:
            service = services[rest[0]].name
            leaf = rest[1:]
            if leaf[:1] == ("policy",) and len(leaf) > 1:
                if leaf[1] in _SECTION_POLICY_FIELDS:
                    return (*path, leaf[1])
                return (
                    *path,
                    "services",
                    service,
                    *(("objective_s",) if leaf[1] == "objective_s" else ()),
                )
            if leaf[:1] == ("record_label",):
                return (*path, "services", service, "record")
            return (*path, "services", service)
        return (*path, *_TRAFFIC_FIELDS.get(head, ()))

    _report(found, props.problems(), to_yaml, path)
    if len(parameters) > MAX_PARAMETERS:
        found.append(
            Problem(
                (*path, "services"),
                f"the global stack would take {len(parameters)} parameters from the regional "
                f"stacks, over CloudFormation's {MAX_PARAMETERS}; put fewer services "
                "behind the traffic layer, or give them fewer pools",
            )
        )
    home_spec = next((r for r in spec.regions if r.name == home), spec.regions[0])
    return GlobalPlan(
        stack_name=names.global_stack_name(spec.name),
        region=home,
        account=spec.account_of(home_spec),
        description=f"inferfleet {spec.name}: traffic between {', '.join(index_of)}",
        props=props,
        parameters=tuple(parameters),
        tags={names.FLEET_TAG_KEY: spec.name, **spec.tags},
    )


# props field -> fleet-file field, where the names differ
_POOL_FIELDS = {"min_capacity": "min", "max_capacity": "max"}
_SERVICE_FIELDS: dict[str, tuple[str, ...]] = {
    "pools": ("pools",),
    "kind": ("kind",),
    "protocol": ("protocol",),
    "engine": ("model",),
    "image_uri": ("container", "image"),
    "image_asset_path": ("container", "asset_path"),
    "container_port": ("container", "port"),
    "environment": ("container", "environment"),
    "secrets": ("container", "secrets"),
    "model_artifact": ("model", "artifact"),
    "weights_gib": ("model", "parameters_b"),
    "routing": ("routing",),
    "idle_timeout_s": ("stream_idle_timeout_s",),
    "deregistration_delay_s": ("deregistration_delay_s",),
    "health_check_grace_period_s": ("health_check", "grace_period_s"),
    "requests_per_target_per_minute": ("autoscaling", "requests_per_target_per_minute"),
    "scale_in_cooldown_s": ("autoscaling", "scale_in_cooldown_s"),
    "scale_out_cooldown_s": ("autoscaling", "scale_out_cooldown_s"),
}
_ENDPOINT_FIELDS: dict[str, tuple[str, ...]] = {
    "mode": ("hosting",),
    "min_capacity": ("min",),
    "max_capacity": ("max",),
    "initial_instance_count": ("min",),
    "target_invocations_per_instance": ("invocations_per_instance",),
    "target_concurrent_requests_per_copy": ("concurrent_requests_per_copy",),
    "model_artifact": ("base_model", "artifact"),
    "base_model_memory_gib": ("base_model",),
    "memory_mb_per_copy": ("memory_gib_per_copy",),
}
# Named after the fleet: a bad name is the fleet's name.
_FLEET_NAMED = ("endpoint_name", "base_component_name")
_FIELD_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _field_parts(dotted_field: str) -> tuple[str | int, ...]:
    """``"pools[1].min_capacity"`` -> ``("pools", 1, "min_capacity")``."""
    return tuple(name if name else int(index) for name, index in _FIELD_PART.findall(dotted_field))


def _endpoint_path(endpoint: YamlPath, parts: tuple) -> YamlPath:
    head, rest = parts[0], parts[1:]
    if head in _FLEET_NAMED:
        return ("name",)
    return (*endpoint, *_ENDPOINT_FIELDS.get(head, (head,)), *rest)


def _given(**values: Any) -> dict[str, Any]:
    """The fields the fleet file sets; the rest keep the props' own defaults."""
    return {key: value for key, value in values.items() if value is not None}
