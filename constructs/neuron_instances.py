"""Inferentia2 and Trainium instance types: chips, NeuronCores, device memory.

Everything device-shaped in the constructs (``/dev/neuronN`` mappings, core counts,
task sizes) is derived from this table, never typed by hand.
"""

from dataclasses import dataclass

NEURON_DEVICE_PATH = "/dev/neuron{index}"


@dataclass(frozen=True)
class NeuronInstanceType:
    """One EC2 instance type with AWS Neuron accelerators.

    ``cores_per_chip`` counts the NeuronCores the Neuron runtime exposes (logical
    cores): on Trainium2 that is 4 per chip at the default logical-core size of 2.
    """

    name: str
    accelerator: str
    chips: int
    cores_per_chip: int
    device_memory_gib_per_chip: int
    vcpus: int
    memory_gib: int

    @property
    def neuron_cores(self) -> int:
        return self.chips * self.cores_per_chip

    @property
    def core_memory_gib(self) -> float:
        return self.device_memory_gib_per_chip / self.cores_per_chip

    @property
    def device_memory_gib(self) -> int:
        return self.chips * self.device_memory_gib_per_chip

    @property
    def device_paths(self) -> list[str]:
        """One ``/dev/neuronN`` per chip, as the Neuron driver creates them."""
        return [NEURON_DEVICE_PATH.format(index=index) for index in range(self.chips)]

    def tensor_parallel_degrees(self) -> list[int]:
        """Degrees that split the instance's cores into whole replicas."""
        return [d for d in range(1, self.neuron_cores + 1) if self.neuron_cores % d == 0]


_CATALOG = (
    NeuronInstanceType("inf2.xlarge", "Inferentia2", 1, 2, 32, 4, 16),
    NeuronInstanceType("inf2.8xlarge", "Inferentia2", 1, 2, 32, 32, 128),
    NeuronInstanceType("inf2.24xlarge", "Inferentia2", 6, 2, 32, 96, 384),
    NeuronInstanceType("inf2.48xlarge", "Inferentia2", 12, 2, 32, 192, 768),
    NeuronInstanceType("trn1.2xlarge", "Trainium", 1, 2, 32, 8, 32),
    NeuronInstanceType("trn1.32xlarge", "Trainium", 16, 2, 32, 128, 512),
    NeuronInstanceType("trn1n.32xlarge", "Trainium", 16, 2, 32, 128, 512),
    NeuronInstanceType("trn2.48xlarge", "Trainium2", 16, 4, 96, 192, 2048),
)

NEURON_INSTANCE_TYPES: dict[str, NeuronInstanceType] = {t.name: t for t in _CATALOG}


class UnknownInstanceTypeError(ValueError):
    pass


def neuron_instance_type(name: str) -> NeuronInstanceType:
    """Look up an instance type; the error lists the ones that exist."""
    try:
        return NEURON_INSTANCE_TYPES[name]
    except KeyError:
        known = ", ".join(NEURON_INSTANCE_TYPES)
        raise UnknownInstanceTypeError(
            f"unknown Neuron instance type {name!r}; use one of: {known}"
        ) from None
