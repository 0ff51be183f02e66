"""Register: turns an upload's manifest into exactly one queued job.

S3 may deliver an object-created event more than once. The job id comes from the upload's key,
and the job is put only if that id is new (a conditional write); Powertools idempotency also
answers a repeated event from its record without reading the manifest again.

A manifest (``uploads/{user}/{job}/manifest.json``, written after the data) looks like::

    {"model_id": "my-style", "hyperparameters": {"epochs": "3", "lr": "0.0001"}}

An unusable manifest still registers its job, as FAILED with the reason, so every upload
ends in one terminal state the user can see.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from . import clients
from .jobs import Job, JobStore, utc_now_iso
from .layout import NAME_PATTERN, data_prefix, parse_manifest_key
from .schema import JobStatus
from .settings import Tables
from .training import RESERVED_HYPERPARAMETERS

logger = Logger(service="inferfleet-finetune-register")

MAX_MANIFEST_BYTES = 64 * 1024
MAX_HYPERPARAMETERS = 100


class ManifestError(ValueError):
    pass


def parse_manifest(body: bytes, job_id: str) -> tuple[str, dict[str, str]]:
    """``(model_id, hyperparameters)`` of a manifest, or ManifestError saying what is wrong."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"manifest is not JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise ManifestError("manifest must be a JSON object")
    model_id = manifest.get("model_id", job_id)
    if not isinstance(model_id, str) or not NAME_PATTERN.match(model_id):
        raise ManifestError("model_id must be 1-64 letters, digits, '.', '_' or '-'")
    hyperparameters = manifest.get("hyperparameters", {})
    if not isinstance(hyperparameters, dict) or len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise ManifestError(f"hyperparameters must be an object of at most {MAX_HYPERPARAMETERS}")
    reserved = sorted(RESERVED_HYPERPARAMETERS & set(hyperparameters))
    if reserved:
        raise ManifestError(f"hyperparameters {', '.join(reserved)} are set by the queue")
    as_text = {}
    for key, value in hyperparameters.items():
        if isinstance(value, dict | list) or value is None:
            raise ManifestError(f"hyperparameter {key}: values must be strings or numbers")
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        if not 0 < len(key) <= 256 or len(text) > 2500:
            raise ManifestError(f"hyperparameter {key}: key 1-256 and value <= 2500 characters")
        as_text[key] = text
    return model_id, as_text


def register_upload(store: JobStore, s3: Any, bucket: str, key: str) -> str | None:
    """Register the job of one manifest; returns the job id, or None if the key is not one."""
    parsed = parse_manifest_key(key)
    if parsed is None:
        logger.warning("not a manifest key, ignored", key=key)
        return None
    user_id, job_id = parsed
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        model_id, hyperparameters = parse_manifest(body, job_id)
        status, error = JobStatus.QUEUED, None
    except ManifestError as manifest_error:
        model_id, hyperparameters = job_id, {}
        status, error = JobStatus.FAILED, str(manifest_error)
    job = Job(
        job_id=job_id,
        user_id=user_id,
        model_id=model_id,
        status=status,
        data_uri=f"s3://{bucket}/{data_prefix(user_id, job_id)}",
        created_at=utc_now_iso(),
        hyperparameters=hyperparameters,
        error=error,
    )
    if store.register(job):
        logger.info("job registered", job_id=job_id, user_id=user_id, status=str(status))
    else:
        logger.info("duplicate upload event, job already registered", job_id=job_id)
    return job_id


@logger.inject_lambda_context
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    config = IdempotencyConfig(expires_after_seconds=24 * 3600)
    config.register_lambda_context(context)
    persistence = DynamoDBPersistenceLayer(
        table_name=os.environ["IDEMPOTENCY_TABLE"], boto3_client=clients.dynamodb()
    )
    tables = Tables.from_env()
    store = JobStore(clients.dynamodb(), tables.jobs, tables.models)

    @idempotent_function(
        data_keyword_argument="upload", config=config, persistence_store=persistence
    )
    def register_once(upload: dict[str, str]) -> str | None:
        return register_upload(store, clients.s3(), upload["bucket"], upload["key"])

    registered = []
    for record in event.records:
        upload = {
            "bucket": record.s3.bucket.name,
            "key": record.s3.get_object.key,
            "etag": record.s3.get_object.etag or "",
        }
        try:
            job_id = register_once(upload=upload)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                logger.warning("manifest gone before it was read", key=upload["key"])
                continue
            raise
        if job_id:
            registered.append(job_id)
    return {"registered": registered}
