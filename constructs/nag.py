"""Acknowledging cdk-nag findings that are by design, each with its own reason.

cdk-nag reports a finding once per policy resource (``AwsSolutions-IAM5[Resource::*]``), so an
acknowledgement on a role would also hide every wildcard an application adds to that role later.
Statements that need one therefore live in a policy of their own
(:func:`acknowledged_policy`), acknowledged there alone, and a role's default policy carries
no acknowledgement of a wildcard: whatever is added with ``add_to_policy`` is still checked.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_cdk import Acknowledgment, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope``
    and everything under it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def nag_resource(scope: IConstruct, arn: str) -> str:
    """An ARN as cdk-nag prints it in a finding: ``<LogicalId.Arn>`` for a ``Fn::GetAtt``,
    ``<AWS::Partition>`` for a ``Ref``, the parts of a ``Fn::Join`` joined, the literal
    otherwise."""
    if not Token.is_unresolved(arn):
        return arn
    return _as_nag_prints(Stack.of(scope).resolve(arn))


def _as_nag_prints(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    separator, parts = value["Fn::Join"]
    return separator.join(_as_nag_prints(part) for part in parts)


def acknowledged_policy(
    role: iam.Role,
    construct_id: str,
    findings: Mapping[str, str],
    statements: Sequence[iam.PolicyStatement] = (),
) -> iam.Policy:
    """``statements`` in a policy of their own, attached to ``role``, with ``findings``
    (finding id -> reason) acknowledged on that policy only.

    The policy is a child of the role, so whatever depends on the role (a function, a model)
    also waits for it."""
    policy = iam.Policy(role, construct_id, statements=list(statements))
    role.attach_inline_policy(policy)
    for rule, reason in findings.items():
        acknowledge(policy, rule, reason)
    return policy


StatementMatch = Callable[[iam.PolicyStatement], bool]


class RoutingRole(iam.Role):
    """An :class:`iam.Role` that sends the statements aws-cdk-lib writes for it (ECR pulls, the
    ECS agent, stream event sources) to acknowledged policies of their own.

    :meth:`route` names which statements (by a match on actions and resources) go where;
    every other statement, an application's included, goes to the default policy as usual.
    """

    def route(
        self, match: StatementMatch, policy: str | None, findings: Mapping[str, str] = {}
    ) -> None:
        """Statements ``match`` accepts go to the acknowledged policy ``policy`` (made on the
        first one, with ``findings`` acknowledged on it); with ``None`` they are dropped (the
        construct writes a narrower statement of its own instead)."""
        self._routes = [*getattr(self, "_routes", []), (match, policy, dict(findings))]

    def add_to_principal_policy(
        self, statement: iam.PolicyStatement
    ) -> iam.AddToPrincipalPolicyResult:
        for match, policy_id, findings in getattr(self, "_routes", []):
            if not match(statement):
                continue
            if policy_id is None:
                return iam.AddToPrincipalPolicyResult(statement_added=True)
            policy = self.node.try_find_child(policy_id) or acknowledged_policy(
                self, policy_id, findings
            )
            policy.add_statements(statement)  # type: ignore[union-attr]
            return iam.AddToPrincipalPolicyResult(statement_added=True, policy_dependable=policy)
        return super().add_to_principal_policy(statement)


def only_actions(*actions: str, resource: str | None = "*") -> StatementMatch:
    """A statement with exactly these actions (and, unless ``resource`` is None, on exactly
    that one resource)."""
    wanted = set(actions)

    def match(statement: iam.PolicyStatement) -> bool:
        if set(statement.actions) != wanted:
            return False
        return resource is None or list(statement.resources) == [resource]

    return match


def within_actions(actions: frozenset[str]) -> StatementMatch:
    """A statement whose every action is one of ``actions``."""
    return lambda statement: bool(statement.actions) and set(statement.actions) <= actions
