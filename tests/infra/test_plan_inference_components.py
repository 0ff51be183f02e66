"""hosting: inference_components in the fleet file: validate's errors with their lines, the
plan's wiring of the endpoint and base component to the fine-tune queue, and the stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferfleet.cli.synth import use_bundled_node
from inferfleet.constructs.props.finetune_queue import AdapterComponents
from inferfleet.infra import names
from inferfleet.infra.plan import build_plan, load_fleet_plan
from inferfleet.infra.spec import FleetSpec, FleetSpecError

FLEET = "chat"
TRAINING_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/ft:1"


def fleet(**endpoint: Any) -> dict[str, Any]:
    return {
        "name": FLEET,
        "regions": [{"name": "us-east-1", "availability_zones": ["us-east-1a", "us-east-1b"]}],
        "services": {
            "chat": {
                "kind": "llm",
                "model": {"parameters_b": 1},
                "container": {"image": "public.ecr.aws/example/llm:1"},
                "pools": [{"instance_type": "inf2.xlarge", "tensor_parallel": 2, "max": 2}],
            }
        },
        "personalization": {
            "endpoint": {
                "hosting": "inference_components",
                "instance_type": "ml.inf2.xlarge",
                "base_model": {"parameters_b": 8},
                **endpoint,
            },
            "queue": {"training_image_uri": TRAINING_IMAGE},
        },
    }


def problems_of(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    """validate's lines: ``fleet.yaml:LINE: field: message``."""
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(FleetSpecError) as raised:
        load_fleet_plan(path)
    return str(raised.value).splitlines()[1:]


def line_of(tmp_path: Path, key: str) -> int:
    text = (tmp_path / "fleet.yaml").read_text().splitlines()
    return next(number for number, line in enumerate(text, 1) if line.strip().startswith(key))


def test_the_plan_names_the_endpoint_and_base_component_and_hands_them_to_the_queue() -> None:
    plan = build_plan(FleetSpec.model_validate(fleet()))
    region = plan.region("us-east-1")
    personalization = region.personalization
    endpoint = personalization.endpoint
    assert personalization.adapters == AdapterComponents(
        endpoint_name=names.personalization_endpoint_name(FLEET),
        base_component_name=names.base_component_name(FLEET),
    )
    assert (endpoint.endpoint_name, endpoint.base_component_name) == (
        "chat-personalization",
        "chat-base-model",
    )
    # The adapters' own names start with the training-job prefix, which the publisher may
    # delete under; the base component never does.
    assert not endpoint.base_component_name.startswith(
        f"{personalization.queue.training_job_prefix}-"
    )
    # 8B bf16 weights and the default KV cache fit the 2 NeuronCores of an inf2.xlarge.
    assert endpoint.copy_accelerators == 2 and endpoint.floor == 0
    assert names.PERSONALIZATION_BASE_COMPONENT in region.outputs


def test_multi_model_hosting_stays_as_it_was() -> None:
    document = fleet(hosting="multi_model", instance_type="ml.g5.2xlarge")
    del document["personalization"]["endpoint"]["base_model"]
    region = build_plan(FleetSpec.model_validate(document)).region("us-east-1")
    assert region.personalization.adapters is None
    assert region.personalization.endpoint.endpoint_name is None  # CloudFormation names it
    assert names.PERSONALIZATION_BASE_COMPONENT not in region.outputs


def test_multi_model_on_inferentia_names_the_field_line_and_the_fix(tmp_path) -> None:
    document = fleet(hosting="multi_model")
    del document["personalization"]["endpoint"]["base_model"]
    [problem] = problems_of(tmp_path, document)
    line = line_of(tmp_path, "instance_type: ml.inf2.xlarge")
    assert problem.startswith(f"{tmp_path / 'fleet.yaml'}:{line}: ")
    assert (
        "personalization.endpoint.instance_type: SageMaker multi-model endpoints do not run "
        in problem
    )
    assert "adapters on inference components instead (hosting: inference_components" in problem


def test_adapters_need_a_base_model(tmp_path) -> None:
    document = fleet()
    del document["personalization"]["endpoint"]["base_model"]
    [problem] = problems_of(tmp_path, document)
    assert f":{line_of(tmp_path, 'endpoint:')}: personalization.endpoint.base_model: " in problem
    assert "need a base-model component for the adapters to attach to" in problem


