"""Where the weights live: Route 53 weighted records, or Global Accelerator traffic dials.

Route 53: one weighted alias record per region (SetIdentifier = region) pointing at the ALB,
with its CloudWatch-alarm health check, as the stack built it. The controller changes only
the weights: it UPSERTs the records it read with new weights, all regions in one change batch,
so alias targets and health checks stay the stack's. Global Accelerator: one endpoint group per
region; endpoint weights only split traffic inside one group (one region), so the split
between regions is set with traffic dials (:func:`~.weights.traffic_dials`).
"""

from __future__ import annotations

from typing import Any

from .config import Service
from .weights import DIAL_MAX, traffic_dials


class MissingRecordsError(RuntimeError):
    """A region's weighted record is gone: the controller does not create records."""


class Route53Weights:
    def __init__(self, route53: Any) -> None:
        self.route53 = route53
        self._records: dict[str, dict[str, dict[str, Any]]] = {}

    def read(self, service: Service) -> dict[str, int]:
        """The weights in force, by region (the records' SetIdentifier)."""
        name = service.record_name.rstrip(".") + "."
        pages = self.route53.get_paginator("list_resource_record_sets").paginate(
            HostedZoneId=service.hosted_zone_id,
            StartRecordName=name,
            StartRecordType=service.record_type,
        )
        records = {
            record["SetIdentifier"]: record
            for record in _named(pages, name, service.record_type)
            if record.get("SetIdentifier") in service.regions
        }
        missing = [region for region in service.regions if region not in records]
        if missing:
            raise MissingRecordsError(
                f"{service.name}: no weighted record {name} for {', '.join(missing)} in zone "
                f"{service.hosted_zone_id}; redeploy the global stack"
            )
        self._records[service.name] = records
        return {region: int(records[region].get("Weight", 0)) for region in service.regions}

    def write(self, service: Service, weights: dict[str, int], comment: str) -> str:
        records = self._records[service.name]
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": {**records[region], "Weight": weight}}
            for region, weight in weights.items()
        ]
        answer = self.route53.change_resource_record_sets(
            HostedZoneId=service.hosted_zone_id,
            ChangeBatch={"Comment": comment[:256], "Changes": changes},
        )
        return answer["ChangeInfo"]["Id"]


def _named(pages: Any, name: str, kind: str) -> Any:
    """The records of ``name`` and ``kind``: the listing starts there, in order."""
    for page in pages:
        for record in page["ResourceRecordSets"]:
            if record["Name"] != name or record["Type"] != kind:
                return
            yield record


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
