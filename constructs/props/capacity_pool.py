"""Props of :class:`~inferfleet.constructs.neuron_capacity_pool.NeuronCapacityPool`, CDK-free."""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES
from inferfleet.constructs.props.problems import PropsProblem, in_range

# The ECS-optimized Neuron AMI, Docker layers of a Neuron serving image and logs.
BASE_ROOT_VOLUME_GIB = 100


@dataclass(frozen=True)
class NeuronCapacityPoolProps:
    """Instances of one Neuron type for an ECS cluster.

    :param instance_type: the Neuron instance type.
    :param max_capacity: upper bound of instances.
    :param min_capacity: instances kept running. Default: 0 (ECS scales from tasks).
    :param weights_gib: model weights to store on the root volume. Default: 0.
    :param target_capacity_percent: managed-scaling utilisation target. Default: 100, no
        idle instances; lower it to keep warm spares for faster scale-out.
    :param instance_warmup_s: time before a new instance counts. Default: 600, the Neuron
        AMI boot plus a large image pull.
    """

    instance_type: str
    max_capacity: int
    min_capacity: int = 0
    weights_gib: float = 0
    target_capacity_percent: int = 100
    instance_warmup_s: int = 600

    @property
    def root_volume_gib(self) -> int:
        """Room for the image, the weights, and their compiled Neuron artifacts (about the
        same size again), with 20% to spare."""
        return BASE_ROOT_VOLUME_GIB + math.ceil(self.weights_gib * 2 * 1.2)

    def problems(self) -> list[PropsProblem]:
        problems = []
        if self.instance_type not in NEURON_INSTANCE_TYPES:
            problems.append(
                PropsProblem(
                    "instance_type",
                    f"unknown instance type {self.instance_type!r}; use one of: "
                    + ", ".join(NEURON_INSTANCE_TYPES),
                )
            )
        if not 0 <= self.min_capacity <= self.max_capacity:
            problems.append(
                PropsProblem(
                    "min_capacity",
                    f"{self.min_capacity} must be between 0 and max_capacity {self.max_capacity}",
                )
            )
        problems += in_range("target_capacity_percent", self.target_capacity_percent, 1, 100, "%")
        problems += in_range("instance_warmup_s", self.instance_warmup_s, 0, 10000, "s")
        return problems
