"""The SageMaker hosting table: what inference components count as accelerators, and where."""

from __future__ import annotations

import pytest

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES
from inferfleet.constructs.sagemaker_instances import (
    HOSTING_INSTANCE_TYPES,
    supports_multi_model,
)


def test_neuron_types_count_neuron_cores_from_the_one_neuron_table() -> None:
    for name, hosting in HOSTING_INSTANCE_TYPES.items():
        if not hosting.neuron:
            continue
        neuron = NEURON_INSTANCE_TYPES[name.removeprefix("ml.")]
        assert hosting.accelerators == neuron.neuron_cores
        assert hosting.accelerator_memory_gib == neuron.core_memory_gib
        assert hosting.memory_gib == neuron.memory_gib
    assert HOSTING_INSTANCE_TYPES["ml.inf2.48xlarge"].accelerators == 24
    assert HOSTING_INSTANCE_TYPES["ml.trn1.32xlarge"].accelerators == 32


def test_gpu_types_count_gpus() -> None:
    g5 = HOSTING_INSTANCE_TYPES["ml.g5.12xlarge"]
    assert (g5.accelerators, g5.accelerator_memory_gib, g5.memory_gib) == (4, 24, 192)
    g6e = HOSTING_INSTANCE_TYPES["ml.g6e.xlarge"]
    assert (g6e.accelerators, g6e.accelerator_memory_gib, g6e.memory_gib) == (1, 48, 32)
    assert not g5.neuron


@pytest.mark.parametrize(
    ("instance_type", "memory_gib", "accelerators"),
    [
        ("ml.inf2.24xlarge", 16, 1),
        ("ml.inf2.24xlarge", 40, 3),  # 3 divides the 12 cores
        ("ml.inf2.24xlarge", 80, 6),  # 5 would not split the instance evenly
        ("ml.inf2.24xlarge", 193, None),
        ("ml.g5.48xlarge", 60, 4),
    ],
)
def test_the_fewest_accelerators_that_hold_a_copy(instance_type, memory_gib, accelerators) -> None:
    assert HOSTING_INSTANCE_TYPES[instance_type].accelerators_for(memory_gib) == accelerators


def test_multi_model_endpoints_run_on_cpu_and_gpu_not_inferentia_or_trainium() -> None:
    assert supports_multi_model("ml.c5.xlarge") and supports_multi_model("ml.g5.2xlarge")
    assert not supports_multi_model("ml.inf2.xlarge")
    assert not supports_multi_model("ml.inf1.xlarge")
    assert not supports_multi_model("ml.trn1.32xlarge")
