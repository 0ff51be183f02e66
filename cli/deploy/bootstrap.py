"""``cdk bootstrap`` of each region: the toolkit stack the CDK CLI deploys through."""

from pathlib import Path

from inferfleet.cli import output_folder
from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.cdk_cli import CdkCli
from inferfleet.cli.deploy.events import EventStream, StepFailed
from inferfleet.cli.deploy.preflight import check_account, check_bootstrapped
from inferfleet.cli.deploy.rollout import WORKDIR_FLAG, WRITER, RolloutResult, emit_summary


def bootstrap_regions(
    regions: list[str],
    *,
    expected_accounts: dict[str, str | None],
    aws: AwsAccess,
    cdk: CdkCli,
    workdir: Path,
    events: EventStream,
    source: str = "the fleet file",
) -> RolloutResult:
    """Bootstrap ``regions`` in order; ``expected_accounts`` (from the fleet file, when
    given) must match the credentials' account."""
    result = RolloutResult("bootstrap", untouched=list(regions))
    workdir = workdir.resolve()
    output_folder.claim(workdir, flag=WORKDIR_FLAG, writer=WRITER)
    try:
        with events.step("credentials") as step:
            account = aws.account(regions[0])
            for region in regions:
                check_account(expected_accounts.get(region), account, source=source)
            step.detail = {"account": account, "endpoint_url": aws.endpoint_url}
        for region in regions:
            result.untouched.remove(region)
            with events.step("bootstrap", region=region) as step:
                result.failed_region = region
                run = cdk.bootstrap(
                    account, region, log=workdir / "logs" / f"bootstrap-{region}.log", cwd=workdir
                )
                if not run.ok:
                    raise StepFailed(
                        f"cdk bootstrap failed: {run.error_summary()} (full output: {run.log})"
                    )
                step.detail = {
                    "account": account,
                    "bootstrap_version": check_bootstrapped(aws, region, account),
                }
            result.failed_region = None
            result.completed.append(region)
    except StepFailed as failure:
        result.failed_phase = events.events[-1].phase
        result.message = str(failure)
    emit_summary(events, result)
    return result
