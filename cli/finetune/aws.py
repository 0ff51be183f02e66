"""boto3 clients for the fine-tune commands: the standard chain, a profile, an endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from inferfleet.cli.errors import UserError

CREDENTIALS_FIX = (
    "run `aws configure`, set AWS_PROFILE (or pass --profile), or export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


@dataclass(frozen=True)
class Aws:
    profile: str | None = None
    endpoint_url: str | None = None

    @cached_property
    def session(self) -> Any:
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            return boto3.Session(profile_name=self.profile)
        except ProfileNotFound:
            raise UserError(
                f"--profile {self.profile}: no such profile in your AWS config; "
                "list them with `aws configure list-profiles`"
            ) from None

    def client(self, service: str, region: str) -> Any:
        from botocore.config import Config

        return self.session.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10),
        )
