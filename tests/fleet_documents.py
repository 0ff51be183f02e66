"""Small fleet files for tests that synthesize or deploy: one llm service on inf2.xlarge."""

from pathlib import Path
from typing import Any

import yaml

ACCOUNT = "123456789012"


def fleet_document(name: str, regions: list[dict[str, Any]]) -> dict[str, Any]:
    """One small llm service on inf2.xlarge (a registry image: no Docker build at deploy)."""
    return {
        "name": name,
        "account": ACCOUNT,
        "regions": regions,
        "services": {
            "chat": {
                "kind": "llm",
                "model": {"parameters_b": 1, "max_sequence_length": 2048, "max_batch_size": 4},
                "container": {"image": "public.ecr.aws/example/llm-neuron:test"},
                "pools": [{"instance_type": "inf2.xlarge", "tensor_parallel": 2, "max": 2}],
            }
        },
        "network": {"nat_gateways": 1},
    }


def new_vpc_region(name: str) -> dict[str, Any]:
    return {"name": name, "availability_zones": [f"{name}a", f"{name}b"]}


def write_fleet(path: Path, name: str, regions: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(fleet_document(name, regions), sort_keys=False))
    return path
