"""What ``inferfleet traffic status`` shows: per service and region, the weight, status, reason,
inputs of the last decision, and any override in force."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from inferfleet.constructs.traffic_controller import overrides as override_document


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def status_report(
    fleet: str,
    regions: tuple[str, ...],
    services: tuple[str, ...],
    state: dict[str, Any] | None,
    document: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    last = (state or {}).get("last", {})
    report: dict[str, Any] = {
        "fleet": fleet,
        "decided_at": iso(state["decided_at"]) if state else None,
        "controller_ran": state is not None,
        "services": {},
    }
    for service in services:
        decision = last.get(service, {})
        active = override_document.active_for(document, service, now)
        rows = {}
        for region in regions:
            entry = decision.get("regions", {}).get(region, {})
            override = active.get(region)
            rows[region] = {
                "weight": entry.get("weight"),
                "previous": entry.get("previous"),
                "status": entry.get("status"),
                "reason": entry.get("reason"),
                "inputs": entry.get("signals", {}),
                "override": None
                if override is None
                else {
                    "action": override.action,
                    "weight": override.weight,
                    "expires_at": iso(override.expires_at),
                    "reason": override.reason,
                },
            }
        report["services"][service] = {
            "changed": decision.get("changed"),
            "fleet_utilization": decision.get("fleet_utilization"),
            "regions": rows,
        }
    return report
