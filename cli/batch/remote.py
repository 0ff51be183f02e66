"""``batch run`` and ``batch status`` on a deployed stack: its state machine, runs and files.

The state machine is found from the fleet plan (which region's stack, which output) and the
stack's CloudFormation outputs. A run's transform job is named after the job's prefix, the
MD5 of the execution's ARN and the attempt (the state machine's own ``States.Hash``), and
writes under ``<output_prefix><transform job>/``, so progress is read from S3: the input
files against the ``.out`` files written so far.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.errors import UserError
from inferfleet.cli.finetune.stack_outputs import StackTarget, require, stack_outputs
from inferfleet.constructs.batch_summary.layout import OUTPUT_SUFFIX, run_output_prefix
from inferfleet.constructs.props.batch_inference import split_s3_uri

FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
RECENT_RUNS = 5


@dataclass(frozen=True)
class BatchTarget:
    """One batch job in one region of a deployed fleet."""

    job: str
    prefix: str  # the props' name: start of the transform jobs' names
    input_prefix: str
    output_prefix: str
    max_attempts: int
    stack: StackTarget
    output_key: str

    def state_machine_arn(self) -> str:
        outputs = stack_outputs(self.stack)
        return require(outputs, self.output_key, self.stack, f"the batch job {self.job}")


@dataclass
class RunStatus:
    execution_arn: str
    status: str
    started: str
    stopped: str | None
    transform_job: str
    output_folder: str
    input_files: int | None = None
    output_files: int | None = None
    transform_status: str | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None
    attempts: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(config: Path, job: str, region: str | None, aws: AwsAccess) -> BatchTarget:
    from inferfleet.cli.commands.fleet import load_plan

    plan = load_plan(config)
    if not plan.batch_jobs:
        raise UserError(
            f"--config {config}: the fleet has no batch_jobs; add one (see the README's batch "
            "jobs section) and deploy, or run a folder here with --local"
        )
    try:
        planned = plan.batch_job(job)
    except KeyError:
        known = ", ".join(j.name for j in plan.batch_jobs)
        raise UserError(f"--job {job}: not a batch job of {config}; use one of {known}") from None
    chosen = region or planned.regions[0]
    if chosen not in planned.regions:
        raise UserError(
            f"--region {chosen}: batch job {job} runs in {', '.join(planned.regions)}; use one "
            "of those"
        )
    props = planned.props
    return BatchTarget(
        job=job,
        prefix=props.name,
        input_prefix=props.input_prefix,
        output_prefix=props.output_prefix,
        max_attempts=props.max_attempts,
        stack=StackTarget(stack_name=plan.region(chosen).stack_name, region=chosen, aws=aws),
        output_key=planned.state_machine_output,
    )


def transform_job_name(prefix: str, execution_arn: str, attempt: int) -> str:
    """The name the state machine gives the run's transform job (``States.Hash`` MD5)."""
    return f"{prefix}-{hashlib.md5(execution_arn.encode()).hexdigest()}-{attempt}"


def _client(target: BatchTarget, service: str) -> Any:
    return target.stack.aws.client(service, target.stack.region)


def _calling(what: str, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as error:
        message = error.response["Error"].get("Message", "")
        raise UserError(f"{what}: {message}", exit_code=1) from None
    except BotoCoreError as error:
        raise UserError(
            f"{what}: {error}; check the network, or --endpoint-url for an emulator", exit_code=1
        ) from None


def start(target: BatchTarget) -> str:
    machine = target.state_machine_arn()
    sfn = _client(target, "stepfunctions")
    started = _calling(
        f"starting batch job {target.job}",
        lambda: sfn.start_execution(stateMachineArn=machine, input="{}"),
    )
    return started["executionArn"]


def _count(target: BatchTarget, uri: str, suffix: str) -> int | None:
    location = split_s3_uri(uri)
    if location is None:
        return None
    bucket, prefix = location
    s3 = _client(target, "s3")
    from botocore.exceptions import BotoCoreError, ClientError

    count = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            count += sum(
                1
                for item in page.get("Contents", [])
                if item["Key"].endswith(suffix) and not item["Key"].endswith("/")
            )
    except (BotoCoreError, ClientError):
        return None  # progress is best effort: the run's status does not depend on it
    return count


def status_of(target: BatchTarget, execution_arn: str, *, files: bool = True) -> RunStatus:
    sfn = _client(target, "stepfunctions")
    described = _calling(
        f"reading run {execution_arn}",
        lambda: sfn.describe_execution(executionArn=execution_arn),
    )
    attempts = [
        transform_job_name(target.prefix, execution_arn, attempt)
        for attempt in range(target.max_attempts)
    ]
    current = attempts[0]
    transform_status = None
    sagemaker = _client(target, "sagemaker")
    from botocore.exceptions import BotoCoreError, ClientError

    for name in attempts:
        try:
            job = sagemaker.describe_transform_job(TransformJobName=name)
        except (BotoCoreError, ClientError):
            break
        current, transform_status = name, job.get("TransformJobStatus")
    folder = run_output_prefix(target.output_prefix, current)
    run = RunStatus(
        execution_arn=execution_arn,
        status=described["status"],
        started=str(described["startDate"]),
        stopped=str(described["stopDate"]) if described.get("stopDate") else None,
        transform_job=current,
        output_folder=folder,
        transform_status=transform_status,
        error=described.get("error"),
        cause=described.get("cause"),
        attempts=attempts,
    )
    if described["status"] == "SUCCEEDED" and described.get("output"):
        try:
            run.summary = json.loads(described["output"])
        except ValueError:
            run.summary = None
    if files:
        run.input_files = _count(target, target.input_prefix, "")
        run.output_files = _count(target, folder, OUTPUT_SUFFIX)
    return run


def recent_runs(target: BatchTarget) -> list[dict[str, Any]]:
    machine = target.state_machine_arn()
    sfn = _client(target, "stepfunctions")
    listed = _calling(
        f"listing runs of batch job {target.job}",
        lambda: sfn.list_executions(stateMachineArn=machine, maxResults=RECENT_RUNS),
    )
    return [
        {
            "execution_arn": item["executionArn"],
            "status": item["status"],
            "started": str(item["startDate"]),
            "stopped": str(item["stopDate"]) if item.get("stopDate") else None,
        }
        for item in listed["executions"]
    ]


def wait(
    target: BatchTarget,
    execution_arn: str,
    on_status: Callable[[RunStatus], None],
    *,
    poll_s: float = 30.0,
) -> RunStatus:
    """Until the run ends; ``on_status`` after every poll."""
    while True:
        run = status_of(target, execution_arn)
        on_status(run)
        if run.finished:
            return run
        time.sleep(poll_s)