@pytest.mark.parametrize(
    ("endpoint", "key", "field", "message"),
    [
        (
            {"base_model": {"parameters_b": 70}},
            "base_model:",
            "personalization.endpoint.base_model",
            "needs 140.4 GiB of accelerator memory; 2 NeuronCores of ml.inf2.xlarge have 32 GiB; "
            "use a larger type",
        ),
        (
            {"accelerators_per_copy": 3},
            "accelerators_per_copy:",
            "personalization.endpoint.accelerators_per_copy",
            "3 does not split the 2 NeuronCores of ml.inf2.xlarge",
        ),
        (
            {"memory_gib_per_copy": 64},
            "memory_gib_per_copy:",
            "personalization.endpoint.memory_gib_per_copy",
            "65536 MiB of host memory per copy; ml.inf2.xlarge has 16384 MiB",
        ),
        (
            {"instance_type": "ml.c5.xlarge"},
            "instance_type:",
            "personalization.endpoint.instance_type",
            "ml.c5.xlarge has no accelerator figures here",
        ),
        (
            {"min": 3, "max": 2},
            "min:",
            "personalization.endpoint.min",
            "need 0 <= min <= max, got 3..2; base-model copies",
        ),
        (
            {"max_instances": 1, "max": 3},
            "max_instances:",
            "personalization.endpoint.max_instances",
            "1 instances hold 1 copies (1 each), fewer than max_capacity 3; raise it to 3",
        ),
    ],
)
def test_what_does_not_fit_is_refused_with_its_line(tmp_path, endpoint, key, field, message):
    problems = problems_of(tmp_path, fleet(**endpoint))
    [problem] = [p for p in problems if f": {field}: " in p]
    assert f":{line_of(tmp_path, key)}: " in problem
    assert message in problem


def test_a_scaling_target_of_the_other_hosting_is_refused(tmp_path) -> None:
    [problem] = problems_of(tmp_path, fleet(invocations_per_instance=50))
    assert f":{line_of(tmp_path, 'invocations_per_instance:')}: " in problem
    assert "use concurrent_requests_per_copy" in problem
    document = fleet(hosting="multi_model", instance_type="ml.g5.2xlarge")
    del document["personalization"]["endpoint"]["base_model"]
    document["personalization"]["endpoint"]["concurrent_requests_per_copy"] = 2
    [problem] = problems_of(tmp_path, document)
    assert "concurrent_requests_per_copy: is for hosting: inference_components" in problem


def test_validate_shows_the_resolved_copy_size(tmp_path, capsys) -> None:
    from inferfleet.cli.main import main

    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet(instance_type="ml.g5.12xlarge", max=5)))
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--config", str(path), "--json"])
    assert exited.value.code == 0
    endpoint = json.loads(capsys.readouterr().out)["regions"][0]["personalization"]["endpoint"]
    # 8B bf16 and its KV cache fit one 24 GiB A10G: four copies per g5.12xlarge, two instances.
    assert endpoint["mode"] == "InferenceComponents"
    assert (endpoint["accelerators_per_copy"], endpoint["min_capacity"]) == (1, 0)
    assert (endpoint["max_capacity"], endpoint["max_instances"]) == (5, 2)
    assert endpoint["memory_mb_per_copy"] == int(192 * 1024 / 4 * 0.8)
    assert endpoint["framework"] == "djl-lmi"
    with pytest.raises(SystemExit):
        main(["validate", "--config", str(path)])
    out = capsys.readouterr().out
    assert "inference components on ml.g5.12xlarge" in " ".join(out.split())


def test_emulator_mode_leaves_the_inference_components_out_and_says_so() -> None:
    plan = build_plan(FleetSpec.model_validate(fleet()), emulator=True)
    region = plan.region("us-east-1")
    assert region.personalization is None
    assert any("moto implements no inference components" in item for item in region.left_out)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict[str, Any]:
    from inferfleet.infra.app import build_app

    use_bundled_node()
    outdir = tmp_path_factory.mktemp("components")
    plan = build_plan(FleetSpec.model_validate(fleet()))
    build_app(plan, outdir=str(outdir), nag=False).synth()
    return json.loads((outdir / f"{FLEET}-us-east-1.template.json").read_text())


@pytest.mark.slow
def test_the_stack_wires_the_base_component_to_the_publisher(template) -> None:
    resources = template["Resources"]
    [component] = [
        r for r in resources.values() if r["Type"] == "AWS::SageMaker::InferenceComponent"
    ]
    [endpoint] = [r for r in resources.values() if r["Type"] == "AWS::SageMaker::Endpoint"]
    base = component["Properties"]["InferenceComponentName"]
    assert endpoint["Properties"]["EndpointName"] == "chat-personalization"
    publisher = next(
        r["Properties"]["Environment"]["Variables"]
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and logical_id.startswith("FinetunePublisher")
    )
    assert publisher["MODEL_HOSTING"] == "inference_components"
    assert publisher["ENDPOINT_NAME"] == "chat-personalization"
    assert publisher["BASE_INFERENCE_COMPONENT"] == base == "chat-base-model"
    assert template["Outputs"][names.PERSONALIZATION_BASE_COMPONENT] == {"Value": base}
    plan = build_plan(FleetSpec.model_validate(fleet()))
    assert len(resources) <= plan.region("us-east-1").resources_upper_bound
