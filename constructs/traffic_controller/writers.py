"""Where the weights live: Route 53 weighted records, or Global Accelerator traffic dials.

Route 53: one weighted alias record per region (SetIdentifier = region) pointing at the ALB,
with its CloudWatch-alarm health check; the controller UPSERTs the weights of all regions in
one change batch, so they change together. Global Accelerator: one endpoint group per region;
endpoint weights only split traffic inside one group (one region), so the split between
regions is set with traffic dials (:func:`~.weights.traffic_dials`).
"""

from __future__ import annotations

from typing import Any

from .config import Service
from .weights import DIAL_MAX, traffic_dials


class Route53Weights:
    def __init__(self, route53: Any) -> None:
        self.route53 = route53

    def read(self, service: Service) -> dict[str, int]:
        """The weights in force, by region; a region whose record is missing reads 0."""
        wanted = {
            endpoint.set_identifier or endpoint.region: endpoint.region
            for endpoint in service.endpoints
        }
        found: dict[str, int] = {}
        name = service.record_name.rstrip(".") + "."
        pages = self.route53.get_paginator("list_resource_record_sets").paginate(
            HostedZoneId=service.hosted_zone_id,
            StartRecordName=name,
            StartRecordType=service.record_type,
        )
        for page in pages:
            for record in page["ResourceRecordSets"]:
                if record["Name"] != name or record["Type"] != service.record_type:
                    return {region: found.get(region, 0) for region in wanted.values()}
                region = wanted.get(record.get("SetIdentifier", ""))
                if region is not None:
                    found[region] = int(record.get("Weight", 0))
        return {region: found.get(region, 0) for region in wanted.values()}

    def write(self, service: Service, weights: dict[str, int], comment: str) -> str:
        changes = []
        for endpoint in service.endpoints:
            record: dict[str, Any] = {
                "Name": service.record_name,
                "Type": service.record_type,
                "SetIdentifier": endpoint.set_identifier or endpoint.region,
                "Weight": weights[endpoint.region],
                "AliasTarget": {
                    "HostedZoneId": endpoint.alias_hosted_zone_id,
                    "DNSName": endpoint.alias_dns_name,
                    "EvaluateTargetHealth": True,
                },
            }
            if endpoint.health_check_id:
                record["HealthCheckId"] = endpoint.health_check_id
            changes.append({"Action": "UPSERT", "ResourceRecordSet": record})
        answer = self.route53.change_resource_record_sets(
            HostedZoneId=service.hosted_zone_id,
            ChangeBatch={"Comment": comment[:256], "Changes": changes},
        )
        return answer["ChangeInfo"]["Id"]


class AcceleratorDials:
    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator

    def read(self, service: Service) -> dict[str, int]:
        """The dials in force, read back as weights (a dial of 100 everywhere is an even split)."""
        dials = {}
        for endpoint in service.endpoints:
            group = self.accelerator.describe_endpoint_group(
                EndpointGroupArn=endpoint.endpoint_group_arn
            )["EndpointGroup"]
            dials[endpoint.region] = round(group.get("TrafficDialPercentage", DIAL_MAX))
        return dials

    def write(self, service: Service, weights: dict[str, int], comment: str) -> str:
        dials = traffic_dials(weights)
        for endpoint in service.endpoints:
            self.accelerator.update_endpoint_group(
                EndpointGroupArn=endpoint.endpoint_group_arn,
                TrafficDialPercentage=float(dials[endpoint.region]),
            )
        return comment
