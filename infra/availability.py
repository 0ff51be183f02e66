"""Which EC2 instance types each region offers, from cfn-lint's bundled data.

cfn-lint refreshes these lists from the CloudFormation registry with every
release; reusing them keeps spec validation and the lint gate in agreement.
"""

import json
from functools import cache
from importlib import resources

_ENUM = ("cfnlint.data.schemas.extensions.aws_ec2_instance", "instancetype_enum.json")


@cache
def _offered() -> dict[str, frozenset[str]]:
    package, name = _ENUM
    data = json.loads(resources.files(package).joinpath(name).read_text())
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
