"""Rules of a fleet file that span fields or regions, and the AWS limits no construct sees.

Each rule returns :class:`~inferfleet.infra.spec.Problem` items with the YAML path they are
about. The rules the constructs enforce are not here: the plan asks each props object.
"""

from __future__ import annotations

import re

from inferfleet.infra import names
from inferfleet.infra.availability import known_regions, offered_in, zones_of
from inferfleet.infra.spec import FleetSpec, Problem, RegionSpec

# AWS allows 50 tags per resource; inferfleet adds its own fleet tag to every one.
MAX_USER_TAGS = 50 - 1
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$", re.UNICODE)


def fleet_problems(spec: FleetSpec) -> list[Problem]:
    problems = _region_list_problems(spec)
    for index, region in enumerate(spec.regions):
        problems += _region_problems(region, ("regions", index))
    for name, service in spec.services.items():
        problems += _placement_problems(spec, name, service)
    problems += _personalization_region_problems(spec)
    problems += _tag_problems(spec.tags)
    problems += _output_key_problems(spec)
    return problems


def _region_list_problems(spec: FleetSpec) -> list[Problem]:
    problems = []
    seen: dict[str, int] = {}
    regions = known_regions()
    for index, region in enumerate(spec.regions):
        if region.name in seen:
            problems.append(
                Problem(
                    ("regions", index),
                    f"region {region.name} is listed twice (also regions[{seen[region.name]}]); "
                    "list each region once",
                )
            )
        seen.setdefault(region.name, index)
        if region.name not in regions:
            problems.append(
                Problem(
                    ("regions", index, "name"),
                    f"{region.name} is not an AWS region; use one of "
                    + ", ".join(sorted(r for r in regions if not r.startswith(("cn-", "us-gov"))))
                    + " (and the cn- and us-gov- regions)",
                )
            )
    return problems


def _region_problems(region: RegionSpec, path: tuple) -> list[Problem]:
    problems = []
    if region.vpc and region.availability_zones:
        problems.append(
            Problem(
                (*path, "availability_zones"),
                "availability_zones is for a new VPC; with vpc set, give the zones in "
                "vpc.availability_zones",
            )
        )
    zones_path = (
        (*path, "vpc", "availability_zones") if region.vpc else (*path, "availability_zones")
    )
    zones = region.vpc.availability_zones if region.vpc else region.availability_zones or []
    known = zones_of(region.name)
    for index, zone in enumerate(zones):
        if not zone.startswith(region.name) or not re.fullmatch(r"[a-z]", zone[len(region.name) :]):
            problems.append(
                Problem(
                    (*zones_path, index),
                    f"{zone} is not a zone of region {region.name}; use zones like {region.name}a",
                )
            )
        elif known is not None and zone not in known:
            problems.append(
                Problem(
                    (*zones_path, index),
                    f"{region.name} has no zone {zone}; its zones are " + ", ".join(sorted(known)),
                )
            )
    return problems


def _placement_problems(spec: FleetSpec, name: str, service) -> list[Problem]:  # type: ignore[no-untyped-def]
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


def _personalization_region_problems(spec: FleetSpec) -> list[Problem]:
    if spec.personalization is None:
        return []
    fleet_regions = [region.name for region in spec.regions]
    return [
        Problem(
            ("personalization", "regions", index),
            f"{region} is not a region of the fleet; use some of {', '.join(fleet_regions)}",
        )
        for index, region in enumerate(spec.personalization.regions or [])
        if region not in fleet_regions
    ]


def _tag_problems(tags: dict[str, str]) -> list[Problem]:
    problems = []
    if len(tags) > MAX_USER_TAGS:
        problems.append(
            Problem(
                ("tags",),
                f"{len(tags)} tags; AWS allows 50 per resource and inferfleet adds "
                f"{names.FLEET_TAG_KEY}, so keep at most {MAX_USER_TAGS}",
            )
        )
    for key, value in tags.items():
        path = ("tags", key)
        if key.lower().startswith("aws:"):
            problems.append(Problem(path, f"{key!r}: tag keys starting with aws: are reserved"))
        if key == names.FLEET_TAG_KEY:
            problems.append(Problem(path, f"{key!r} is set by inferfleet; choose another key"))
        if not 1 <= len(key) <= MAX_TAG_KEY or not _TAG_TEXT.match(key):
            problems.append(
                Problem(
                    path,
                    f"{key!r}: tag keys are 1-{MAX_TAG_KEY} letters, digits, spaces and "
                    "_ . : / = + - @",
                )
            )
        if len(value) > MAX_TAG_VALUE or not _TAG_TEXT.match(value):
            problems.append(
                Problem(
                    path,
                    f"the value of {key!r}: tag values are up to {MAX_TAG_VALUE} letters, "
                    "digits, spaces and _ . : / = + - @",
                )
            )
    return problems


def _output_key_problems(spec: FleetSpec) -> list[Problem]:
    owners: dict[str, str] = {}
    problems = []
    for service in spec.services:
        for key in names.service_outputs(service):
            if key in owners and owners[key] != service:
                problems.append(
                    Problem(
                        ("services", service),
                        f"service names {owners[key]!r} and {service!r} give the same stack "
                        f"output {key}; rename one",
                    )
                )
            owners[key] = service
    return problems
