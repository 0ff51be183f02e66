import pytest

from inferfleet.constructs.neuron_instances import (
    UnknownInstanceTypeError,
    neuron_instance_type,
)


@pytest.mark.parametrize(
    ("name", "chips", "cores", "memory_gib"),
    [
        ("inf2.xlarge", 1, 2, 32),
        ("inf2.8xlarge", 1, 2, 32),
        ("inf2.24xlarge", 6, 12, 192),
        ("inf2.48xlarge", 12, 24, 384),
        ("trn1.2xlarge", 1, 2, 32),
        ("trn1.32xlarge", 16, 32, 512),
        ("trn2.48xlarge", 16, 64, 1536),
    ],
)
def test_chips_cores_and_device_memory(name, chips, cores, memory_gib):
    instance = neuron_instance_type(name)
    assert instance.chips == chips
    assert instance.neuron_cores == cores
    assert instance.device_memory_gib == memory_gib
    assert instance.device_paths == [f"/dev/neuron{i}" for i in range(chips)]


def test_tensor_parallel_degrees_divide_the_cores():
    assert neuron_instance_type("inf2.48xlarge").tensor_parallel_degrees() == [
        1,
        2,
        3,
        4,
        6,
        8,
        12,
        24,
    ]


def test_unknown_type_lists_the_catalog():
    with pytest.raises(UnknownInstanceTypeError, match=r"use one of: inf2\.xlarge, inf2\.8xlarge"):
        neuron_instance_type("g5.48xlarge")
