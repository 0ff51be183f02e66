"""The images this package ships build contexts for, as CDK image assets.

Every image builds from the ``containers/`` folder with its own Dockerfile
(``docker build -f llm-neuron/Dockerfile containers``), so scripts shared by the
serving images live once, in ``containers/common``. Each asset leaves out the
other images' folders, so changing one image does not rebuild the others.
"""

from importlib import resources
from typing import Any, Literal

from aws_cdk import IgnoreMode
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
