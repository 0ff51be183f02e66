"""The fleet's traffic parameters in SSM: read the state, change the overrides safely."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from inferfleet.cli.aws import CREDENTIALS_FIX, AwsAccess
from inferfleet.cli.errors import UserError
from inferfleet.constructs.traffic_controller import overrides
from inferfleet.constructs.traffic_controller.weights import TOTAL

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_OVERRIDE_S = 60
MAX_OVERRIDE_S = 7 * 86400


def parse_for(text: str) -> float:
    """``--for 30m`` in seconds (1 minute .. 7 days)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UserError(f"--for: {text!r} is not a duration; write it like 30m, 2h or 1d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_OVERRIDE_S <= seconds <= MAX_OVERRIDE_S:
        raise UserError(f"--for: {text} is outside 1m..7d; an override needs an expiry in it")
    return seconds


@dataclass(frozen=True)
class TrafficTarget:
    """A fleet's traffic parameters: where they are and how to reach them."""

    fleet: str
    regions: tuple[str, ...]
    services: tuple[str, ...]
    home_region: str
    aws: AwsAccess
    override_parameter: str
    state_parameter: str

    def _ssm(self) -> Any:
        return self.aws.client("ssm", self.home_region)

    def _get(self, name: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        ssm = self._ssm()
        try:
            return ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            return None
        except NoCredentialsError:
            raise UserError(f"no AWS credentials found; {CREDENTIALS_FIX}", exit_code=1) from None
        except ClientError as error:
            raise UserError(
                f"reading {name} in {self.home_region}: {error.response['Error'].get('Message')}",
                exit_code=1,
            ) from None
        except BotoCoreError as error:
            raise UserError(
                f"could not reach SSM in {self.home_region} ({error}); check the network or "
                "--endpoint-url",
                exit_code=1,
            ) from None

    def state(self) -> dict[str, Any] | None:
        text = self._get(self.state_parameter)
        return json.loads(text) if text else None

    def overrides(self) -> dict[str, Any]:
        try:
            return overrides.parse(self._get(self.override_parameter))
        except ValueError as error:
            raise UserError(
                f"{self.override_parameter}: {error}; undrain every region to rewrite it",
                exit_code=1,
            ) from None

    def write_overrides(self, document: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._ssm().put_parameter(
                Name=self.override_parameter,
                Value=overrides.dumps(document),
                Type="String",
                Overwrite=True,
                Description=f"inferfleet traffic overrides of fleet {self.fleet}",
            )
        except (ClientError, BotoCoreError) as error:
            raise UserError(
                f"writing {self.override_parameter} in {self.home_region} failed ({error}); "
                "nothing was changed",
                exit_code=1,
            ) from None


def check_region(target: TrafficTarget, region: str) -> None:
    if region not in target.regions:
        raise UserError(
            f"REGION: {region} is not a region of fleet {target.fleet}; use one of "
            f"{', '.join(target.regions)}"
        )


def check_services(target: TrafficTarget, services: list[str] | None) -> list[str] | None:
    unknown = [name for name in services or [] if name not in target.services]
    if unknown:
        raise UserError(
            f"--service: {', '.join(unknown)} is not a service of fleet {target.fleet}; use "
            f"one of {', '.join(target.services)}"
        )
    return sorted(services) if services else None


def change_override(
    target: TrafficTarget,
    region: str,
    *,
    action: str,
    seconds: float,
    now: float,
    weight: int | None = None,
    services: list[str] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Set ``region``'s override; refuse one that would leave a service with no region."""
    check_region(target, region)
    chosen = check_services(target, services)
    if action == overrides.PIN and (weight is None or not 0 <= weight <= TOTAL):
        raise UserError(f"WEIGHT: {weight} is outside 0..{TOTAL}; pin a share of 100")
    document = overrides.with_override(
        target.overrides(),
        region,
        action=action,
        expires_at=now + seconds,
        now=now,
        weight=weight,
        services=chosen,
        reason=reason,
    )
    for service in chosen or target.services:
        active = overrides.active_for(document, service, now)
        zeroed = [
            name
            for name, override in active.items()
            if override.action == overrides.DRAIN or override.weight == 0
        ]
        if len(zeroed) == len(target.regions):
            raise UserError(
                f"REGION: this would leave {service} with no region taking traffic (at 0: "
                f"{', '.join(sorted(zeroed))}); undrain another region first"
            )
        pinned = sum(o.weight or 0 for o in active.values() if o.action == overrides.PIN)
        if pinned > TOTAL:
            raise UserError(
                f"WEIGHT: pins of {service} would add up to {pinned}, over {TOTAL}; lower this "
                "pin or undrain another pinned region"
            )
    target.write_overrides(document)
    return document["regions"][region]


def remove_override(target: TrafficTarget, region: str, now: float) -> dict[str, Any] | None:
    """Drop ``region``'s override; the one removed, or None when there was none."""
    check_region(target, region)
    current = target.overrides()
    removed = current.get("regions", {}).get(region)
    if removed is not None and float(removed["expires_at"]) <= now:
        removed = None
    target.write_overrides(overrides.without_override(current, region, now))
    return removed
