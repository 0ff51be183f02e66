"""A deployed personalization stack on moto: the resources the CLI reads, and their outputs."""

import json
from dataclasses import dataclass

import moto_server as moto_fixtures
from finetune_world import FinetuneWorld

from inferfleet.constructs.finetune_handlers.schema import (
    BY_STATUS_INDEX,
    BY_TRAINING_JOB_INDEX,
    JOB_KEY,
    USER_KEY,
)
from inferfleet.infra import names


def _index(name: str, partition: str, sort: str) -> dict:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": sort, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def personalization_template(world: FinetuneWorld, endpoint_name: str) -> dict:
    """The fine-tune resources the CLI touches, under the output names the constructs emit."""
    string = {"AttributeType": "S"}
    return {
        "Resources": {
            "Jobs": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": world.jobs_table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [
                        {"AttributeName": name, **string}
                        for name in (
                            USER_KEY,
                            JOB_KEY,
                            "status",
                            "training_job_name",
                            "created_at",
                        )
                    ],
                    "KeySchema": [
                        {"AttributeName": USER_KEY, "KeyType": "HASH"},
                        {"AttributeName": JOB_KEY, "KeyType": "RANGE"},
                    ],
                    "GlobalSecondaryIndexes": [
                        _index(BY_STATUS_INDEX, "status", "created_at"),
                        _index(BY_TRAINING_JOB_INDEX, "training_job_name", JOB_KEY),
                    ],
                    "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
                },
            },
            "Models": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": world.models_table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [
                        {"AttributeName": "user_id", **string},
                        {"AttributeName": "model_id", **string},
                    ],
                    "KeySchema": [
                        {"AttributeName": "user_id", "KeyType": "HASH"},
                        {"AttributeName": "model_id", "KeyType": "RANGE"},
                    ],
                },
            },
            "Idempotency": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": world.idempotency_table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "id", **string}],
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                },
            },
            "Data": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": world.data_bucket}},
            "ModelsBucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {"BucketName": world.model_bucket},
            },
        },
        "Outputs": {
            names.FINETUNE_DATA_BUCKET: {"Value": {"Ref": "Data"}},
            names.FINETUNE_JOBS_TABLE: {"Value": {"Ref": "Jobs"}},
            names.FINETUNE_MODELS_TABLE: {"Value": {"Ref": "Models"}},
            names.PERSONALIZATION_ENDPOINT_NAME: {"Value": endpoint_name},
        },
    }


@dataclass
class Deployed:
    world: FinetuneWorld
    stack_name: str
    endpoint_name: str
    server: moto_fixtures.MotoServer

    def cli_args(self) -> list[str]:
        return [
            "--stack",
            self.stack_name,
            "--region",
            self.world.region,
            "--endpoint-url",
            self.server.url,
        ]


def deploy_stack(world: FinetuneWorld, stack_name: str, endpoint_name: str) -> None:
    cloudformation = world.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(personalization_template(world, endpoint_name)),
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
