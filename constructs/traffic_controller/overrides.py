"""Operators' overrides (drain, pin) as stored in one SSM parameter: the document's one owner.

The CLI (``inferfleet traffic drain|undrain|pin``) writes it; the controller reads it every
period. One JSON document per fleet::

    {"version": 1,
     "regions": {"us-west-2": {"action": "drain", "expires_at": 1767225600.0,
                               "services": null, "reason": "...", "set_at": 1767223800.0}}}

``services`` null means every service; an entry past ``expires_at`` is ignored (and dropped
by the next write). Standard library only: it ships in the Lambda package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .weights import TOTAL, Override

VERSION = 1
DRAIN = "drain"
PIN = "pin"
EMPTY = json.dumps({"version": VERSION, "regions": {}})


def parse(text: str | None) -> dict[str, Any]:
    """The document in ``text``; an empty or missing parameter is no override."""
    if not text:
        return {"version": VERSION, "regions": {}}
    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("regions"), dict):
        raise ValueError("the overrides parameter is not an inferfleet overrides document")
    return document


def active_for(document: Mapping[str, Any], service: str, now: float) -> dict[str, Override]:
    """The overrides in force for ``service`` now, by region."""
    found = {}
    for region, entry in document.get("regions", {}).items():
        services = entry.get("services")
        if services is not None and service not in services:
            continue
        override = Override(
            action=entry["action"],
            expires_at=float(entry["expires_at"]),
            weight=entry.get("weight"),
            reason=entry.get("reason", ""),
        )
        if override.active(now):
            found[region] = override
    return found


def with_override(
    document: Mapping[str, Any],
    region: str,
    *,
    action: str,
    expires_at: float,
    now: float,
    weight: int | None = None,
    services: Iterable[str] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """A copy with ``region``'s override set, and expired entries dropped."""
    if action not in (DRAIN, PIN):
        raise ValueError(f"action must be {DRAIN} or {PIN}")
    if action == PIN and (weight is None or not 0 <= weight <= TOTAL):
        raise ValueError(f"a pin needs a weight 0..{TOTAL}")
    regions = _live(document, now)
    regions[region] = {
        "action": action,
        "expires_at": expires_at,
        "weight": weight if action == PIN else None,
        "services": sorted(services) if services is not None else None,
        "reason": reason,
        "set_at": now,
    }
    return {"version": VERSION, "regions": regions}


def without_override(document: Mapping[str, Any], region: str, now: float) -> dict[str, Any]:
    """A copy with ``region``'s override (and expired entries) removed."""
    regions = _live(document, now)
    regions.pop(region, None)
    return {"version": VERSION, "regions": regions}


def _live(document: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {
        region: dict(entry)
        for region, entry in document.get("regions", {}).items()
        if float(entry["expires_at"]) > now
    }


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))
