"""The resources a fine-tune queue stack creates, made with boto3 on a moto server.

Tables, indexes, the stream and buckets follow the same schema constants the construct uses.
Events are built the way AWS delivers them: S3 notifications from the real object, stream
records read from moto's DynamoDB stream, training-job state changes from DescribeTrainingJob.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import boto3

from inferfleet.constructs.finetune_handlers import clients
from inferfleet.constructs.finetune_handlers.layout import data_prefix, manifest_key
from inferfleet.constructs.finetune_handlers.schema import (
    BY_STATUS_INDEX,
    BY_TRAINING_JOB_INDEX,
    CREATED_AT,
    JOB_KEY,
    LAUNCH_STREAM_FILTER,
    MODEL_KEY,
    USER_KEY,
)
from inferfleet.constructs.finetune_handlers.settings import (
    Hosting,
    LauncherSettings,
    PublisherSettings,
    RegisterSettings,
    Tables,
    TrainingLimits,
)

ACCOUNT = "123456789012"
TRAINING_JOB_PREFIX = "ift"
MODEL_PREFIX = "models/"
EVENT_SOURCE = "inferfleet.finetune.test"


@dataclass
class FakeLambdaContext:
    """What Lambda passes as ``context``; the remaining time is what the launcher budgets by."""

    function_name: str = "finetune-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:finetune-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_s: float = 300.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_s * 1000)


def _index(name: str, partition: str, sort: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": sort, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


@dataclass
class FinetuneWorld:
    suffix: str
    region: str = "us-east-1"

    @property
    def jobs_table(self) -> str:
        return f"jobs-{self.suffix}"

    @property
    def models_table(self) -> str:
        return f"models-{self.suffix}"

    @property
    def idempotency_table(self) -> str:
        return f"idempotency-{self.suffix}"

    @property
    def data_bucket(self) -> str:
        return f"finetune-data-{self.suffix}"

    @property
    def model_bucket(self) -> str:
        return f"finetune-models-{self.suffix}"

    @property
    def single_role_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/finetune-single"

    @property
    def batch_role_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/finetune-batch"

    @property
    def endpoint_name(self) -> str:
        return f"users-{self.suffix}"

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def create(self) -> None:
        dynamodb = self.client("dynamodb")
        attribute = {"AttributeType": "S"}
        dynamodb.create_table(
            TableName=self.jobs_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, **attribute}
                for name in (USER_KEY, JOB_KEY, "status", "training_job_name", CREATED_AT)
            ],
            KeySchema=[
                {"AttributeName": USER_KEY, "KeyType": "HASH"},
                {"AttributeName": JOB_KEY, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                _index(BY_STATUS_INDEX, "status", CREATED_AT),
                _index(BY_TRAINING_JOB_INDEX, "training_job_name", JOB_KEY),
            ],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        dynamodb.create_table(
            TableName=self.models_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": USER_KEY, **attribute},
                {"AttributeName": MODEL_KEY, **attribute},
            ],
            KeySchema=[
                {"AttributeName": USER_KEY, "KeyType": "HASH"},
                {"AttributeName": MODEL_KEY, "KeyType": "RANGE"},
            ],
        )
        self.create_idempotency_table()
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.data_bucket)
        s3.create_bucket(Bucket=self.model_bucket)

    def create_idempotency_table(self) -> None:
        self.client("dynamodb").create_table(
            TableName=self.idempotency_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )

    def environment(self, **overrides: str) -> dict[str, str]:
        """What the construct sets on the functions, built from the same settings classes."""
        env = {
            **Tables(jobs=self.jobs_table, models=self.models_table).to_env(),
            **TrainingLimits(max_epochs=10, max_seq_len=2048, max_batch_size=32).to_env(),
            **RegisterSettings(
                data_bucket=self.data_bucket, idempotency_table=self.idempotency_table
            ).to_env(),
            **LauncherSettings(
                data_bucket=self.data_bucket,
                training_job_prefix=TRAINING_JOB_PREFIX,
                training_image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/finetune:latest",
                single_role_arn=self.single_role_arn,
                batch_role_arn=self.batch_role_arn,
                instance_type="ml.trn1.2xlarge",
                volume_size_gb=100,
                max_runtime_s=3600,
                network_isolation=True,
                warm_pool_keep_alive_s=0,
                max_running_jobs=50,
                create_calls_per_second=1000,
                max_attempts=5,
                lease_s=600,
                batch_threshold=0,
                batch_tasks=4,
                batch_instances=2,
                hosting=Hosting.MULTI_MODEL,
            ).to_env(),
            **PublisherSettings(
                data_bucket=self.data_bucket,
                training_job_prefix=TRAINING_JOB_PREFIX,
                model_bucket=self.model_bucket,
                model_prefix=MODEL_PREFIX,
                event_bus="default",
                event_source=EVENT_SOURCE,
                reconcile_after_s=900,
                hosting=Hosting.MULTI_MODEL,
                endpoint_name="",
                base_component_name="",
            ).to_env(),
            "AWS_CLIENT_MAX_ATTEMPTS": "2",
            "POWERTOOLS_SERVICE_NAME": "finetune-test",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        env.update(overrides)
        return env

    # -- uploads and S3 events -------------------------------------------------------------

    def upload(
        self,
        user_id: str,
        job_id: str | None = None,
        *,
        hyperparameters: dict[str, Any] | None = None,
        manifest: bytes | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Put data and manifest the way the CLI does; returns the job id and the S3 event."""
        job_id = job_id or uuid.uuid4().hex
        s3 = self.client("s3")
        s3.put_object(
            Bucket=self.data_bucket,
            Key=f"{data_prefix(user_id, job_id)}train.jsonl",
            Body=b'{"text": "hello"}\n',
        )
        body = manifest or json.dumps({"hyperparameters": hyperparameters or {}}).encode()
        key = manifest_key(user_id, job_id)
        s3.put_object(Bucket=self.data_bucket, Key=key, Body=body)
        return job_id, self.s3_event(key)

    def s3_event(self, key: str) -> dict[str, Any]:
        head = self.client("s3").head_object(Bucket=self.data_bucket, Key=key)
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": self.region,
                    "eventTime": "2026-11-21T12:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "manifest-created",
                        "bucket": {
                            "name": self.data_bucket,
                            "arn": f"arn:aws:s3:::{self.data_bucket}",
                            "ownerIdentity": {"principalId": "EXAMPLE"},
                        },
                        "object": {
                            # S3 URL-encodes the key, spaces as '+'.
                            "key": quote_plus(key, safe="/"),
                            "size": head["ContentLength"],
                            "eTag": head["ETag"].strip('"'),
                            "sequencer": f"{time.time_ns():016X}",
                        },
                    },
                }
            ]
        }

    # -- the job table's stream ------------------------------------------------------------

    def stream_reader(self) -> StreamReader:
        return StreamReader(self)

    # -- training job state changes --------------------------------------------------------

    def training_job_event(
        self, name: str, *, status: str = "Completed", failure_reason: str | None = None
    ) -> dict[str, Any]:
        detail = self.client("sagemaker").describe_training_job(TrainingJobName=name)
        detail = json.loads(json.dumps(detail, default=str))
        detail.pop("ResponseMetadata", None)
        detail["TrainingJobStatus"] = status
        if failure_reason:
            detail["FailureReason"] = failure_reason
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": "2026-11-21T12:00:00Z",
            "region": self.region,
            "resources": [detail["TrainingJobArn"]],
            "detail": detail,
        }

    def write_training_output(self, name: str) -> None:
        """What SageMaker uploads when a training job completes."""
        artifact = self.client("sagemaker").describe_training_job(TrainingJobName=name)
        uri = artifact["ModelArtifacts"]["S3ModelArtifacts"]
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=f"model of {name}".encode())

    def training_jobs(self) -> list[str]:
        paginator = self.client("sagemaker").get_paginator("list_training_jobs")
        return [
            summary["TrainingJobName"]
            for page in paginator.paginate()
            for summary in page["TrainingJobSummaries"]
        ]


class StreamReader:
    """Reads moto's DynamoDB stream of the jobs table into Lambda-shaped events."""

    def __init__(self, world: FinetuneWorld) -> None:
        self.world = world
        streams = world.client("dynamodbstreams")
        table = world.client("dynamodb").describe_table(TableName=world.jobs_table)["Table"]
        self.stream_arn = table["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]
        self.iterator = streams.get_shard_iterator(
            StreamArn=self.stream_arn,
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """New records that pass the launcher's event-source filter, as Lambda gets them."""
        response = self.world.client("dynamodbstreams").get_records(ShardIterator=self.iterator)
        self.iterator = response["NextShardIterator"]
        records = json.loads(json.dumps(response["Records"], default=str))
        for record in records:
            record["eventSourceARN"] = self.stream_arn
        return [record for record in records if matches(LAUNCH_STREAM_FILTER, record)]


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge-style matching for the plain patterns used here (exact values in lists)."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        if isinstance(wanted, dict):
            if not isinstance(event[key], dict) or not matches(wanted, event[key]):
                return False
        elif event[key] not in wanted:
            return False
    return True


def lambda_stream_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def reset_clients() -> None:
    clients.client.cache_clear()
