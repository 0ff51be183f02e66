"""Invoke one user's model: the version its record holds, on the endpoint that serves it.

On a multi-model endpoint that is the version's ``TargetModel``; with inference components,
the user's adapter component.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferfleet.cli.errors import UserError
from inferfleet.cli.finetune.jobs import job_store
from inferfleet.cli.finetune.stack_outputs import StackTarget, require, stack_outputs
from inferfleet.infra import names


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    version: str
    target_model: str | None
    inference_component: str | None
    content_type: str
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "version": self.version,
            "target_model": self.target_model,
            "inference_component": self.inference_component,
            "content_type": self.content_type,
            "body": self.body.decode("utf-8", "replace"),
        }


def invoke(
    target: StackTarget, *, user_id: str, model_id: str, payload: Path, content_type: str
) -> Invocation:
    from botocore.exceptions import ClientError

    if not payload.is_file():
        raise UserError(f"--payload {payload}: no such file")
    outputs = stack_outputs(target)
    endpoint = require(outputs, names.PERSONALIZATION_ENDPOINT_NAME, target, "a SageMaker endpoint")
    record = job_store(target, outputs).model(user_id, model_id)
    if record is None:
        raise UserError(
            f"--model {model_id}: user {user_id} has no such model (yet); see "
            f"`inferfleet finetune list --user {user_id}`",
            exit_code=1,
        )
    component = record.get("inference_component")
    if component:
        route = {"InferenceComponentName": component}
        served = f"adapter component {component}"
    elif record.get("target_model"):
        route = {"TargetModel": record["target_model"]}
        served = record["target_model"]
    else:
        raise UserError(
            f"--model {model_id}: user {user_id}'s model is published but its adapter "
            "component is not serving yet; try again in a few minutes",
            exit_code=1,
        )
    runtime = target.aws.client("sagemaker-runtime", target.region)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType=content_type, Body=payload.read_bytes(), **route
        )
    except ClientError as error:
        raise UserError(
            f"endpoint {endpoint} refused the request for {served}: "
            f"{error.response['Error'].get('Message', error)}",
            exit_code=1,
        ) from None
    return Invocation(
        endpoint=endpoint,
        version=record["version"],
        target_model=route.get("TargetModel"),
        inference_component=route.get("InferenceComponentName"),
        content_type=response.get("ContentType", ""),
        body=response["Body"].read(),
    )
