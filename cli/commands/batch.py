"""``batch run`` and ``batch status``: the fleet's batch jobs, deployed or on this machine.

``batch run --config fleet.yaml --job NAME`` starts the job's state machine (found from the
fleet plan and its stack's outputs), shows the files written so far and waits for the run
to end, or returns at once with ``--no-wait``. ``batch run --local --input DIR --output
DIR`` runs the pair-neuron image's scorer here and feeds it the way Batch Transform does,
writing the same layout; Ctrl-C leaves finished files complete and the next run skips them.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from inferfleet.cli.commands.fleet import JsonOption
from inferfleet.cli.errors import UserError

INTERRUPTED_EXIT = 130
# Plain help and usage errors, read by inferfleet.cli.main (typer takes the root app's mode).
RICH_MARKUP_MODE = None

batch_app = typer.Typer(
    help="Run the fleet's batch jobs (SageMaker Batch Transform), or a folder here.",
    no_args_is_help=True,
)

BatchConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Fleet file the job is deployed from.")
]
JobOption = Annotated[
    str | None, typer.Option("--job", "-j", help="Batch job name (batch_jobs[].name).")
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", "-r", help="Region of the job (default: the first it runs in)."),
]
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


def _props_default(name: str) -> Any:
    from inferfleet.constructs.props.batch_inference import NeuronBatchInferenceProps

    return next(f.default for f in fields(NeuronBatchInferenceProps) if f.name == name)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _target(config: Path, job: str | None, region: str | None, endpoint_url: str | None,
            profile: str | None) -> Any:  # fmt: skip
    from inferfleet.cli.aws import AwsAccess, check_region
    from inferfleet.cli.batch.remote import resolve

    if job is None:
        raise UserError("--job: name the batch job to run (one of the fleet file's batch_jobs)")
    if region is not None:
        check_region("--region", region)
    return resolve(config, job, region, AwsAccess(profile=profile, endpoint_url=endpoint_url))


@batch_app.command()
def run(
    config: BatchConfigOption = Path("fleet.yaml"),
    job: JobOption = None,
    region: RegionOption = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Start the run and return its ARN.")
    ] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Score --input into --output on this machine.")
    ] = False,
    input_dir: Annotated[
        Path | None, typer.Option("--input", "-i", help="--local: folder of JSON Lines files.")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output", "-o", help="--local: folder for the .out files.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="--local: encoder folder or traced graphs (default: the MiniLM)."),
    ] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(
            help="--local: feed as this instance would (one copy and request per NeuronCore); "
            "default the job's, else ml.inf2.xlarge."
        ),
    ] = None,
    copies: Annotated[
        int | None, typer.Option(help="--local: scorer copies (default: the NeuronCores).")
    ] = None,
    buckets: Annotated[
        str | None, typer.Option(help="--local: sequence buckets, e.g. 16,32,64,128.")
    ] = None,
    max_payload_mb: Annotated[
        float | None, typer.Option(help="--local: mini-batch size limit (default the job's).")
    ] = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    poll_seconds: Annotated[float, typer.Option(help="Seconds between polls.", hidden=True)] = 30,
    as_json: JsonOption = False,
) -> None:
    """Run a batch job: start it on its stack and wait, or score a folder with --local."""
    if local:
        _run_local(
            config if job else None, job, input_dir, output_dir, model, instance_type, copies,
            buckets, max_payload_mb, as_json,
        )  # fmt: skip
        return
    for flag, value in (("--input", input_dir), ("--output", output_dir), ("--model", model)):
        if value is not None:
            raise UserError(f"{flag} is for --local runs; add --local, or leave {flag} out")
    from inferfleet.cli.batch import remote

    target = _target(config, job, region, endpoint_url, profile)
    execution = remote.start(target)
    if no_wait:
        if as_json:
            typer.echo(json.dumps({"job": target.job, "execution_arn": execution, "waited": False}))
        else:
            typer.echo(execution)
            _stderr().print(
                f"started; follow it with: inferfleet batch status --config {config} "
                f"--job {target.job} --execution {execution}",
                highlight=False,
            )
        return
    finished = _follow(target, execution, poll_seconds, as_json)
    _report(finished, as_json)
    if finished.status != "SUCCEEDED":
        raise typer.Exit(1)


def _follow(target: Any, execution: str, poll_s: float, as_json: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from inferfleet.cli.batch import remote

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"{target.job}: starting", total=None)

        def show(run: Any) -> None:
            state = run.transform_status or "waiting for its transform job"
            progress.update(
                task,
                total=run.input_files,
                completed=run.output_files or 0,
                description=f"{target.job}: {run.status}, {run.transform_job} {state}",
            )

        try:
            return remote.wait(target, execution, show, poll_s=poll_s)
        except KeyboardInterrupt:
            _stderr().print(
                f"stopped waiting; the run goes on in AWS: {execution}\nfollow it with: "
                f"inferfleet batch status --job {target.job} --execution {execution}",
                highlight=False,
            )
            raise typer.Exit(INTERRUPTED_EXIT) from None


def _report(run: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(run.as_dict(), indent=2, default=str))
        return
    console = _stderr()
    if run.status == "SUCCEEDED" and run.summary:
        summary = run.summary
        cost = summary.get("cost_usd")
        console.print(
            f"[green]succeeded[/green] {run.transform_job}: {summary['records_in']} records in, "
            f"{summary['records_out']} out, {summary.get('pairs_per_second')} pairs/s, "
            f"{summary['instance_hours']} instance-hours"
            + (f", ~${cost}" if cost is not None else "")
            + f"; summary {summary.get('summary')}",
            highlight=False,
        )
    elif run.status == "SUCCEEDED":
        console.print(f"[green]succeeded[/green] {run.transform_job}", highlight=False)
    else:
        console.print(
            f"[red]{run.status.lower()}[/red] {run.execution_arn}: {run.error or ''} "
            f"{run.cause or ''}".rstrip(),
            highlight=False,
        )


@batch_app.command()
def status(
    config: BatchConfigOption = Path("fleet.yaml"),
    job: JobOption = None,
    region: RegionOption = None,
    execution: Annotated[
        str | None, typer.Option(help="A run's execution ARN (default: the latest run).")
    ] = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """A batch job's recent runs, and the files the latest (or --execution) has written."""
    from inferfleet.cli.batch import remote

    target = _target(config, job, region, endpoint_url, profile)
    runs = remote.recent_runs(target)
    chosen = execution or (runs[0]["execution_arn"] if runs else None)
    current = remote.status_of(target, chosen) if chosen else None
    if as_json:
        shown = {"job": target.job, "runs": runs, "run": current.as_dict() if current else None}
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    console = _stderr()
    if not runs and current is None:
        console.print(f"{target.job}: no runs yet; start one with `inferfleet batch run`")
        return
    for item in runs:
        typer.echo(f"{item['started']}  {item['status']:<10} {item['execution_arn']}")
    if current is not None:
        files = (
            f"{current.output_files} of {current.input_files} files written"
            if current.input_files is not None
            else "files unknown"
        )
        typer.echo(
            f"run {current.execution_arn}: {current.status}; transform job "
            f"{current.transform_job} {current.transform_status or '(not started)'}; {files} "
            f"in {current.output_folder}"
        )
        if current.summary:
            typer.echo(json.dumps(current.summary, indent=2))


