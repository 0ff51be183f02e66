"""A service of a fleet file as the planner and the simulator see it: its regions and pools.

Everything comes from the fleet plan (pools per region, TP degrees, replicas per instance,
``min``/``max``) and the spec's model; each pool gets the shipped server profile of its
model, dtype, instance type and TP degree (:func:`catalog.profile_for`) and a price.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inferfleet.cli.errors import UserError
from inferfleet.cli.sizing import catalog
from inferfleet.cli.sizing.autoscaling import ScalingPolicy
from inferfleet.cli.sizing.planner import PoolShape, RegionShape
from inferfleet.constructs.routing import Routing


@dataclass(frozen=True)
class FleetService:
    """One service of a fleet file: where it runs, how it routes, and the file itself."""

    path: Path
    text: str
    lines: dict
    service: str
    kind: str
    routing: Routing
    regions: tuple[RegionShape, ...]
    scaling: ScalingPolicy


def parse_weights(text: str, regions: tuple[str, ...]) -> dict[str, float]:
    """``us-east-1=2,eu-west-1=1``: traffic weights per region; unnamed regions weigh 1."""
    weights = dict.fromkeys(regions, 1.0)
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        name, separator, value = part.partition("=")
        name = name.strip()
        if not separator or name not in weights:
            raise UserError(
                f"--weights: {part!r} is not REGION=WEIGHT with a region of the fleet file "
                f"({', '.join(regions)}); e.g. --weights {regions[0]}=2"
            )
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not 0 <= weight <= 1e6:
            raise UserError(f"--weights: {part!r}: the weight must be a number from 0 to 1000000")
        weights[name] = weight
    if not any(weights.values()):
        raise UserError("--weights: every region weighs 0; give at least one a weight above 0")
    return weights


def fleet_service(
    config: Path,
    service: str | None,
    *,
    context_tokens: float,
    price: Callable[[str, str], float | None],
    weights: str | None = None,
) -> FleetService:
    """The service ``service`` (default: the fleet's only LLM service) of ``config``;
    ``weights`` as ``--weights`` takes them (a region of weight 0 is left out)."""
    from inferfleet.cli.commands.fleet import load_plan
    from inferfleet.infra.spec import FleetSpecError, load_fleet_document, parse_fleet_spec

    plan = load_plan(config)
    try:
        document = load_fleet_document(config)
        spec = parse_fleet_spec(document, str(config))
    except FleetSpecError as error:  # load_plan read the same file; only a race gets here
        raise UserError(str(error)) from None
    name = _service_name(spec, service, config)
    weight_of = parse_weights(weights or "", plan.region_names)
    spec_service = spec.services[name]
    model = spec_service.model
    regions = []
    routing = Routing.LEAST_OUTSTANDING_REQUESTS
    scaling: ScalingPolicy | None = None
    for region_plan in plan.regions:
        if not any(s.name == name for s in region_plan.services):
            continue
        props = region_plan.service(name).props
        routing = props.routing
        # The same service props in every region: its scaling policy is one.
        scaling = ScalingPolicy(
            requests_per_target_per_minute=props.requests_per_target_per_minute,
            scale_out_cooldown_s=props.scale_out_cooldown_s,
            scale_in_cooldown_s=props.scale_in_cooldown_s,
            startup_s=props.health_check_grace_period_s,
        )
        placed = spec.pools_in(spec_service, region_plan.region)
        total_max = sum(pool.max_capacity for pool in props.pools)
        pools = []
        for (spec_index, spec_pool), pool in zip(placed, props.pools, strict=True):
            instance = pool.instance
            profile = catalog.profile_for(
                kind=spec_service.kind,
                parameters_b=model.parameters_b,
                weights_dtype=model.weights_dtype,
                instance_type=pool.instance_type,
                tensor_parallel=pool.tensor_parallel,
                slots=model.max_batch_size if spec_service.kind == "llm" else None,
                context_tokens=context_tokens,
            )
            pools.append(
                PoolShape(
                    index=spec_index,
                    instance_type=pool.instance_type,
                    replicas_per_instance=pool.replicas_per_instance,
                    chips_per_instance=instance.chips,
                    profile=profile,
                    share=pool.max_capacity / total_max,
                    price_per_hour=price(region_plan.region, pool.instance_type),
                    current_min=spec_pool.min,
                    current_max=spec_pool.max,
                )
            )
        weight = weight_of[region_plan.region]
        if weight > 0:
            regions.append(RegionShape(region_plan.region, tuple(pools), weight))
    assert scaling is not None, "the plan places every service in some region"
    return FleetService(
        path=config,
        text=document.text,
        lines=document.lines,
        service=name,
        kind=spec_service.kind,
        routing=routing,
        regions=tuple(regions),
        scaling=scaling,
    )


def _service_name(spec, service: str | None, config: Path) -> str:  # type: ignore[no-untyped-def]
    names = list(spec.services)
    if service is not None:
        if service not in spec.services:
            raise UserError(
                f"--service {service}: no such service in {config}; use one of {', '.join(names)}"
            )
        return service
    llms = [name for name, s in spec.services.items() if s.kind == "llm"]
    if len(names) == 1:
        return names[0]
    if len(llms) == 1:
        return llms[0]
    raise UserError(
        f"--service: {config} has services {', '.join(names)}; name the one to size "
        f"with --service, e.g. --service {names[0]}"
    )
