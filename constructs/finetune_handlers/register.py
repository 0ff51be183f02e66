"""Register: turns an upload's manifest into exactly one job of its user.

S3 may deliver an object-created event more than once. The job's key is the upload's user and
job id, and the job is put only if that pair is new (a conditional write); Powertools
idempotency also answers a repeated event from its record without reading the manifest again.

A manifest (``uploads/{user}/{job}/manifest.json``, written after the data) looks like::

    {"model_id": "my-style", "hyperparameters": {"epochs": "3", "lr": "0.0001"}}

Every upload ends as a job row: one whose ids, manifest or hyperparameters cannot be used is
registered FAILED with the reason, so the user sees why. Records that are not uploads to the
data bucket are logged and skipped.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from . import clients
from .hyperparameters import HyperparameterError, check_hyperparameters
from .jobs import Job, JobStore, utc_now_iso
from .layout import data_prefix, id_problem, parse_manifest_key
from .schema import JobStatus
from .settings import RegisterSettings, Tables, TrainingLimits

logger = Logger(service="inferfleet-finetune-register")

MAX_MANIFEST_BYTES = 64 * 1024
MANIFEST_FIELDS = ("model_id", "hyperparameters")
_BRIEF_CHARS = 300


class ManifestError(ValueError):
    pass


def parse_manifest(body: bytes, job_id: str, limits: TrainingLimits) -> tuple[str, dict[str, str]]:
    """``(model_id, hyperparameters)`` of a manifest, or ManifestError saying what is wrong."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(body)
    except RecursionError:
        raise ManifestError("manifest is nested too deeply to be a manifest") from None
    except ValueError as error:  # not UTF-8, not JSON, or a number too long to read
        raise ManifestError(f"manifest is not JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise ManifestError("manifest must be a JSON object")
    unknown = sorted(str(key) for key in manifest if key not in MANIFEST_FIELDS)
    if unknown:
        raise ManifestError(
            f"manifest fields {', '.join(unknown)} are unknown; a manifest holds "
            f"{' and '.join(MANIFEST_FIELDS)}"
        )
    model_id = manifest.get("model_id", job_id)
    problem = id_problem("model_id", model_id)
    if problem:
        raise ManifestError(problem)
    try:
        hyperparameters = check_hyperparameters(manifest.get("hyperparameters", {}), limits)
    except HyperparameterError as error:
        raise ManifestError(str(error)) from None
    return model_id, hyperparameters


def read_manifest(s3: Any, bucket: str, key: str) -> bytes:
    """The manifest's bytes, its size checked before a byte of it is read."""
    try:
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                f"manifest is {size} bytes; a manifest holds at most {MAX_MANIFEST_BYTES}"
            )
        # A manifest replaced since the size check is read no further than the limit either.
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_MANIFEST_BYTES + 1)
    except ClientError as error:
        if clients.is_missing_object(error):
            raise ManifestError("manifest was deleted before it was read; upload again") from None
        raise


def register_upload(
    store: JobStore, s3: Any, bucket: str, key: str, limits: TrainingLimits
) -> dict[str, str] | None:
    """Register the job of one manifest key; None when the key is not a manifest's."""
    parsed = parse_manifest_key(key)
    if parsed is None:
        logger.warning("not a manifest key, ignored", key=key)
        return None
    user_id, job_id = parsed
    model_id, hyperparameters = job_id, {}
    status, error = JobStatus.QUEUED, None
    try:
        for problem in (id_problem("user id", user_id), id_problem("job id", job_id)):
            if problem:
                raise ManifestError(f"{problem} (from the upload's key {key!r})")
        model_id, hyperparameters = parse_manifest(read_manifest(s3, bucket, key), job_id, limits)
    except ManifestError as manifest_error:
        status, error = JobStatus.FAILED, str(manifest_error)
    job = Job(
        user_id=user_id,
        job_id=job_id,
        model_id=model_id,
        status=status,
        data_uri=f"s3://{bucket}/{data_prefix(user_id, job_id)}",
        created_at=utc_now_iso(),
        hyperparameters=hyperparameters,
        error=error,
    )
    outcome = "registered" if store.register(job) else "duplicate"
    logger.info(f"upload {outcome}", user_id=user_id, job_id=job_id, status=str(status))
    return {"user_id": user_id, "job_id": job_id, "outcome": outcome}


def _brief(value: object) -> str:
    return repr(value)[:_BRIEF_CHARS]


def uploads_of(event: object, bucket: str) -> tuple[list[dict[str, str]], int]:
    """The object-created records of the data bucket, and how many records were not those."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        logger.warning("not an S3 event, skipped", event=_brief(event))
        return [], 1
    uploads, skipped = [], 0
    for record in records:
        upload = _upload(record, bucket)
        if upload is None:
            logger.warning("not an upload to the data bucket, skipped", record=_brief(record))
            skipped += 1
        else:
            uploads.append(upload)
    return uploads, skipped


def _upload(record: object, bucket: str) -> dict[str, str] | None:
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        return None
    name = record.get("eventName")
    s3 = record.get("s3")
    if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
        return None
    if not isinstance(s3, dict) or not isinstance(s3.get("bucket"), dict):
        return None
    if s3["bucket"].get("name") != bucket or not isinstance(s3.get("object"), dict):
        return None
    key, etag = s3["object"].get("key"), s3["object"].get("eTag", "")
    if not isinstance(key, str) or not key or not isinstance(etag, str):
        return None
    # Keys arrive URL-encoded, spaces as '+'.
    return {"bucket": bucket, "key": unquote_plus(key), "etag": etag}


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = RegisterSettings.from_env()
    limits = TrainingLimits.from_env()
    tables = Tables.from_env()
    config = IdempotencyConfig(expires_after_seconds=24 * 3600)
    config.register_lambda_context(context)
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=clients.dynamodb()
    )
    store = JobStore(clients.dynamodb(), tables.jobs, tables.models)

    @idempotent_function(
        data_keyword_argument="upload", config=config, persistence_store=persistence
    )
    def register_once(upload: dict[str, str]) -> dict[str, str] | None:
        return register_upload(store, clients.s3(), upload["bucket"], upload["key"], limits)

    uploads, skipped = uploads_of(event, settings.data_bucket)
    result: dict[str, Any] = {"registered": [], "duplicates": [], "skipped": skipped}
    for upload in uploads:
        registered = register_once(upload=upload)
        if registered is None:
            result["skipped"] += 1
        else:
            key = "registered" if registered["outcome"] == "registered" else "duplicates"
            result[key].append(f"{registered['user_id']}/{registered['job_id']}")
    return result
