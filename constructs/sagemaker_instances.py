"""SageMaker hosting instance types with accelerators, as inference components count them.

An inference component asks for ``NumberOfAcceleratorDevicesRequired``: NeuronCores on
Inferentia2 and Trainium, GPUs on the g5/g6/g6e families. The Neuron figures come from
:mod:`inferfleet.constructs.neuron_instances` (one table for ECS pools and SageMaker); the GPU
figures live here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES

SAGEMAKER_PREFIX = "ml."
# Multi-model endpoints run on CPU instances, and on GPU ones through Triton; not on
# Inferentia or Trainium (inference components serve many models there).
_NO_MULTI_MODEL = re.compile(r"^ml\.(inf|trn)\d")
# The Neuron types SageMaker offers for real-time hosting.
_NEURON_HOSTING = ("inf2.xlarge", "inf2.8xlarge", "inf2.24xlarge", "inf2.48xlarge")
_NEURON_HOSTING += ("trn1.2xlarge", "trn1.32xlarge")


@dataclass(frozen=True)
class HostingInstanceType:
    """One ``ml.*`` instance type: its accelerators and the host around them."""

    name: str
    accelerator: str
    accelerators: int
    accelerator_memory_gib: float
    vcpus: int
    memory_gib: int

    @property
    def neuron(self) -> bool:
        return self.accelerator.startswith(("Inferentia", "Trainium"))

    def copy_sizes(self) -> list[int]:
        """Accelerators per copy that split the instance into whole copies."""
        return [n for n in range(1, self.accelerators + 1) if self.accelerators % n == 0]

    def accelerators_for(self, memory_gib: float) -> int | None:
        """The fewest accelerators per copy whose memory holds ``memory_gib``; None if the
        whole instance cannot."""
        return next(
            (n for n in self.copy_sizes() if n * self.accelerator_memory_gib >= memory_gib),
            None,
        )


def _gpu(family: str, gpu: str, gib: float, shapes: list[tuple[str, int, int, int]]):  # type: ignore[no-untyped-def]
    return [
        HostingInstanceType(f"ml.{family}.{size}", gpu, gpus, gib, vcpus, memory)
        for size, gpus, vcpus, memory in shapes
    ]


# (size, GPUs, vCPUs, GiB): g5 and g6 share their shapes.
_G_SHAPES = [
    ("xlarge", 1, 4, 16),
    ("2xlarge", 1, 8, 32),
    ("4xlarge", 1, 16, 64),
    ("8xlarge", 1, 32, 128),
    ("12xlarge", 4, 48, 192),
    ("16xlarge", 1, 64, 256),
    ("24xlarge", 4, 96, 384),
    ("48xlarge", 8, 192, 768),
]
# g6e: the same GPUs and vCPUs per size, twice the host memory.
_G6E_SHAPES = [(size, gpus, vcpus, memory * 2) for size, gpus, vcpus, memory in _G_SHAPES]

_CATALOG = (
    *(
        HostingInstanceType(
            f"{SAGEMAKER_PREFIX}{name}",
            NEURON_INSTANCE_TYPES[name].accelerator,
            NEURON_INSTANCE_TYPES[name].neuron_cores,
            NEURON_INSTANCE_TYPES[name].core_memory_gib,
            NEURON_INSTANCE_TYPES[name].vcpus,
            NEURON_INSTANCE_TYPES[name].memory_gib,
        )
        for name in _NEURON_HOSTING
    ),
    *_gpu("g5", "NVIDIA A10G", 24, _G_SHAPES),
    *_gpu("g6", "NVIDIA L4", 24, _G_SHAPES),
    *_gpu("g6e", "NVIDIA L40S", 48, _G6E_SHAPES),
)

HOSTING_INSTANCE_TYPES: dict[str, HostingInstanceType] = {t.name: t for t in _CATALOG}


def supports_multi_model(instance_type: str) -> bool:
    return not _NO_MULTI_MODEL.match(instance_type)
