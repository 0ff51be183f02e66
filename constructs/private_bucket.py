"""The one way these constructs make an S3 bucket: private, SSL-only, encrypted."""

from collections.abc import Sequence

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
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
    server access logs to ``access_logs_bucket`` (S1 acknowledged when there is none).

    Log delivery is granted by ``access_logs_bucket``'s policy (an imported bucket needs that
    statement from its owner), never by an ACL: aws-cdk-lib grants by ACL unless the app sets
    ``@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy``, and an ACL fails on a bucket with
    ACLs off, so a plain ``App()`` would fail."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=versioned,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy,
        lifecycle_rules=list(lifecycle_rules) or None,
    )
    if access_logs_bucket is not None:
        _log_to(bucket, access_logs_bucket, access_logs_prefix)
    else:
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "access logging needs a log bucket the application owns; pass "
            "access_logs_bucket to turn it on (object reads are in CloudTrail data events)",
        )
    return bucket


def _log_to(bucket: s3.Bucket, logs: s3.IBucket, prefix: str) -> None:
    bucket.node.default_child.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(  # type: ignore[union-attr]
        destination_bucket_name=logs.bucket_name, log_file_prefix=prefix
    )
    logs.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[logs.arn_for_objects(f"{prefix}*")],
            conditions={
                "ArnLike": {"aws:SourceArn": bucket.bucket_arn},
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            },
        )
    )
