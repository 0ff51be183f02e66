"""Global Accelerator mode: moto has no Global Accelerator, so its API is botocore's Stubber with
the real request and response shapes (validated against the service model); SSM and CloudWatch
are moto's server as in the Route 53 tests."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from traffic_world import NOW, REGIONS, TrafficWorld, config_document

from inferfleet.constructs.traffic_controller import handler as controller_handler
from inferfleet.constructs.traffic_controller.config import ACCELERATOR_API_REGION, ControllerConfig

pytestmark = pytest.mark.slow

ACCELERATOR = (
    "arn:aws:globalaccelerator::123456789012:accelerator/1234abcd-abcd-1234-abcd-1234abcdefgh"
)
ARNS = {
    region: f"{ACCELERATOR}/listener/0123abcd/endpoint-group/{index:012d}"
    for index, region in enumerate(REGIONS)
}


def endpoint_group(region: str, dial: float) -> dict:
    return {
        "EndpointGroup": {
            "EndpointGroupArn": ARNS[region],
            "EndpointGroupRegion": region,
            "EndpointDescriptions": [
                {
                    "EndpointId": f"arn:aws:elasticloadbalancing:{region}:123456789012:"
                    f"loadbalancer/app/shopping-assistant-{region}/0123456789abcdef",
                    "Weight": 128,
                    "HealthState": "HEALTHY",
                    "ClientIPPreservationEnabled": True,
                }
            ],
            "TrafficDialPercentage": dial,
            "HealthCheckPort": 443,
            "HealthCheckProtocol": "HTTPS",
            "HealthCheckPath": "/v2/health/ready",
            "HealthCheckIntervalSeconds": 10,
            "ThresholdCount": 3,
        }
    }


def test_dials_follow_the_split_with_the_heaviest_region_at_100(world: TrafficWorld) -> None:
    world.percentiles.p99 = {"us-east-1": 0.4, "us-west-2": 0.4, "eu-west-1": 0.4}
    for region in REGIONS:
        world.percentiles.install(region)
    world.put("us-east-1", healthy=10)
    world.put("us-west-2", healthy=0, desired=10, in_service=10)
    world.put("eu-west-1", healthy=10)
    config = ControllerConfig.from_dict(
        config_document(world.zone_id, mode="global_accelerator", arns=ARNS)
    )
    accelerator = controller_handler.client("globalaccelerator", ACCELERATOR_API_REGION)
    assert accelerator.meta.region_name == "us-west-2"
    with Stubber(accelerator) as stub:
        for region in REGIONS:
            stub.add_response(
                "describe_endpoint_group",
                endpoint_group(region, 100.0),
                {"EndpointGroupArn": ARNS[region]},
            )
        for region, dial in (("us-east-1", 100.0), ("us-west-2", 0.0), ("eu-west-1", 100.0)):
            stub.add_response(
                "update_endpoint_group",
                endpoint_group(region, dial),
                {"EndpointGroupArn": ARNS[region], "TrafficDialPercentage": dial},
            )
        result = controller_handler.Controller(config).run(now=NOW.timestamp())
        stub.assert_no_pending_responses()
    assert result["services"]["assistant"]["weights"] == {
        "eu-west-1": 50,
        "us-east-1": 50,
        "us-west-2": 0,
    }