# -- local ----------------------------------------------------------------------------------


def _run_local(
    config: Path | None,
    job: str | None,
    input_dir: Path | None,
    output_dir: Path | None,
    model: Path | None,
    instance_type: str | None,
    copies: int | None,
    buckets: str | None,
    max_payload_mb: float | None,
    as_json: bool,
) -> None:
    from inferfleet.cli.batch.local_transform import TransformError, TransformLimits, check_folders
    from inferfleet.constructs.props.batch_inference import BATCH_TRANSFORM_INSTANCE_TYPES

    if input_dir is None or output_dir is None:
        raise UserError("--local needs --input DIR (JSON Lines files) and --output DIR")
    try:
        check_folders(input_dir, output_dir)
    except TransformError as error:
        raise UserError(str(error), exit_code=error.exit_code) from None
    payload_mb = _props_default("max_payload_mb")
    retries = _props_default("invocations_max_retries")
    chosen_type = instance_type or _props_default("instance_type")
    if config is not None and job is not None:
        from inferfleet.cli.commands.fleet import load_plan

        plan = load_plan(config)
        try:
            props = plan.batch_job(job).props
        except KeyError:
            known = ", ".join(j.name for j in plan.batch_jobs) or "none"
            raise UserError(f"--job {job}: not a batch job of {config}; jobs: {known}") from None
        chosen_type = instance_type or props.instance_type
        payload_mb, retries = props.max_payload_mb, props.invocations_max_retries
    if chosen_type not in BATCH_TRANSFORM_INSTANCE_TYPES:
        raise UserError(
            f"--instance-type {chosen_type!r}: use a Batch Transform Neuron type: "
            + ", ".join(BATCH_TRANSFORM_INSTANCE_TYPES)
        )
    cores = BATCH_TRANSFORM_INSTANCE_TYPES[chosen_type].neuron_cores
    # One scorer process per copy: more than the largest instance has NeuronCores would
    # only start processes until the machine runs out of memory.
    most = max(kind.neuron_cores for kind in BATCH_TRANSFORM_INSTANCE_TYPES.values())
    if copies is not None and not 1 <= copies <= most:
        raise UserError(
            f"--copies {copies}: use at least 1 and at most {most} (one per NeuronCore)"
        )
    if max_payload_mb is not None:
        if not 0 < max_payload_mb <= 100:
            raise UserError(f"--max-payload-mb {max_payload_mb:g}: use a size in (0, 100]")
        payload_mb = max_payload_mb
    copies = copies or cores
    limits = TransformLimits(int(payload_mb * 1024 * 1024), copies, retries)
    report = _transform(input_dir, output_dir, model, copies, buckets, limits, as_json)
    shown = {**report.as_dict(), "copies": copies, "instance_type": chosen_type}
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
    else:
        _stderr().print(
            f"{'interrupted' if report.interrupted else 'done'}: {report.records_scored} "
            f"records scored in {report.seconds:.1f} s ({report.pairs_per_second:.1f} pairs/s, "
            f"{copies} copies), {shown['records_skipped']} in finished files skipped; outputs "
            f"in {output_dir}",
            highlight=False,
        )
    if report.interrupted:
        raise typer.Exit(INTERRUPTED_EXIT)


