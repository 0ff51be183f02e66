"""Checks before anything changes: whose credentials, and whether a region is bootstrapped."""

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.events import StepFailed

# Written by `cdk bootstrap` with the default qualifier; the CDK CLI reads it before a deploy.
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"


def check_account(expected: str | None, actual: str, *, source: str) -> None:
    if expected is not None and expected != actual:
        raise StepFailed(
            f"the credentials are for account {actual} but {source} deploys to account "
            f"{expected}; use credentials of {expected} (--profile or AWS_PROFILE)"
        )


def check_bootstrapped(aws: AwsAccess, region: str, account: str) -> str:
    """The bootstrap version of ``region``; StepFailed naming the command to run if there is
    none. A check that is not allowed (no ssm:GetParameter) is left to the CDK CLI."""
    from botocore.exceptions import ClientError

    try:
        parameter = aws.client("ssm", region).get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterNotFound":
            return "unknown"
        raise StepFailed(
            f"region {region} of account {account} is not bootstrapped for the CDK; run "
            f"`inferfleet bootstrap --region {region}` (with the same credentials)"
        ) from None
    return parameter["Parameter"]["Value"]
