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
    """``--stack`` wins; else the fleet file's name and the region give the stack name.

    The region is ``--region``, else the fleet's first region, else AWS_REGION /
    AWS_DEFAULT_REGION.
    """
    from inferfleet.infra.naming import regional_stack_name

    if stack is not None:
        return StackTarget(stack_name=stack, region=_region(region, env_region), aws=aws)
    if config is None or not config.exists():
        raise UserError(
            f"--config {config or 'fleet.yaml'}: no such file; pass the fleet file the stack "
            "was deployed from, or --stack NAME"
        )
    from inferfleet.cli.commands.fleet import load_spec

    spec = load_spec(config)
    region = _region(region or spec.regions[0].name, env_region)
    return StackTarget(stack_name=regional_stack_name(spec.name, region), region=region, aws=aws)


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