def _transform(
    input_dir: Path,
    output_dir: Path,
    model: Path | None,
    copies: int,
    buckets: str | None,
    limits: Any,
    as_json: bool,
) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from inferfleet.cli.batch.local_scorer import LocalPairScorer, ScorerOptions, default_model_dir
    from inferfleet.cli.batch.local_transform import (
        Progress as Step,
    )
    from inferfleet.cli.batch.local_transform import (
        TransformError,
        input_files,
        run_transform,
    )

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    total = sum((input_dir / relative).stat().st_size for relative in input_files(input_dir))
    options = ScorerOptions(model or default_model_dir(), copies=copies, buckets=buckets)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_stderr(),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("starting the scorer", total=total)

        def advance(step: Step) -> None:
            verb = "skipped" if step.skipped else "scoring"
            progress.update(task, advance=step.bytes, description=f"{verb} {step.file}")

        try:
            with LocalPairScorer(options) as scorer:
                return run_transform(input_dir, output_dir, scorer.invoke, limits, advance)
        except TransformError as error:
            raise UserError(str(error), exit_code=error.exit_code) from None
        except KeyboardInterrupt:  # while the scorer started: nothing was written
            _stderr().print("interrupted before the scorer was ready; nothing written")
            raise typer.Exit(INTERRUPTED_EXIT) from None


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
