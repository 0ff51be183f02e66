"""``bootstrap``, ``deploy``, ``status`` and ``destroy``: a fleet in AWS, region by region.

Every AWS call honours the standard credential chain (``--profile`` picks a named
profile) and ``--endpoint-url``, which sends the CDK CLI and the CLI's own calls alike to an
emulator such as moto; see inferfleet.cli.deploy.rollout for what an emulator changes. An
AWS_ENDPOINT_URL in the environment without the flag is refused rather than followed,
since emulator mode leaves resources out of the stacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inferfleet.cli.commands.fleet import ConfigOption, JsonOption, load_plan
from inferfleet.cli.errors import UserError

if TYPE_CHECKING:  # botocore and the CDK app stay out of `inferfleet --help`
    from inferfleet.cli.aws import AwsAccess
    from inferfleet.cli.deploy.cdk_cli import CdkCli
    from inferfleet.cli.deploy.events import EventStream
    from inferfleet.cli.deploy.rollout import Rollout, RolloutResult

RegionsOption = Annotated[
    list[str] | None,
    typer.Option("--region", "-r", help="A region of the fleet (repeatable)."),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every region of the fleet file.")]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send every AWS call, the CDK CLI's included, to this emulator, e.g. a local moto.",
    ),
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (default: the standard chain).")
]
WorkdirOption = Annotated[
    Path,
    typer.Option("--out", "-o", help="Cloud assembly, stack outputs and CDK CLI logs."),
]
DEFAULT_WORKDIR = Path("cdk.out.deploy")


def bootstrap(
    region: Annotated[
        list[str], typer.Option("--region", "-r", help="Region to bootstrap (repeatable).")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Fleet file; its account must match the credentials."),
    ] = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    out: WorkdirOption = DEFAULT_WORKDIR,
    as_json: JsonOption = False,
) -> None:
    """Bootstrap regions for the CDK (the toolkit stack `deploy` publishes through)."""
    from inferfleet.cli.aws import check_region
    from inferfleet.cli.deploy.bootstrap import bootstrap_regions

    for name in region:
        check_region("--region", name)
    expected: dict[str, str | None] = {}
    source = "the fleet file"
    if config is not None:
        plan = load_plan(config)
        source = str(config)
        expected = {r.region: r.account for r in plan.regions if r.region in region}
    aws, cdk = _access(endpoint_url, profile, config)
    result = bootstrap_regions(
        _unique(region),
        expected_accounts=expected,
        aws=aws,
        cdk=cdk,
        workdir=out,
        events=_events(as_json),
        source=source,
    )
    _finish(result)


def deploy(
    config: ConfigOption = Path("fleet.yaml"),
    region: RegionsOption = None,
    all_regions: AllOption = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Do not wait for services, targets and smoke.")
    ] = False,
    no_smoke: Annotated[
        bool, typer.Option("--no-smoke", help="Wait, but send no smoke request.")
    ] = False,
    wait_timeout: Annotated[
        float,
        typer.Option(
            "--wait-timeout", min=1, max=86400, help="Seconds to wait for one region to serve."
        ),
    ] = 1800,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show each stack's `cdk diff` (with every region, the global stack's too); "
            "change nothing.",
        ),
    ] = False,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    out: WorkdirOption = DEFAULT_WORKDIR,
    as_json: JsonOption = False,
) -> None:
    """Deploy region by region, canary (first region) first; stop at the first failure.
    With every region, the global stack of a traffic section comes last."""
    from inferfleet.cli.deploy.rollout import RolloutOptions

    regions = _selected(config, region, all_regions, verb="deploy")
    rollout = _rollout(config, endpoint_url, profile, out, as_json)
    if dry_run:
        result = rollout.diff(regions)
        if not as_json:
            for event in rollout.events.events:
                if event.phase == "diff" and event.detail.get("diff"):
                    typer.echo(event.detail["diff"] + "\n")
    else:
        options = RolloutOptions(wait=not no_wait, smoke=not no_smoke, wait_timeout_s=wait_timeout)
        result = rollout.deploy(regions, options)
    _finish(result)


def status(
    config: ConfigOption = Path("fleet.yaml"),
    region: RegionsOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per region: stack status, ECS tasks desired/running, target health, endpoints; and
    the global stack of a traffic section with each service's name."""
    from inferfleet.cli.deploy.rollout import rollout_regions
    from inferfleet.cli.deploy.status import global_status, region_status

    aws = _aws(endpoint_url, profile)
    plan = load_plan(config, emulator=aws.emulated)
    regions = rollout_regions(plan, region, source=str(config))
    aws.account(regions[0])
    statuses = [region_status(aws, plan, name) for name in regions]
    traffic = global_status(aws, plan) if region is None else None
    if as_json:
        payload = {"fleet": plan.name, "regions": [s.as_dict() for s in statuses]}
        if traffic is not None:
            payload["global"] = traffic.as_dict()
        typer.echo(json.dumps(payload, indent=2))
        return
    from inferfleet.cli.deploy.status_view import print_status

    print_status(plan.name, [*statuses, *([traffic] if traffic else [])])


