"""boto3 clients, made once per execution environment.

Standard retry mode backs off on throttling with jitter; how often it tries is a setting, so
a throttled CreateTrainingJob gives up quickly and leaves the job queued for the next sweep.
"""

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# A missing key reads as 403 to a caller that may not list the bucket, and the handlers may
# not: they read known keys under their own prefixes only.
_MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound", "403", "AccessDenied"})


@cache
def client(service: str) -> Any:
    attempts = int(os.environ.get("AWS_CLIENT_MAX_ATTEMPTS", "3"))
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return boto3.client(service, config=config)


def dynamodb() -> Any:
    return client("dynamodb")


def s3() -> Any:
    return client("s3")


def sagemaker() -> Any:
    return client("sagemaker")


def events() -> Any:
    return client("events")


def is_missing_object(error: ClientError) -> bool:
    """An S3 answer that the object is not there (or, to these handlers, may as well not be)."""
    return error.response["Error"]["Code"] in _MISSING_OBJECT_CODES
