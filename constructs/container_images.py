"""The images this package ships build contexts for, as CDK image assets.

Every image builds from the ``containers/`` folder with its own Dockerfile
(``docker build -f llm-neuron/Dockerfile containers``), so scripts shared by the
serving images live once, in ``containers/common``. Each asset leaves out the
other images' folders, so changing one image does not rebuild the others.
"""

import re
from importlib import resources
from typing import Any, Literal

from aws_cdk import IgnoreMode, Token
from aws_cdk import aws_ecr_assets as ecr_assets

BuiltInImage = Literal["llm-neuron", "intent-neuron", "finetune", "pair-neuron"]
BUILT_IN_IMAGES: tuple[BuiltInImage, ...] = (
    "llm-neuron",
    "intent-neuron",
    "finetune",
    "pair-neuron",
)


def image_asset_options(image: BuiltInImage) -> dict[str, Any]:
    """Keyword arguments for ``ecs.ContainerImage.from_asset`` and ``DockerImageAsset``."""
    build_root = resources.files("inferfleet.containers")
    return {
        "directory": str(build_root),
        "file": f"{image}/Dockerfile",
        "platform": ecr_assets.Platform.LINUX_AMD64,
        "ignore_mode": IgnoreMode.DOCKER,
        # Root-level modules are local tooling (tests, local Triton), not image content.
        "exclude": [
            *(other for other in BUILT_IN_IMAGES if other != image),
            "*.py",
            "*.md",
            "**/__pycache__",
            "**/*.pyc",
        ],
    }


_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)"
)


def ecr_repository_arn(image_uri: str, partition: str) -> str | None:
    """The ARN of the ECR repository ``image_uri`` is pulled from; None when the URI is not
    an ECR one known at synth."""
    if Token.is_unresolved(image_uri):
        return None
    image = _ECR_IMAGE.match(image_uri)
    if image is None:
        return None
    return (
        f"arn:{partition}:ecr:{image['region']}:{image['account']}:repository/{image['repository']}"
    )
