"""AWS sessions and clients with the user's profile and, for an emulator, its endpoint.

Clients are botocore's: boto3's import (s3transfer, the resource layer) would lengthen every
command's start for nothing a client here uses, except the managed S3 uploads of
:meth:`AwsAccess.s3_transfer_client`.
"""

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from inferfleet.cli.errors import UserError

REGION_NAME = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")
CREDENTIALS_FIX = (
    "run `aws configure`, set AWS_PROFILE (or pass --profile), or export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


def check_region(flag: str, name: str) -> str:
    if not REGION_NAME.fullmatch(name):
        raise UserError(f"{flag} {name!r}: not a region name; use one like us-east-1")
    return name


@dataclass(frozen=True)
class AwsAccess:
    """Where every AWS call goes: the standard credential chain (optionally a named profile),
    and ``endpoint_url`` for an emulator such as moto."""

    profile: str | None = None
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            url = urlsplit(self.endpoint_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise UserError(
                    f"--endpoint-url {self.endpoint_url!r}: not a URL; give the emulator's "
                    "address, e.g. http://localhost:5000"
                )

    @property
    def emulated(self) -> bool:
        return self.endpoint_url is not None

    @cached_property
    def session(self) -> Any:  # botocore.session.Session, imported lazily
        from botocore.exceptions import ProfileNotFound
        from botocore.session import Session

        session = Session(profile=self.profile)
        try:
            session.get_scoped_config()  # reads the profile: a wrong name fails here, at once
        except ProfileNotFound:
            raise UserError(
                f"--profile {self.profile}: no such profile in your AWS config; "
                "list them with `aws configure list-profiles`"
            ) from None
        return session

    def client(self, service: str, region: str) -> Any:
        return self.session.create_client(service, **self._client_options(region))

    def s3_transfer_client(self, region: str) -> Any:
        """An S3 client with boto3's managed transfers (``upload_file``: multipart, retried
        parts), on the same session and options as :meth:`client`."""
        import boto3

        return boto3.Session(botocore_session=self.session).client(
            "s3", **self._client_options(region)
        )

    def _client_options(self, region: str) -> dict[str, Any]:
        from botocore.config import Config

        return {
            "region_name": region,
            "endpoint_url": self.endpoint_url,
            "config": Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10),
        }

    def account(self, region: str) -> str:
        """The account the credentials belong to; a UserError that says how to get
        credentials when there are none or they are refused."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if self.session.get_credentials() is None:
            raise UserError(f"no AWS credentials found; {CREDENTIALS_FIX}", exit_code=1)
        try:
            return self.client("sts", region).get_caller_identity()["Account"]
        except NoCredentialsError:
            raise UserError(f"no AWS credentials found; {CREDENTIALS_FIX}", exit_code=1) from None
        except ClientError as error:
            raise UserError(
                f"AWS refused the credentials ({error.response['Error']['Code']}: "
                f"{error.response['Error'].get('Message', '')}); {CREDENTIALS_FIX}",
                exit_code=1,
            ) from None
        except BotoCoreError as error:
            where = self.endpoint_url or f"STS in {region}"
            raise UserError(
                f"could not reach {where} to check the credentials ({error}); check the "
                "network, or --endpoint-url when you meant an emulator",
                exit_code=1,
            ) from None
