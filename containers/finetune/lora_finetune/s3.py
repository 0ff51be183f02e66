"""The few S3 transfers a batch task needs."""

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_json(s3: Any, uri: str) -> Any:
    bucket, key = split_uri(uri)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def download_prefix(s3: Any, uri: str, target: Path) -> Path:
    """Every object under the prefix, keeping the layout below it."""
    bucket, prefix = split_uri(uri)
    target.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            relative = entry["Key"][len(prefix) :].lstrip("/")
            if not relative or relative.endswith("/"):
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, entry["Key"], str(destination))
    return target


def upload_file(s3: Any, path: Path, uri: str) -> None:
    bucket, key = split_uri(uri)
    s3.upload_file(str(path), bucket, key)
