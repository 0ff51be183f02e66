"""The few S3 transfers a batch task needs, and the check that keeps its files in its folder.

A task's data keys come from its user's upload. A key that climbs out of the task's folder
(``../``), starts over from the root (``//etc``), or spells either in another form (``%2e%2e``,
fullwidth dots that normalize to ``..``) would let one user's upload overwrite another task's
files or the code every later task packs; such a key fails the task instead.
"""

import json
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

_ENCODED_SEPARATOR = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)


class PathError(ValueError):
    """An S3 key that cannot become a file inside its task's folder."""


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_json(s3: Any, uri: str) -> Any:
    bucket, key = split_uri(uri)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _problem(relative: str) -> str | None:
    """Why ``relative`` cannot name a file under a folder, or None when it can."""
    for form in {relative, unquote(relative), unicodedata.normalize("NFKC", relative)}:
        if form.startswith("/") or "\\" in form or "\x00" in form:
            return "is absolute or holds a backslash or NUL"
        parts = form.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return "has an empty, '.' or '..' segment"
    if _ENCODED_SEPARATOR.search(relative):
        return "holds a URL-encoded dot, slash, backslash or NUL"
    return None


def inside(root: Path, relative: str, *, key: str) -> Path:
    """``root / relative``, or PathError when that would not stay inside ``root``."""
    problem = _problem(relative)
    if problem:
        raise PathError(f"data key {key!r} {problem}; it would leave the task's folder")
    destination = root.joinpath(*PurePosixPath(relative).parts)
    if not destination.resolve().is_relative_to(root.resolve()):
        raise PathError(f"data key {key!r} resolves outside the task's folder")
    return destination


def download_prefix(s3: Any, uri: str, target: Path) -> Path:
    """Every object under the prefix, keeping the layout below it, all inside ``target``.

    Every key is checked before anything is written, so a refused upload leaves no files.
    """
    bucket, prefix = split_uri(uri)
    target.mkdir(parents=True, exist_ok=True)
    planned = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            relative = entry["Key"][len(prefix) :]
            if entry["Key"].endswith("/") and entry.get("Size", 0) == 0:
                continue  # a folder marker the console writes
            planned.append((entry["Key"], inside(target, relative, key=entry["Key"])))
    for key, destination in planned:
        destination.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(destination))
    return target


def upload_file(s3: Any, path: Path, uri: str) -> None:
    bucket, key = split_uri(uri)
    s3.upload_file(str(path), bucket, key)


def put_text(s3: Any, text: str, uri: str) -> None:
    bucket, key = split_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/plain")
