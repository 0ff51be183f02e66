"""The controller Lambda against moto's server: Route 53 records, CloudWatch, SSM."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from traffic_world import NOW, PERIOD_S, REGIONS, TrafficWorld, config_document

from inferfleet.constructs.traffic_controller import handler as controller_handler
from inferfleet.constructs.traffic_controller import overrides
from inferfleet.constructs.traffic_controller.config import CONFIG_ENV, service_parameter_name
from inferfleet.constructs.traffic_controller.writers import MissingRecordsError

pytestmark = pytest.mark.slow


def install_percentiles(world: TrafficWorld, **p99: float) -> None:
    world.percentiles.p99 = {region.replace("_", "-"): value for region, value in p99.items()}
    for region in REGIONS:
        world.percentiles.install(region)


def test_weights_follow_capacity_from_metrics_put_in_three_regions(world: TrafficWorld) -> None:
    install_percentiles(world, us_east_1=0.4, us_west_2=0.5, eu_west_1=0.45)
    world.put("us-east-1", healthy=10)
    world.put("us-west-2", healthy=10)
    world.put("eu-west-1", healthy=30, max_size=30)
    result = world.run()
    # Capacity asks for about 23/23/54; eu-west-1 may gain at most the step (20) this period.
    assert world.weights() == {"eu-west-1": 53, "us-east-1": 24, "us-west-2": 23}
    decision = result["services"]["assistant"]
    assert decision["changed"] is True
    assert decision["regions"]["us-east-1"]["signals"]["ttft_p99_s"] == 0.4
    assert decision["fleet_utilization"] == pytest.approx(60 * 50 / (50 * 120))
    # The percentile query asked CloudWatch for p99 over the control period, per target group.
    query = world.percentiles.asked[0]["MetricDataQueries"][0]["MetricStat"]
    assert (query["Stat"], query["Period"], query["Metric"]["MetricName"]) == (
        "p99",
        PERIOD_S,
        "TargetResponseTime",
    )
    weights = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "w",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Inferfleet/Traffic",
                        "MetricName": "Weight",
                        "Dimensions": [
                            {"Name": "Fleet", "Value": "shopping-assistant"},
                            {"Name": "Service", "Value": "assistant"},
                            {"Name": "Region", "Value": "eu-west-1"},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=NOW - timedelta(minutes=5),
        EndTime=NOW + timedelta(minutes=5),
    )
    assert weights["MetricDataResults"][0]["Values"] == [53.0]


def test_an_unhealthy_region_is_drained_in_one_period(world: TrafficWorld) -> None:
    install_percentiles(world, us_east_1=0.4, us_west_2=0.4, eu_west_1=0.4)
    world.put("us-east-1", healthy=10)
    world.put("us-west-2", healthy=2, desired=10, in_service=10)
    world.put("eu-west-1", healthy=10)
    result = world.run()
    assert world.weights() == {"us-east-1": 50, "us-west-2": 0, "eu-west-1": 50}
    west = result["services"]["assistant"]["regions"]["us-west-2"]
    assert west["status"] == "unhealthy" and west["reason"].startswith("health drain: 2 of 10")


def test_a_region_with_5xx_over_the_limit_is_drained(world: TrafficWorld) -> None:
    install_percentiles(world, us_east_1=0.4, us_west_2=0.4, eu_west_1=0.4)
    for region in REGIONS:
        world.put(region, healthy=10, **({"errors": 120.0} if region == "eu-west-1" else {}))
    result = world.run()
    assert world.weights()["eu-west-1"] == 0
    assert "5xx rate 20.0%" in result["services"]["assistant"]["regions"]["eu-west-1"]["reason"]


def test_a_region_without_metrics_holds_its_weight_instead_of_being_drained(
    world: TrafficWorld,
) -> None:
    """No datapoint at all in eu-west-1 (CloudWatch late, or a dimension renamed): the region
    keeps its 33 and is reported stale; the other two share the rest by capacity."""
    install_percentiles(world, us_east_1=0.4, us_west_2=0.4)
    world.put("us-east-1", healthy=10)
    world.put("us-west-2", healthy=30, max_size=30)
    result = world.run()
    weights = world.weights()
    assert weights["eu-west-1"] == 33
    assert weights["us-west-2"] > weights["us-east-1"]
    eu = result["services"]["assistant"]["regions"]["eu-west-1"]
    assert eu["status"] == "stale" and "holds its weight" in eu["reason"]


def test_without_percentiles_the_controller_still_acts_on_health_and_capacity(
    world: TrafficWorld,
) -> None:
    """No hook: moto answers the p99 query with its 500, as a throttled read would fail."""
    world.put("us-east-1", healthy=0, desired=10, in_service=10)
    world.put("us-west-2", healthy=10)
    world.put("eu-west-1", healthy=10)
    result = world.run()
    assert world.weights() == {"us-east-1": 0, "us-west-2": 50, "eu-west-1": 50}
    assert "no TTFT samples" in result["services"]["assistant"]["regions"]["us-west-2"]["reason"]


def test_a_region_over_its_objective_moves_by_the_step_each_period(world: TrafficWorld) -> None:
    install_percentiles(world, us_east_1=0.4, us_west_2=2.5, eu_west_1=0.4)
    for region in REGIONS:
        world.put(region, healthy=10)
    world.run()
    assert world.weights() == {"us-east-1": 44, "us-west-2": 13, "eu-west-1": 43}
    world.run(NOW + timedelta(seconds=PERIOD_S))
    assert world.weights() == {"us-east-1": 47, "us-west-2": 5, "eu-west-1": 48}
    state = world.state()
    assert state["services"]["assistant"]["us-west-2"]["condition"] == "breaching"
    assert state["last"]["assistant"]["regions"]["us-west-2"]["status"] == "breaching"


def test_a_second_run_in_the_same_period_changes_nothing(world: TrafficWorld) -> None:
    install_percentiles(world, us_east_1=0.4, us_west_2=2.5, eu_west_1=0.4)
    for region in REGIONS:
        world.put(region, healthy=10)
    world.run()
    first = world.weights()
    again = world.run(NOW + timedelta(seconds=10))
    assert again["skipped"] is True
    assert world.weights() == first


def test_an_operator_drain_in_ssm_wins_until_it_expires(world: TrafficWorld) -> None:
    install_percentiles(world, us_east_1=0.4, us_west_2=0.4, eu_west_1=0.4)
    for region in REGIONS:
        world.put(region, healthy=10)
    now = NOW.timestamp()
    document = overrides.with_override(
        overrides.parse(None),
        "us-east-1",
        action=overrides.DRAIN,
        expires_at=now + 90,
        now=now,
        reason="maintenance",
    )
    boto3.client("ssm").put_parameter(
        Name=world.config.override_parameter, Value=overrides.dumps(document), Type="String"
    )
    result = world.run()
    assert world.weights()["us-east-1"] == 0
    assert "(maintenance)" in result["services"]["assistant"]["regions"]["us-east-1"]["reason"]
    world.run(NOW + timedelta(seconds=2 * PERIOD_S))
    assert world.weights()["us-east-1"] == 20  # expired: back by the step


def test_the_lambda_entry_point_reads_its_settings_and_each_services_parameter(
    world: TrafficWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    for region in REGIONS:
        world.put(region, healthy=10)
    document = config_document(world.zone_id)
    services = document.pop("services")
    names = []
    for service in services:
        name = service_parameter_name(document["fleet"], service["name"])
        boto3.client("ssm").put_parameter(Name=name, Value=json.dumps(service), Type="String")
        names.append(name)
    monkeypatch.setenv(CONFIG_ENV, json.dumps({**document, "service_parameters": names}))

    class Context:
        function_name = "traffic-controller"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:traffic-controller"
        aws_request_id = "request-1"

    result = controller_handler.handler({"source": "aws.scheduler"}, Context())
    assert result["skipped"] is False
    # It runs at the real clock, after the fixture's figures: every region holds its weight.
    regions = result["services"]["assistant"]["regions"]
    assert sorted(regions) == sorted(REGIONS)
    assert {entry["status"] for entry in regions.values()} == {"stale"}


def test_only_the_weights_change_alias_targets_and_health_checks_stay(world: TrafficWorld) -> None:
    before = world.records()
    world.put("us-east-1", healthy=10)
    world.put("us-west-2", healthy=0, desired=10, in_service=10)
    world.put("eu-west-1", healthy=10)
    world.run()
    after = world.records()
    assert after["us-west-2"]["Weight"] == 0
    for region in REGIONS:
        assert after[region]["AliasTarget"] == before[region]["AliasTarget"]
        assert after[region]["HealthCheckId"] == world.health_checks[region]


def test_a_missing_record_fails_the_run_and_says_what_to_do(world: TrafficWorld) -> None:
    record = world.records()["eu-west-1"]
    boto3.client("route53").change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]},
    )
    with pytest.raises(MissingRecordsError, match=r"eu-west-1 .*redeploy the global stack"):
        world.run()
    with pytest.raises(boto3.client("ssm").exceptions.ParameterNotFound):
        world.state()
