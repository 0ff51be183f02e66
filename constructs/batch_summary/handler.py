"""Summary of one Batch Transform run: records in and out, pairs/s, cost estimate.

The state machine calls this after the transform job succeeded, with the job's description.
It counts the records (non-blank lines) of every input object and of its ``.out`` in the
run's output folder, writes ``_SUMMARY.json`` there and returns it. A run where an input has
no output, or a different number of records, fails here (:class:`IncompleteOutput`), after
the summary saying which files is written: every input record gets exactly one output.

Settings come from the environment (one JSON document, ``BATCH_SUMMARY_SETTINGS``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config

from .layout import OUTPUT_SUFFIX, SETTINGS_ENV, SUMMARY_NAME

LISTED_LIMIT = 20

logger = Logger(service="inferfleet-batch-summary")


class IncompleteOutput(Exception):
    """An input without exactly one output record per input record."""


@cache
def s3() -> Any:
    return boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 5}))


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def keys_under(bucket: str, prefix: str) -> list[str]:
    paginator = s3().get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if not item["Key"].endswith("/")
    ]


def count_records(bucket: str, key: str) -> int:
    body = s3().get_object(Bucket=bucket, Key=key)["Body"]
    return sum(1 for line in body.iter_lines(chunk_size=1 << 20) if line.strip())


def seconds_between(start: Any, end: Any) -> float:
    return max(0.0, _epoch(end) - _epoch(start))


def _epoch(value: Any) -> float:
    """A timestamp as epoch seconds, from epoch seconds, epoch milliseconds or ISO 8601."""
    if isinstance(value, int | float):
        return value / 1000 if value > 10**11 else float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def summarize(job: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    name = job["TransformJobName"]
    in_bucket, in_prefix = split(settings["input_prefix"])
    out_bucket, out_prefix = split(job["TransformOutput"]["S3OutputPath"].rstrip("/") + "/")
    outputs = {
        key[len(out_prefix) : -len(OUTPUT_SUFFIX)]: key
        for key in keys_under(out_bucket, out_prefix)
        if key.endswith(OUTPUT_SUFFIX)
    }
    records_in = records_out = 0
    missing, mismatched = [], []
    inputs = keys_under(in_bucket, in_prefix)
    for key in inputs:
        relative = key[len(in_prefix) :]
        count_in = count_records(in_bucket, key)
        records_in += count_in
        if relative not in outputs:
            missing.append(relative)
            continue
        count_out = count_records(out_bucket, outputs.pop(relative))
        records_out += count_out
        if count_out != count_in:
            mismatched.append({"file": relative, "records_in": count_in, "records_out": count_out})
    seconds = seconds_between(job["TransformStartTime"], job["TransformEndTime"])
    count = int(job["TransformResources"]["InstanceCount"])
    instance_hours = count * seconds / 3600
    price = settings.get("price_per_instance_hour")
    summary = {
        "transform_job": name,
        "complete": not missing and not mismatched,
        "instance_type": job["TransformResources"]["InstanceType"],
        "instance_count": count,
        "input_files": len(inputs),
        "records_in": records_in,
        "records_out": records_out,
        "inputs_without_output": len(missing),
        "inputs_with_other_counts": len(mismatched),
        "missing_outputs": missing[:LISTED_LIMIT],
        "mismatched_files": mismatched[:LISTED_LIMIT],
        "seconds": round(seconds, 1),
        "pairs_per_second": round(records_out / seconds, 1) if seconds else None,
        "instance_hours": round(instance_hours, 4),
        "price_per_instance_hour": price,
        "cost_usd": round(instance_hours * price, 4) if price is not None else None,
        "summary": f"s3://{out_bucket}/{out_prefix}{SUMMARY_NAME}",
    }
    s3().put_object(
        Bucket=out_bucket,
        Key=f"{out_prefix}{SUMMARY_NAME}",
        Body=json.dumps(summary, indent=2).encode(),
        ContentType="application/json",
    )
    return summary


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    summary = summarize(event["job"], json.loads(os.environ[SETTINGS_ENV]))
    logger.info("run summary", extra={"summary": summary})
    if not summary["complete"]:
        raise IncompleteOutput(
            f"{summary['inputs_without_output']} inputs without output and "
            f"{summary['inputs_with_other_counts']} with a different record count; see "
            f"{summary['summary']}"
        )
    return summary
