"""boto3 clients, made once per execution environment.

Standard retry mode backs off on throttling with jitter; how often it tries is a setting, so
a throttled CreateTrainingJob gives up quickly and leaves the job queued for the next sweep.
"""

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config


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
