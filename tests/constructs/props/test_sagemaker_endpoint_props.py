"""SageMakerEndpointProps with inference components, and AdapterComponents: resolved values and
problems, without CDK."""

from __future__ import annotations

from inferfleet.constructs.props.finetune_queue import AdapterComponents
from inferfleet.constructs.props.sagemaker_endpoint import HostingMode, SageMakerEndpointProps


def _components(**fields) -> SageMakerEndpointProps:  # type: ignore[no-untyped-def]
    given = {"instance_type": "ml.inf2.48xlarge", "base_model_memory_gib": 150.0, **fields}
    return SageMakerEndpointProps(mode=HostingMode.INFERENCE_COMPONENTS, **given)


def test_copies_default_to_zero_and_instances_follow_the_copies() -> None:
    props = _components(max_capacity=7)
    # 150 GiB over 16 GiB NeuronCores: 10 does not divide 24, 12 does; two copies an instance.
    assert (props.copy_accelerators, props.copies_per_instance) == (12, 2)
    assert (props.floor, props.max_capacity, props.instance_ceiling) == (0, 7, 4)
    assert (props.initial_copies, props.initial_count) == (1, 1)
    assert props.copy_memory_mb == int(768 * 1024 / 2 * 0.8)
    assert props.problems() == []
    assert SageMakerEndpointProps(mode=HostingMode.MULTI_MODEL).floor == 1


def test_a_warm_floor_starts_that_many_copies_on_enough_instances() -> None:
    props = _components(min_capacity=3, max_capacity=4)
    assert (props.initial_copies, props.initial_count, props.instance_ceiling) == (3, 2, 2)


def test_the_default_image_family_serves_adapters_on_the_instance_kind() -> None:
    assert _components().image_framework == "djl-neuronx"
    gpu = _components(instance_type="ml.g6.12xlarge", base_model_memory_gib=20.0)
    assert gpu.image_framework == "djl-lmi"
    assert SageMakerEndpointProps().image_framework == "sagemaker-tritonserver"
    assert _components(framework="djl-lmi").image_framework == "djl-lmi"


def test_adapter_components_need_both_names() -> None:
    assert AdapterComponents("chat-personalization", "chat-base-model").problems() == []
    [problem] = AdapterComponents("chat-personalization", "").problems()
    assert problem.field == "adapter_components.base_component_name"
    assert "adapters need the endpoint and the base-model component" in problem.message
    [problem] = AdapterComponents("chat_users", "base").problems()
    assert problem.field == "adapter_components.endpoint_name"


def test_the_default_lmi_image_gets_lora_and_the_copy_as_its_tensor_parallel_degree() -> None:
    assert _components().container_environment == {
        "OPTION_ENABLE_LORA": "true",
        "OPTION_TENSOR_PARALLEL_DEGREE": "12",
    }
    mine = _components(environment={"OPTION_MAX_LORAS": "8", "OPTION_ENABLE_LORA": "false"})
    assert mine.container_environment["OPTION_ENABLE_LORA"] == "false"  # the caller's wins
    assert mine.container_environment["OPTION_MAX_LORAS"] == "8"
    assert _components(image_uri="example/own:1").container_environment == {}
    assert SageMakerEndpointProps(mode=HostingMode.MULTI_MODEL).container_environment == {}
    assert _components().resolved().environment == _components().container_environment
