"""The publisher's adapter-component lifecycle for ``hosting: inference_components``.

Jobs, tables and artifacts are on moto; moto has no inference components, so SageMaker's side
is botocore's Stubber, which checks every request against SageMaker's real request shapes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from finetune_world import EVENT_SOURCE, TRAINING_JOB_PREFIX, FakeLambdaContext, FinetuneWorld

from inferfleet.constructs.finetune_handlers import clients, launcher, publisher, register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import adapter_component_name
from inferfleet.constructs.finetune_handlers.schema import MODEL_REMOVAL_DETAIL_TYPE, JobStatus

BASE = "base-llm"
ARN = "arn:aws:sagemaker:us-east-1:123456789012"


@pytest.fixture
def sagemaker(world: FinetuneWorld, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The publisher's SageMaker client, stubbed; the launcher keeps moto's."""
    monkeypatch.setenv("MODEL_HOSTING", "inference_components")
    monkeypatch.setenv("ENDPOINT_NAME", world.endpoint_name)
    monkeypatch.setenv("BASE_INFERENCE_COMPONENT", BASE)
    client = boto3.client("sagemaker", region_name=world.region)
    stubber = Stubber(client)
    publisher_clients = SimpleNamespace(
        dynamodb=clients.dynamodb, s3=clients.s3, events=clients.events, sagemaker=lambda: client
    )
    monkeypatch.setattr(publisher, "clients", publisher_clients)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def _store(world: FinetuneWorld) -> JobStore:
    return JobStore(world.client("dynamodb"), world.jobs_table, world.models_table)


def _train(world: FinetuneWorld, user: str, model: str) -> tuple[str, dict[str, Any]]:
    """A job of the user's model, trained: its id and its training job's state change."""
    body = json.dumps({"model_id": model, "hyperparameters": {}}).encode()
    job_id, upload = world.upload(user, manifest=body)
    register.handler(upload, FakeLambdaContext())
    launcher.handler({"sweep": True}, FakeLambdaContext())
    name = _store(world).get(user, job_id).training_job_name
    world.write_training_output(name)
    return job_id, world.training_job_event(name)


def _described(world: FinetuneWorld, name: str, artifact: str) -> dict[str, Any]:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    return {
        "InferenceComponentName": name,
        "InferenceComponentArn": f"{ARN}:inference-component/{name}",
        "EndpointName": world.endpoint_name,
        "EndpointArn": f"{ARN}:endpoint/{world.endpoint_name}",
        "Specification": {
            "BaseInferenceComponentName": BASE,
            "Container": {"ArtifactUrl": artifact},
        },
        "InferenceComponentStatus": "InService",
        "CreationTime": now,
        "LastModifiedTime": now,
    }


def _not_found(stubber: Stubber, name: str) -> None:
    stubber.add_client_error(
        "describe_inference_component",
        service_error_code="ValidationException",
        service_message=f"Could not find inference component '{ARN}:inference-component/{name}'.",
        http_status_code=400,
        expected_params={"InferenceComponentName": name},
    )


def test_an_adapter_component_is_created_updated_and_deleted_with_its_model(
    world: FinetuneWorld, sagemaker: Stubber
) -> None:
    component = adapter_component_name(TRAINING_JOB_PREFIX, "ada", "tone")
    first, ended = _train(world, "ada", "tone")
    first_url = f"s3://{world.model_bucket}/models/ada/tone/{first}.tar.gz"
    _not_found(sagemaker, component)
    sagemaker.add_response(
        "create_inference_component",
        {"InferenceComponentArn": f"{ARN}:inference-component/{component}"},
        {
            "InferenceComponentName": component,
            "EndpointName": world.endpoint_name,
            "Specification": {
                "BaseInferenceComponentName": BASE,
                "Container": {"ArtifactUrl": first_url},
            },
            "Tags": [
                {"Key": "inferfleet:user-id", "Value": "ada"},
                {"Key": "inferfleet:model-id", "Value": "tone"},
            ],
        },
    )

    publisher.handler(ended, FakeLambdaContext())
    publisher.handler(ended, FakeLambdaContext())  # a repeated change: nothing more to do

    record = _store(world).model("ada", "tone")
    assert (record["version"], record["component_version"]) == (first, first)
    assert record["inference_component"] == component

    second, ended = _train(world, "ada", "tone")
    second_url = f"s3://{world.model_bucket}/models/ada/tone/{second}.tar.gz"
    sagemaker.add_response(
        "describe_inference_component",
        _described(world, component, first_url),
        {"InferenceComponentName": component},
    )
    sagemaker.add_response(
        "update_inference_component",
        {"InferenceComponentArn": f"{ARN}:inference-component/{component}"},
        {
            "InferenceComponentName": component,
            "Specification": {
                "BaseInferenceComponentName": BASE,
                "Container": {"ArtifactUrl": second_url},
            },
        },
    )

    publisher.handler(ended, FakeLambdaContext())

    record = _store(world).model("ada", "tone")
    assert (record["version"], record["component_version"]) == (second, second)

    sagemaker.add_response(
        "describe_inference_component",
        _described(world, component, second_url),
        {"InferenceComponentName": component},
    )
    sagemaker.add_response("delete_inference_component", {}, {"InferenceComponentName": component})
    removal = {
        "source": EVENT_SOURCE,
        "detail-type": MODEL_REMOVAL_DETAIL_TYPE,
        "detail": {"user_id": "ada", "model_id": "tone"},
    }

    assert publisher.handler(removal, FakeLambdaContext()) == {"removed": ["ada/tone"]}
    assert _store(world).model("ada", "tone") is None


def test_an_update_sagemaker_refuses_is_retried_by_the_next_delivery(
    world: FinetuneWorld, sagemaker: Stubber
) -> None:
    """The job is READY and its record switched; the component follows on redelivery."""
    component = adapter_component_name(TRAINING_JOB_PREFIX, "bea", "tone")
    job_id, ended = _train(world, "bea", "tone")
    _not_found(sagemaker, component)
    sagemaker.add_client_error(
        "create_inference_component",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
    )

    with pytest.raises(Exception, match="ThrottlingException"):
        publisher.handler(ended, FakeLambdaContext())

    assert _store(world).get("bea", job_id).status is JobStatus.READY
    assert "component_version" not in _store(world).model("bea", "tone")
    assert _store(world).running_count() == 0
    _not_found(sagemaker, component)
    sagemaker.add_response(
        "create_inference_component",
        {"InferenceComponentArn": f"{ARN}:inference-component/{component}"},
    )

    publisher.handler(ended, FakeLambdaContext())

    assert _store(world).model("bea", "tone")["component_version"] == job_id
