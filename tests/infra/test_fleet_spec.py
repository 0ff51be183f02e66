"""Every problem of a fleet file names the file, line and field, and says the fix."""

from pathlib import Path

import pytest
import yaml

from inferfleet.infra.plan import load_fleet_plan
from inferfleet.infra.spec import FleetSpecError

REPO_ROOT = Path(__file__).resolve().parents[2]

VALID = {
    "name": "shop",
    "regions": ["us-east-1", "us-west-2"],
    "services": {
        "assistant": {
            "kind": "llm",
            "model": {"parameters_b": 70, "weights_dtype": "int8", "max_sequence_length": 4096},
            "pools": [
                {"instance_type": "inf2.48xlarge", "tensor_parallel": 24, "min": 2, "max": 20},
                {"instance_type": "trn1.32xlarge", "tensor_parallel": 32, "min": 1, "max": 10},
            ],
        }
    },
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, data_or_text) -> str:
    text = data_or_text if isinstance(data_or_text, str) else yaml.safe_dump(data_or_text)
    with pytest.raises(FleetSpecError) as caught:
        load_fleet_plan(write(tmp_path, text))
    return str(caught.value)


def with_pool(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["services"]["assistant"]["pools"][0].update(changes)
    return data


def test_the_embedded_example_is_valid_and_has_the_mixed_pool():
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    assert plan.region_names == ("us-east-1", "us-west-2", "eu-west-1")
    assistant = plan.region("us-east-1").service("assistant").props
    pools = {p.instance_type: p.tensor_parallel for p in assistant.pools}
    assert pools == {"inf2.48xlarge": 24, "trn1.32xlarge": 32}
    intent = plan.region("us-east-1").service("intent").props
    assert intent.kind == "classifier"
    assert intent.pools[0].instance_type == "inf2.xlarge"
    assert assistant.routing == "least_outstanding_requests"
    europe = plan.region("eu-west-1").service("assistant").props
    assert [p.instance_type for p in europe.pools] == ["inf2.48xlarge"]


def test_defaults_are_the_production_choice(tmp_path):
    plan = load_fleet_plan(write(tmp_path, yaml.safe_dump(VALID)))
    service = plan.region("us-east-1").service("assistant").props
    assert service.routing == "least_outstanding_requests"
    assert service.health_check.path == "/v2/health/ready"
    assert service.internet_facing is False


def test_unknown_instance_type_lists_the_known_ones(tmp_path):
    message = problems_of(tmp_path, with_pool(instance_type="p4d.24xlarge"))
    assert "services.assistant.pools[0].instance_type" in message
    assert "unknown instance type 'p4d.24xlarge'" in message
    assert "inf2.48xlarge" in message and "trn1.32xlarge" in message


def test_tensor_parallel_larger_than_the_cores(tmp_path):
    message = problems_of(tmp_path, with_pool(tensor_parallel=48))
    assert (
        "pools[0].tensor_parallel: 48 is more than the 24 NeuronCores of inf2.48xlarge" in message
    )
    assert "use one of 1, 2, 3, 4, 6, 8, 12, 24" in message


def test_tensor_parallel_not_dividing_the_cores(tmp_path):
    message = problems_of(tmp_path, with_pool(tensor_parallel=5))
    assert "5 does not divide the 24 NeuronCores of inf2.48xlarge" in message


def test_min_above_max(tmp_path):
    message = problems_of(tmp_path, with_pool(min=30))
    assert "pools[0].min: min 30 is greater than max 20; set min <= max" in message


def test_unknown_routing_value_names_the_allowed_ones(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["services"]["assistant"]["routing"] = "fastest"
    message = problems_of(tmp_path, data)
    assert "services.assistant.routing: 'fastest' is not a routing policy" in message
    assert "least_outstanding_requests" in message and "round_robin" in message


def test_routing_aliases_name_one_policy(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["services"]["assistant"]["routing"] = "weighted_random"
    plan = load_fleet_plan(write(tmp_path, yaml.safe_dump(data)))
    assert plan.region("us-east-1").service("assistant").props.routing == "random"


def test_malformed_yaml_gives_the_line(tmp_path):
    text = "name: shop\nregions: [us-east-1\nservices: {}\n"
    message = problems_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'fleet.yaml'}:3: malformed YAML")


def test_duplicate_service_names_are_caught_with_both_lines(tmp_path):
    text = yaml.safe_dump(VALID)
    service = text[text.index("  assistant:") : text.index("tensor_parallel: 32")] + (
        "tensor_parallel: 32\n"
    )
    duplicated = text.replace("services:\n", "services:\n" + service, 1)
    message = problems_of(tmp_path, duplicated)
    assert "duplicate key 'assistant' (first on line" in message


def test_duplicate_regions(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["regions"] = ["us-east-1", "us-west-2", "us-east-1"]
    message = problems_of(tmp_path, data)
    assert "regions[2]: region us-east-1 is listed twice (also regions[0])" in message


def test_two_pools_of_one_instance_type(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["services"]["assistant"]["pools"][1]["instance_type"] = "inf2.48xlarge"
    data["services"]["assistant"]["pools"][1]["tensor_parallel"] = 12
    message = problems_of(tmp_path, data)
    assert "a second pool of inf2.48xlarge (also pools[0]); merge them" in message


def test_unknown_keys_list_the_allowed_keys(tmp_path):
    message = problems_of(tmp_path, with_pool(tensor_paralel=24))
    assert "pools[0].tensor_paralel: unknown key 'tensor_paralel'" in message
    assert "allowed here: instance_type, tensor_parallel, min, max, regions" in message


def test_unknown_top_level_key(tmp_path):
    data = {**VALID, "servics": {}}
    message = problems_of(tmp_path, data)
    assert "servics: unknown key 'servics'; allowed here: name, account, regions" in message


def test_capacity_says_what_is_needed_and_available_and_the_fix(tmp_path):
    data = with_pool(tensor_parallel=4)
    data["services"]["assistant"]["model"]["weights_dtype"] = "bf16"
    message = problems_of(tmp_path, data)
    # 70e9 x 2 bytes = 130.4 GiB; KV cache 80 layers x 8 heads x 128 x 2 x 2 B x 4096 x 8 = 10 GiB
    assert "a replica needs 144.4 GiB of device memory" in message
    assert (
        "weights 130.4 GiB bf16, KV cache 10.0 GiB for 8 x 4096 tokens, runtime 4.0 GiB" in message
    )
    assert "tensor_parallel 4 on inf2.48xlarge gives 64 GiB (4 NeuronCores x 16 GiB)" in message
    assert "raise tensor_parallel to 12 or more, use weights_dtype int8" in message


def test_capacity_with_no_degree_that_fits(tmp_path):
    data = with_pool(instance_type="inf2.xlarge", tensor_parallel=2, min=1, max=2)
    message = problems_of(tmp_path, data)
    assert "no tensor_parallel degree fits on inf2.xlarge; use a larger instance type" in message


def test_capacity_uses_the_given_architecture(tmp_path):
    data = with_pool(tensor_parallel=8)
    model = data["services"]["assistant"]["model"]
    model.update(layers=80, kv_heads=64, head_dim=128, max_batch_size=32)
    message = problems_of(tmp_path, data)
    # 2 x 80 x 64 x 128 x 2 B = 2.5 MiB per token; x 4096 x 32 = 320 GiB
    assert "KV cache 320.0 GiB for 32 x 4096 tokens" in message


def test_instance_type_not_offered_in_a_region(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["regions"] = ["us-east-1", "eu-west-1"]
    message = problems_of(tmp_path, data)
    assert "pools[1].instance_type: trn1.32xlarge is not offered in eu-west-1" in message


def test_pool_regions_must_leave_no_region_unserved(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    for pool in data["services"]["assistant"]["pools"]:
        pool["regions"] = ["us-east-1"]
    message = problems_of(tmp_path, data)
    assert "services.assistant.pools: no pool serves us-west-2" in message


def test_every_problem_is_reported_at_once_with_its_line(tmp_path):
    data = with_pool(tensor_parallel=5, min=30)
    text = yaml.safe_dump(data, sort_keys=False)
    message = problems_of(tmp_path, text)
    assert message.startswith(f"2 problems in {tmp_path / 'fleet.yaml'}")
    line_of = {line.strip(): i for i, line in enumerate(text.splitlines(), 1)}
    assert (
        f"fleet.yaml:{line_of['tensor_parallel: 5']}: services.assistant.pools[0].tensor_parallel"
        in message
    )
    assert f"fleet.yaml:{line_of['min: 30']}: services.assistant.pools[0].min" in message


def test_region_and_vpc_formats(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["regions"] = [
        "Mars",
        {
            "name": "us-west-2",
            "vpc": {
                "vpc_id": "vpc-123",
                "cidr": "10.0.0.0/16",
                "availability_zones": ["us-west-2a", "us-west-2b"],
                "private_subnet_ids": ["subnet-0abc12345"],
            },
        },
    ]
    message = problems_of(tmp_path, data)
    assert (
        "regions[0].name: 'Mars' is not valid here; use a region name such as us-east-1" in message
    )
    # The schema comes first: the rules of the plan are checked once it holds.
    data["regions"][0] = "us-east-1"
    message = problems_of(tmp_path, data)
    assert "regions[1].vpc.vpc_id: 'vpc-123': use an id like vpc-" in message


def test_existing_vpc_needs_one_subnet_per_zone(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["regions"] = [
        {
            "name": "us-east-1",
            "vpc": {
                "vpc_id": "vpc-0abc12345def67890",
                "cidr": "10.1.0.0/16",
                "availability_zones": ["us-east-1a", "us-east-1b"],
                "private_subnet_ids": ["subnet-0abc12345"],
            },
        }
    ]
    message = problems_of(tmp_path, data)
    assert "1 subnets for 2 availability zones; give one subnet per zone" in message


def test_missing_file_says_how_to_start(tmp_path):
    with pytest.raises(FleetSpecError, match=r"no such file; pass --config .* `inferfleet init`"):
        load_fleet_plan(tmp_path / "absent.yaml")


def test_a_file_that_is_not_a_mapping(tmp_path):
    message = problems_of(tmp_path, "- just\n- a list\n")
    assert "must be a mapping with name, regions and services" in message


def test_personalization_defaults_to_the_first_region(tmp_path):
    data = {**VALID, "personalization": {}}
    plan = load_fleet_plan(write(tmp_path, yaml.safe_dump(data)))
    assert plan.personalization_regions == ("us-east-1",)
    assert plan.region("us-west-2").personalization is None
    section = plan.region("us-east-1").personalization
    assert section.endpoint.routing == "least_outstanding_requests"
    assert section.queue.create_calls_per_second == 1.0


def test_personalization_problems(tmp_path):
    data = {
        **VALID,
        "personalization": {
            "regions": ["eu-west-1"],
            "endpoint": {"instance_type": "g5.2xlarge", "min": 3, "max": 2},
            "queue": {"batch_threshold": 4, "batch_tasks": 8},
        },
    }
    message = problems_of(tmp_path, data)
    assert "personalization.endpoint.instance_type: 'g5.2xlarge' is not a SageMaker" in message
    data["personalization"]["endpoint"]["instance_type"] = "ml.g5.2xlarge"
    message = problems_of(tmp_path, data)
    assert "personalization.regions[0]: eu-west-1 is not a region of the fleet" in message
    assert "personalization.endpoint.min: need 1 <= min <= max, got 3..2" in message
    assert "raise batch_threshold to at least 8" in message
