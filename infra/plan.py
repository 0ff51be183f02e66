"""What a valid spec will create, in numbers people check before deploying."""

from dataclasses import asdict, dataclass

from inferfleet.constructs.neuron_instances import neuron_instance_type
from inferfleet.infra.naming import regional_stack_name
from inferfleet.infra.spec import FleetSpec, replica_memory


@dataclass(frozen=True)
class PoolPlan:
    service: str
    instance_type: str
    tensor_parallel: int
    neuron_cores: int
    replicas_per_instance: int
    replica_need_gib: float
    replica_available_gib: float
    min_instances: int
    max_instances: int


@dataclass(frozen=True)
class FleetPlan:
    name: str
    stacks: list[str]
    regions: list[str]
    pools: list[PoolPlan]

    def as_dict(self) -> dict:
        return asdict(self)


def fleet_plan(spec: FleetSpec) -> FleetPlan:
    pools = []
    for name, service in spec.services.items():
        for pool in service.pools:
            instance = neuron_instance_type(pool.instance_type)
            need = replica_memory(service, pool.tensor_parallel)
            pools.append(
                PoolPlan(
                    service=name,
                    instance_type=pool.instance_type,
                    tensor_parallel=pool.tensor_parallel,
                    neuron_cores=instance.neuron_cores,
                    replicas_per_instance=instance.neuron_cores // pool.tensor_parallel,
                    replica_need_gib=round(need.total_gib, 1),
                    replica_available_gib=round(instance.core_memory_gib * pool.tensor_parallel, 1),
                    min_instances=pool.min,
                    max_instances=pool.max,
                )
            )
    regions = [region.name for region in spec.regions]
    return FleetPlan(
        name=spec.name,
        stacks=[regional_stack_name(spec.name, region) for region in regions],
        regions=regions,
        pools=pools,
    )
