"""Find a deployed stack's resources from its CloudFormation outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.errors import UserError


@dataclass(frozen=True)
class StackTarget:
    """Which stack, in which region, reached how."""

    stack_name: str
    region: str
    aws: AwsAccess


def resolve_target(
    *,
    stack: str | None,
    config: Path | None,
    region: str | None,
    aws: AwsAccess,
    env_region: str | None,
) -> StackTarget:
    """``--stack`` wins; else the fleet plan names the stack of the region.

    With a fleet file the region is ``--region`` (one of the personalization section's
    regions), else the first of them; with ``--stack`` it is ``--region``, else
    AWS_REGION / AWS_DEFAULT_REGION.
    """
    if stack is not None:
        return StackTarget(stack_name=stack, region=_region(region, env_region), aws=aws)
    from inferfleet.cli.finetune.fleet_stacks import personalization_stacks

    config = config or Path("fleet.yaml")
    stacks = personalization_stacks(config)
    regions = list(stacks)
    if not regions:
        raise UserError(
            f"--config {config}: the fleet has no personalization section, so it deploys no "
            "fine-tune queue; add one (see the README) and deploy, or pass --stack NAME"
        )
    chosen = region or regions[0]
    if chosen not in regions:
        raise UserError(
            f"--region {chosen}: the fine-tune queue of {config} runs in {', '.join(regions)}; "
            "use one of those"
        )
    return StackTarget(stack_name=stacks[chosen], region=chosen, aws=aws)


def _region(region: str | None, env_region: str | None) -> str:
    chosen = region or env_region
    if not chosen:
        raise UserError("--region: no region given; pass --region, or set AWS_REGION")
    return chosen


def stack_outputs(target: StackTarget) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from inferfleet.cli.aws import CREDENTIALS_FIX

    cloudformation = target.aws.client("cloudformation", target.region)
    try:
        stacks = cloudformation.describe_stacks(StackName=target.stack_name)["Stacks"]
    except NoCredentialsError:
        raise UserError(f"no AWS credentials found; {CREDENTIALS_FIX}", exit_code=1) from None
    except ClientError as error:
        message = error.response["Error"].get("Message", "")
        if "does not exist" in message:
            raise UserError(
                f"stack {target.stack_name} does not exist in {target.region}; deploy it first "
                "(inferfleet deploy), or check --region / --stack",
                exit_code=1,
            ) from None
        raise UserError(f"describing stack {target.stack_name}: {message}", exit_code=1) from None
    except BotoCoreError as error:
        raise UserError(
            f"could not reach CloudFormation in {target.region} ({error}); check the network "
            "or --endpoint-url",
            exit_code=1,
        ) from None
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def require(outputs: dict[str, str], name: str, target: StackTarget, feature: str) -> str:
    if name not in outputs:
        raise UserError(
            f"stack {target.stack_name} has no output {name}: it was deployed without "
            f"{feature}; enable it in the fleet file and deploy again",
            exit_code=1,
        )
    return outputs[name]
