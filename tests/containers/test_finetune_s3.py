"""A batch task's data download against moto: every key lands inside the task's folder, or the
task fails before a byte is written."""

from pathlib import Path

import boto3
import pytest
from lora_finetune.s3 import PathError, download_prefix
from moto_server import MotoServer

BUCKET = "finetune-data"
PREFIX = "uploads/mallory/job-1/data/"


@pytest.fixture
def bucket(moto: MotoServer):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return s3


def _tricks(sentinel: Path) -> dict[str, str]:
    absolute = str(sentinel).lstrip("/")
    return {
        "dot-dot": "../" * 40 + absolute,
        "dot-dot inside": "shards/../../" + sentinel.name,
        "absolute": "/" + absolute,
        "double slash": "shards//" + sentinel.name,
        "dot segment": "./train.jsonl",
        "url-encoded dots": "%2e%2e/%2e%2e/" + sentinel.name,
        "url-encoded slash": "..%2f..%2f" + sentinel.name,
        "fullwidth dots": "\uff0e\uff0e/\uff0e\uff0e/" + sentinel.name,
        "two-dot leader": "\u2025/" + sentinel.name,
        "backslash": "..\\..\\" + sentinel.name,
        "nul": "train\x00.jsonl",
    }


@pytest.mark.parametrize("trick", list(_tricks(Path("/x"))))
def test_a_key_that_would_leave_the_folder_fails_the_download_and_writes_nothing(
    bucket, tmp_path: Path, trick: str
) -> None:
    sentinel = tmp_path / "serving" / "model.py"
    sentinel.parent.mkdir()
    sentinel.write_text("original")
    key = PREFIX + _tricks(sentinel)[trick]
    bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}train.jsonl", Body=b'{"text": "hi"}\n')
    bucket.put_object(Bucket=BUCKET, Key=key, Body=b"evil")
    target = tmp_path / "task" / "data"

    with pytest.raises(PathError, match="leave the task's folder") as refused:
        download_prefix(bucket, f"s3://{BUCKET}/{PREFIX}", target)

    assert repr(key) in str(refused.value)
    assert sentinel.read_text() == "original"
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == [sentinel]


def test_ordinary_keys_keep_their_layout(bucket, tmp_path: Path) -> None:
    names = ["train.jsonl", "shards/part-1.jsonl", "données/é.jsonl", "v1.0..final.jsonl"]
    for name in names:
        bucket.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=name.encode())
    bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}shards/", Body=b"")  # a console folder

    target = download_prefix(bucket, f"s3://{BUCKET}/{PREFIX}", tmp_path / "data")

    written = sorted(str(path.relative_to(target)) for path in target.rglob("*") if path.is_file())
    assert written == sorted(names)
    assert all((target / name).read_bytes() == name.encode() for name in names)
