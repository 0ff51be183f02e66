"""Invoke one user's model on the multi-model endpoint (TargetModel)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferfleet.cli.errors import UserError
from inferfleet.cli.finetune.stack_outputs import StackTarget, require, stack_outputs
from inferfleet.constructs.finetune_handlers.layout import target_model
from inferfleet.constructs.finetune_queue import MODELS_TABLE_OUTPUT
from inferfleet.constructs.sagemaker_endpoint import ENDPOINT_NAME_OUTPUT


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    target_model: str
    content_type: str
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "target_model": self.target_model,
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
    endpoint = require(outputs, ENDPOINT_NAME_OUTPUT, target, "a SageMaker endpoint")
    if MODELS_TABLE_OUTPUT in outputs:
        _require_ready(target, outputs[MODELS_TABLE_OUTPUT], user_id, model_id)
    model = target_model(user_id, model_id)
    runtime = target.aws.client("sagemaker-runtime", target.region)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetModel=model,
            ContentType=content_type,
            Body=payload.read_bytes(),
        )
    except ClientError as error:
        raise UserError(
            f"endpoint {endpoint} refused the request for {model}: "
            f"{error.response['Error'].get('Message', error)}",
            exit_code=1,
        ) from None
    return Invocation(
        endpoint=endpoint,
        target_model=model,
        content_type=response.get("ContentType", ""),
        body=response["Body"].read(),
    )


def _require_ready(target: StackTarget, table: str, user_id: str, model_id: str) -> None:
    dynamodb = target.aws.client("dynamodb", target.region)
    item = dynamodb.get_item(
        TableName=table, Key={"user_id": {"S": user_id}, "model_id": {"S": model_id}}
    ).get("Item")
    if item is None:
        raise UserError(
            f"--model {model_id}: user {user_id} has no such model (yet); see "
            f"`inferfleet finetune list --user {user_id}`",
            exit_code=1,
        )
