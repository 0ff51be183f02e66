"""Maps the repo's top-level folders into the ``inferfleet`` namespace.

``constructs/`` keeps no ``__init__.py`` (it would shadow the ``constructs``
library aws-cdk-lib imports), so packages are listed here rather than found.
"""

from setuptools import find_namespace_packages, setup

ROOTS = ("constructs", "infra", "cli", "containers")


def _packages(root: str) -> list[str]:
    found = find_namespace_packages(where=root, exclude=["*__pycache__*"])
    # Folders whose names are not identifiers (image build contexts like llm-neuron,
    # Triton's numbered version folders) are package data, not packages.
    importable = [name for name in found if all(part.isidentifier() for part in name.split("."))]
    return [f"inferfleet.{root}"] + [f"inferfleet.{root}.{name}" for name in importable]


setup(
    packages=[package for root in ROOTS for package in _packages(root)],
    package_dir={f"inferfleet.{root}": root for root in ROOTS},
)