def destroy(
    config: ConfigOption = Path("fleet.yaml"),
    region: RegionsOption = None,
    all_regions: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    out: WorkdirOption = DEFAULT_WORKDIR,
    as_json: JsonOption = False,
) -> None:
    """Delete the regions' stacks, in reverse order of the fleet file (with every region,
    the global stack of a traffic section first)."""
    regions = _selected(config, region, all_regions, verb="destroy")
    if not yes:
        if not sys.stdin.isatty():
            raise UserError("--yes: destroy asks for confirmation; pass --yes to run unattended")
        plan = load_plan(config)
        first = (
            [plan.global_plan.stack_name]
            if plan.global_plan and set(regions) == set(plan.region_names)
            else []
        )
        stacks = ", ".join([*first, *reversed(regions)])
        typer.confirm(f"Delete the stacks of {stacks} (in this order)?", abort=True)
    rollout = _rollout(config, endpoint_url, profile, out, as_json)
    _finish(rollout.destroy(regions))


# --- shared -------------------------------------------------------------------


def _selected(config: Path, region: list[str] | None, all_regions: bool, *, verb: str) -> list[str]:
    from inferfleet.cli.deploy.rollout import rollout_regions

    if all_regions and region:
        raise UserError(f"--all and --region: give one; --all {verb}s every region of {config}")
    if not all_regions and not region:
        raise UserError(f"--region: say which regions to {verb}: --region R (repeatable) or --all")
    plan = load_plan(config)
    return rollout_regions(plan, None if all_regions else region, source=str(config))


def _aws(endpoint_url: str | None, profile: str | None) -> AwsAccess:
    from inferfleet.cli.aws import AwsAccess

    # Emulator mode leaves resources out, so it is never turned on by the environment alone.
    from_environment = os.environ.get("AWS_ENDPOINT_URL")
    if from_environment and not endpoint_url:
        raise UserError(
            f"AWS_ENDPOINT_URL is set ({from_environment}) but --endpoint-url is not: pass "
            f"--endpoint-url {from_environment} to use that emulator, or unset AWS_ENDPOINT_URL "
            "to reach AWS"
        )
    return AwsAccess(profile=profile, endpoint_url=endpoint_url)


def _access(
    endpoint_url: str | None, profile: str | None, config: Path | None
) -> tuple[AwsAccess, CdkCli]:
    from inferfleet.cli.deploy.cdk_cli import CdkCli

    aws = _aws(endpoint_url, profile)
    starts = [Path.cwd()] + ([config.resolve().parent] if config else [])
    return aws, CdkCli.locate(*starts, endpoint_url=endpoint_url, profile=profile)


def _rollout(
    config: Path, endpoint_url: str | None, profile: str | None, out: Path, as_json: bool
) -> Rollout:
    from inferfleet.cli.deploy.rollout import Rollout

    aws, cdk = _access(endpoint_url, profile, config)
    plan = load_plan(config, emulator=aws.emulated)
    return Rollout(plan, config=config, aws=aws, cdk=cdk, workdir=out, events=_events(as_json))


def _events(as_json: bool) -> EventStream:
    from inferfleet.cli.deploy.events import EventStream, JsonLinesSink, RichView

    return EventStream([JsonLinesSink() if as_json else RichView()])


def _finish(result: RolloutResult) -> None:
    if not result.ok:
        raise UserError(result.summary(), exit_code=1)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def register(app: typer.Typer) -> None:
    app.command()(bootstrap)
    app.command()(deploy)
    app.command()(status)
    app.command()(destroy)
