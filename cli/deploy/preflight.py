"""Checks before anything changes: whose credentials, whether a region is bootstrapped,
and whether a Docker engine is there to build the stacks' image assets."""

import json
import os
import subprocess
from pathlib import Path

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.events import StepFailed

# The CDK CLI runs $CDK_DOCKER (default docker) to build and push image assets.
DOCKER_ENV = "CDK_DOCKER"
_DOCKER_TIMEOUT_S = 30

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


def docker_image_assets(assembly: Path, stacks: list[str]) -> list[str]:
    """Display names of the Docker image assets ``stacks`` publish, from their asset
    manifests in the cloud assembly."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    artifacts = manifest.get("artifacts", {})
    images: list[str] = []
    for stack in stacks:
        for dependency in artifacts.get(stack, {}).get("dependencies", []):
            artifact = artifacts.get(dependency, {})
            if artifact.get("type") != "cdk:asset-manifest":
                continue
            assets = json.loads((assembly / artifact["properties"]["file"]).read_text())
            for asset_id, image in assets.get("dockerImages", {}).items():
                images.append(image.get("displayName") or asset_id)
    return images


def check_docker(images: list[str]) -> str:
    """The Docker engine's version when ``images`` need building ("not needed" when there
    are none); StepFailed saying what to do when no engine answers."""
    if not images:
        return "not needed"
    docker = os.environ.get(DOCKER_ENV, "docker")
    try:
        answer = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=_DOCKER_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        reason = f"{docker} is not installed"
    except subprocess.TimeoutExpired:
        reason = f"`{docker} info` did not answer within {_DOCKER_TIMEOUT_S} s"
    else:
        if answer.returncode == 0 and answer.stdout.strip():
            return answer.stdout.strip()
        lines = [line for line in (answer.stderr or answer.stdout).splitlines() if line.strip()]
        reason = f"`{docker} info`: {lines[-1].strip() if lines else f'exit {answer.returncode}'}"
    shown = ", ".join(images[:3]) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
    raise StepFailed(
        f"the stacks build {len(images)} Docker image(s) ({shown}) at deploy, but no Docker "
        f"engine answers ({reason}); give registry images in the fleet file "
        "(services.<name>.container.image; personalization.queue.training_image_uri for the "
        "fine-tune image), or deploy from a machine where Docker runs"
    )
