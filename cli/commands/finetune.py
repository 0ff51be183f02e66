"""``finetune submit|status|list`` and ``invoke``: per-user models on a deployed stack.

Resources are found from the regional stack's CloudFormation outputs: the stack is
``--stack NAME``, or the fleet plan's stack in ``--region`` (one of the personalization
section's regions; default the first of them).
"""

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from inferfleet.cli.commands.fleet import JsonOption
from inferfleet.cli.errors import UserError

StackConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Fleet file the stack was deployed from (default: fleet.yaml)."
    ),
]
StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="CloudFormation stack name, instead of --config."),
]
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        "-r",
        help="Region of the stack (default: the first region of the personalization section).",
    ),
]
UserOption = Annotated[str, typer.Option("--user", "-u", help="User id.")]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        help="Send the AWS calls to this endpoint, e.g. a local moto.",
    ),
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (default: the standard chain).")
]

# CloudFormation stack names: a letter, then letters, digits and hyphens, 128 at most.
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
# SageMaker's limit on an InvokeEndpoint request body.
INVOKE_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

# Plain help and usage errors: these commands run from scripts and CI, where rich's import
# (about 0.1 s) is waste. Read by inferfleet.cli.main, since typer takes the root app's mode.
RICH_MARKUP_MODE = None

finetune_app = typer.Typer(
    help="Fine-tune per-user models and follow their jobs.",
    no_args_is_help=True,
)


def _target(
    stack: str | None,
    config: Path | None,
    region: str | None,
    endpoint_url: str | None,
    profile: str | None,
) -> Any:
    from inferfleet.cli.aws import AwsAccess, check_region
    from inferfleet.cli.finetune.stack_outputs import resolve_target

    if stack is not None and not STACK_NAME.fullmatch(stack):
        raise UserError(
            f"--stack {stack!r}: not a stack name; give the CloudFormation stack's name "
            "(a letter, then letters, digits and hyphens)"
        )
    if region is not None:
        check_region("--region", region)
    if stack is None and config is None:
        config = Path("fleet.yaml")
    return resolve_target(
        stack=stack,
        config=config,
        region=region,
        aws=AwsAccess(profile=profile, endpoint_url=endpoint_url),
        env_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )


@finetune_app.command()
def submit(
    user: UserOption,
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Training data: a file or a directory.")
    ],
    hp: Annotated[
        list[str] | None,
        typer.Option("--hp", help="Hyperparameter KEY=VALUE (repeatable)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model id (default: the job id).")
    ] = None,
    config: StackConfigOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload training data and queue a fine-tune job; prints the job id."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from inferfleet.cli.finetune.jobs import check_id, parse_hyperparameters
    from inferfleet.cli.finetune.jobs import submit as submit_job

    check_id("--user", user)
    if model is not None:
        check_id("--model", model)
    hyperparameters = parse_hyperparameters(hp or [])
    target = _target(stack, config, region, endpoint_url, profile)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        transient=True,
        console=_stderr(),
    ) as progress:
        task = progress.add_task("uploading", total=None)

        def advance(key: str, size: int) -> None:
            progress.update(task, advance=size, description=f"uploaded {key.rsplit('/', 1)[-1]}")

        submission = submit_job(
            target,
            user_id=user,
            data=data,
            hyperparameters=hyperparameters,
            model_id=model,
            on_file=advance,
        )
    if as_json:
        typer.echo(json.dumps(submission.as_dict(), indent=2))
        return
    typer.echo(submission.job_id)
    typer.secho(
        f"queued for user {user} as model {submission.model_id} ({submission.files} files, "
        f"{submission.bytes} bytes); follow it with: inferfleet finetune status "
        f"{submission.job_id} --user {user}",
        err=True,
    )


@finetune_app.command()
def status(
    job: Annotated[str, typer.Argument(help="Job id printed by `finetune submit`.")],
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="User the job was submitted for.")
    ] = None,
    config: StackConfigOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job of a user: status, training job, attempts, artifact or error."""
    from inferfleet.cli.finetune.jobs import check_id, job_status
    from inferfleet.constructs.finetune_handlers.layout import ID_RULE, is_id

    if not is_id(job):
        raise UserError(
            f"JOB {job!r}: not a job id; give the id `inferfleet finetune submit` printed "
            f"({ID_RULE}), or list them with `inferfleet finetune list`"
        )
    if user is None:
        raise UserError(
            f"--user: a job is known by its user and its id; pass the user it was submitted "
            f"for: inferfleet finetune status {job} --user USER"
        )
    check_id("--user", user)
    record = job_status(_target(stack, config, region, endpoint_url, profile), user, job)
    if as_json:
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    for field in (
        "job_id",
        "user_id",
        "model_id",
        "status",
        "training_job_name",
        "attempts",
        "artifact_url",
        "target_model",
        "error",
        "created_at",
        "updated_at",
    ):
        if record.get(field) not in (None, ""):
            typer.echo(f"{field:18} {record[field]}")


@finetune_app.command("list")
def list_jobs(
    user: UserOption,
    config: StackConfigOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's jobs and ready models."""
    from inferfleet.cli.finetune.jobs import check_id, user_jobs_and_models

    check_id("--user", user)
    listing = user_jobs_and_models(_target(stack, config, region, endpoint_url, profile), user)
    if as_json:
        typer.echo(json.dumps(listing, indent=2, default=str))
        return
    # Plain aligned columns: ids stay whole at any terminal width, and grep works.
    _print_columns(
        ["JOB", "MODEL", "STATUS", "CREATED", "ERROR"],
        [
            [j["job_id"], j["model_id"], j["status"], j["created_at"][:19], j.get("error") or ""]
            for j in listing["jobs"]
        ],
    )
    typer.echo("")
    _print_columns(
        ["MODEL", "VERSION", "ARTIFACT"],
        [[m["model_id"], m["version"], m["artifact_url"]] for m in listing["models"]],
    )


def _print_columns(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def invoke(
    user: UserOption,
    model: Annotated[str, typer.Option("--model", "-m", help="The user's model id.")],
    payload: Annotated[Path, typer.Option("--payload", "-p", help="Request body file.")],
    content_type: Annotated[
        str, typer.Option("--content-type", help="Content type of the payload.")
    ] = "application/json",
    config: StackConfigOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Invoke a user's model (its current version) on the endpoint; prints the response body."""
    from inferfleet.cli.finetune.invoke import invoke as invoke_model
    from inferfleet.cli.finetune.jobs import check_id
    from inferfleet.cli.user_files import regular_file_size

    check_id("--user", user)
    check_id("--model", model)
    if not content_type.strip():
        raise UserError("--content-type: empty; give the payload's type, e.g. application/json")
    size = regular_file_size(payload, flag="--payload", what="the file of the request body")
    if size > INVOKE_PAYLOAD_LIMIT_BYTES:
        raise UserError(
            f"--payload {payload}: {size / 2**20:.1f} MiB is over SageMaker's "
            f"{INVOKE_PAYLOAD_LIMIT_BYTES // 2**20} MiB limit for a request body; send less"
        )
    result = invoke_model(
        _target(stack, config, region, endpoint_url, profile),
        user_id=user,
        model_id=model,
        payload=payload,
        content_type=content_type,
    )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    typer.echo(result.body.decode("utf-8", "replace"))


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(finetune_app, name="finetune")
    app.command()(invoke)
