"""Which regions, zones and instance types exist, from data shipped with the packages.

cfn-lint refreshes these lists from the CloudFormation registry with every
release; reusing them keeps spec validation and the lint gate in agreement.
"""

import json
from functools import cache
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

# Read as a file: importing cfnlint's package costs over a second.
_ENUM = "data/schemas/extensions/aws_ec2_instance/instancetype_enum.json"
_ZONES = "data/availability_zones.json"


def data_files() -> tuple[Path, ...]:
    """The files these answers are read from: what a record of a plan depends on."""
    return (_offered_file(), Path(str(resources.files("inferfleet.infra").joinpath(_ZONES))))


def _offered_file() -> Path:
    spec = find_spec("cfnlint")
    assert spec is not None and spec.submodule_search_locations, "cfn-lint is a dependency"
    return Path(next(iter(spec.submodule_search_locations))) / _ENUM


@cache
def _offered() -> dict[str, frozenset[str]]:
    data = json.loads(_offered_file().read_text(encoding="utf-8"))
    return {
        region: frozenset(entry["enum"])
        for region, entry in data.items()
        if isinstance(entry, dict) and region != "all"
    }


def offered_in(instance_type: str, region: str) -> bool | None:
    """True or False when known; None when the data does not know the type or region."""
    offered = _offered()
    if region not in offered or not any(instance_type in types for types in offered.values()):
        return None
    return instance_type in offered[region]


def known_regions() -> frozenset[str]:
    """Regions cfn-lint knows: the lint gate cannot check a template for any other."""
    return frozenset(_offered())


@cache
def _zones() -> dict[str, frozenset[str]]:
    text = resources.files("inferfleet.infra").joinpath(_ZONES).read_text()
    return {region: frozenset(names) for region, names in json.loads(text)["zones"].items()}


def zones_of(region: str) -> frozenset[str] | None:
    """The Availability Zone names of ``region``; None when the table does not know it."""
    return _zones().get(region)
