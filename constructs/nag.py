"""Acknowledging cdk-nag findings that are by design, each with its own reason."""

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope``
    and everything under it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def nag_resource(scope: IConstruct, arn: str) -> str:
    """An ARN as cdk-nag prints it in a finding: ``<LogicalId.Arn>`` for a
    ``Fn::GetAtt``, the literal otherwise."""
    if not Token.is_unresolved(arn):
        return arn
    resolved = Stack.of(scope).resolve(arn)
    logical_id, attribute = resolved["Fn::GetAtt"]
    return f"<{logical_id}.{attribute}>"
