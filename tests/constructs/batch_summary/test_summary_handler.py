"""The batch job's summary step against moto's S3: counts, rates, cost, and a short run fails."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest

from inferfleet.constructs.batch_summary import handler as summary
from inferfleet.constructs.batch_summary.layout import SUMMARY_NAME

RUN = "dupes-0123456789abcdef0123456789abcdef-0"
CONTEXT = SimpleNamespace(
    function_name="summary",
    memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:summary",
    aws_request_id="r-1",
)


def lines(count: int, blank_every: int = 0) -> bytes:
    rows = []
    for number in range(count):
        rows.append(json.dumps({"id": f"r{number}", "score": 0.5}))
        if blank_every and number % blank_every == 0:
            rows.append("")
    return ("\n".join(rows) + "\n").encode()


def job_description(start: object, end: object) -> dict:
    return {
        "TransformJobName": RUN,
        "TransformStartTime": start,
        "TransformEndTime": end,
        "TransformOutput": {"S3OutputPath": f"s3://out-data/scores/{RUN}/"},
        "TransformResources": {"InstanceType": "ml.inf2.xlarge", "InstanceCount": 2},
    }


@pytest.fixture
def s3(moto, monkeypatch: pytest.MonkeyPatch):
    summary.s3.cache_clear()
    monkeypatch.setenv(
        summary.SETTINGS_ENV,
        json.dumps({"input_prefix": "s3://in-data/pairs/", "price_per_instance_hour": 1.5}),
    )
    client = boto3.client("s3")
    for bucket in ("in-data", "out-data"):
        client.create_bucket(Bucket=bucket)
    for key, count in {"a.jsonl": 5, "day/b.jsonl": 3}.items():
        client.put_object(Bucket="in-data", Key=f"pairs/{key}", Body=lines(count, blank_every=2))
        client.put_object(Bucket="out-data", Key=f"scores/{RUN}/{key}.out", Body=lines(count))
    client.put_object(Bucket="in-data", Key="elsewhere/c.jsonl", Body=lines(9))  # not this job's
    yield client
    summary.s3.cache_clear()


def test_a_complete_run_is_summarised_next_to_its_outputs(s3) -> None:
    # Epoch milliseconds, as a number: 2 s for 8 records on 2 instances.
    result = summary.handler({"job": job_description(1.7e12, 1.7e12 + 2000)}, CONTEXT)
    assert result["complete"] is True
    assert (result["input_files"], result["records_in"], result["records_out"]) == (2, 8, 8)
    assert result["seconds"] == 2.0 and result["pairs_per_second"] == 4.0
    assert result["instance_hours"] == pytest.approx(2 * 2 / 3600, abs=1e-4)
    assert result["cost_usd"] == pytest.approx(1.5 * 2 * 2 / 3600, abs=1e-4)
    stored = json.loads(
        s3.get_object(Bucket="out-data", Key=f"scores/{RUN}/{SUMMARY_NAME}")["Body"].read()
    )
    assert stored == result


def test_a_missing_or_short_output_fails_the_run_after_saying_which(s3) -> None:
    s3.put_object(Bucket="out-data", Key=f"scores/{RUN}/a.jsonl.out", Body=lines(4))
    s3.put_object(Bucket="in-data", Key="pairs/late.jsonl", Body=lines(2))
    job = job_description("2026-12-01T03:00:00Z", "2026-12-01T03:10:00+00:00")
    with pytest.raises(summary.IncompleteOutput, match="1 inputs without output and 1 with"):
        summary.handler({"job": job}, CONTEXT)
    stored = json.loads(
        s3.get_object(Bucket="out-data", Key=f"scores/{RUN}/{SUMMARY_NAME}")["Body"].read()
    )
    assert stored["complete"] is False and stored["seconds"] == 600.0
    assert stored["missing_outputs"] == ["late.jsonl"]
    assert stored["mismatched_files"] == [{"file": "a.jsonl", "records_in": 5, "records_out": 4}]
