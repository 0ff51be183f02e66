"""The one way these constructs make an S3 bucket: private, SSL-only, encrypted."""

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from inferfleet.constructs.nag import acknowledge


def private_bucket(
    scope: Construct,
    construct_id: str,
    *,
    access_logs_bucket: s3.IBucket | None,
    access_logs_prefix: str,
    versioned: bool = True,
    lifecycle_rules: Sequence[s3.LifecycleRule] = (),
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
) -> s3.Bucket:
    """S3-managed encryption, SSL enforced, public access blocked, ACLs off, and
    server access logs to ``access_logs_bucket`` (S1 acknowledged when there is none)."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=versioned,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy,
        server_access_logs_bucket=access_logs_bucket,
        server_access_logs_prefix=access_logs_prefix if access_logs_bucket else None,
        lifecycle_rules=list(lifecycle_rules) or None,
    )
    if access_logs_bucket is None:
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "access logging needs a log bucket the application owns; pass "
            "access_logs_bucket to turn it on (object reads are in CloudTrail data events)",
        )
    return bucket
