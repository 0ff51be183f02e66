"""``--scale instances=...``: resize the target between steps, and put it back afterwards.

One :class:`Scaler` per kind of target. Each reads the original capacity before
its first change and restores it in :meth:`Scaler.restore`, which the runner
calls whatever happens (a failed step, an AWS error, Ctrl-C). Waits poll the
service and give up after ``--scale-timeout`` with an error naming what did
not become ready; a Ctrl-C while waiting stops the wait.

- local fleet: nginx routes to the first N emulators (:meth:`LocalFleet.resize`);
- ECS: the service's desired count (N x ``--tasks-per-instance``) and, with
  ``--asg-name``, the Auto Scaling group's capacity; waits until the service runs
  every task (and, with ``--target-group-arn``, that many targets are healthy);
- SageMaker: ``UpdateEndpointWeightsAndCapacities`` on the endpoint's first
  variant, then a wait until the endpoint is InService at that count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from inferfleet.cli.errors import UserError

POLL_S = 5.0


class Scaler(Protocol):
    def resize(self, instances: int) -> None: ...

    def restore(self) -> None: ...


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    stopped: Callable[[], bool] = lambda: False,
    poll_s: float = POLL_S,
) -> None:
    """Poll ``ready`` until it holds; UserError (exit 1) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    poll_s = min(poll_s, max(0.1, timeout_s / 10))
    while not ready():
        if stopped():
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"--scale: {what} after {timeout_s:g} s (--scale-timeout); the original "
                "capacity is being restored",
                exit_code=1,
            )
        time.sleep(poll_s)


def aws_call(flag: str, action: str, call: Callable[[], dict]) -> dict:
    """``call()``; an AWS error becomes a one-paragraph UserError (exit 1) naming the flag."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (BotoCoreError, ClientError) as error:
        raise aws_error(flag, action, error) from None


def aws_error(flag: str, action: str, error: Exception) -> UserError:
    return UserError(
        f"{flag}: {action} failed ({error}); check the name, the region and the permission",
        exit_code=1,
    )


class LocalScaler:
    """The local fleet runs the sweep's largest size; nginx routes to the first N servers."""

    def __init__(self, fleet: object) -> None:
        self._fleet = fleet

    def resize(self, instances: int) -> None:
        self._fleet.resize(instances)  # type: ignore[attr-defined]

    def restore(self) -> None:
        """The local fleet is torn down after the run; nothing outlives it."""


class SageMakerScaler:
    """The instance count of a SageMaker endpoint's (first) production variant."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        region: str | None,
        timeout_s: float,
        stopped: Callable[[], bool],
        poll_s: float = POLL_S,
    ) -> None:
        import boto3

        self.endpoint_name = endpoint_name
        self._client = boto3.client("sagemaker", region_name=region)
        self._timeout_s, self._stopped, self._poll_s = timeout_s, stopped, poll_s
        self._variant: str | None = None
        self._original: int | None = None
        self._current: int | None = None

    def _describe(self) -> dict:
        return aws_call(
            "--target",
            f"DescribeEndpoint {self.endpoint_name}",
            lambda: self._client.describe_endpoint(EndpointName=self.endpoint_name),
        )

    def _set(self, instances: int) -> None:
        aws_call(
            "--scale",
            f"UpdateEndpointWeightsAndCapacities {self.endpoint_name}",
            lambda: self._client.update_endpoint_weights_and_capacities(
                EndpointName=self.endpoint_name,
                DesiredWeightsAndCapacities=[
                    {"VariantName": self._variant, "DesiredInstanceCount": instances}
                ],
            ),
        )
        self._current = instances

        def in_service() -> bool:
            endpoint = self._describe()
            variant = next(
                v for v in endpoint["ProductionVariants"] if v["VariantName"] == self._variant
            )
            return (
                endpoint["EndpointStatus"] == "InService"
                and variant.get("CurrentInstanceCount") == instances
            )

        wait_until(
            in_service,
            timeout_s=self._timeout_s,
            what=f"endpoint {self.endpoint_name} was not InService with {instances} instances",
            stopped=self._stopped,
            poll_s=self._poll_s,
        )

    def resize(self, instances: int) -> None:
        if self._original is None:
            variant = self._describe()["ProductionVariants"][0]
            self._variant = variant["VariantName"]
            self._original = self._current = int(variant["CurrentInstanceCount"])
        if instances != self._current:
            self._set(instances)

    def restore(self) -> None:
        if self._original is not None and self._current != self._original:
            self._stopped = lambda: False  # the restore itself is always waited for
            self._set(self._original)


class EcsScaler:
    """An ECS service's desired count and, optionally, its Auto Scaling group's capacity."""

    def __init__(
        self,
        cluster: str,
        service: str,
        *,
        asg_name: str | None,
        target_group_arn: str | None,
        tasks_per_instance: int,
        region: str | None,
        timeout_s: float,
        stopped: Callable[[], bool],
        poll_s: float = POLL_S,
    ) -> None:
        import boto3

        self.cluster, self.service, self.asg_name = cluster, service, asg_name
        self.target_group_arn = target_group_arn
        self.tasks_per_instance = tasks_per_instance
        self._ecs = boto3.client("ecs", region_name=region)
        self._autoscaling = boto3.client("autoscaling", region_name=region)
        self._elbv2 = boto3.client("elbv2", region_name=region)
        self._timeout_s, self._stopped, self._poll_s = timeout_s, stopped, poll_s
        self._original: tuple[int, dict | None] | None = None
        self._current: int | None = None

    def _service(self) -> dict:
        reply = aws_call(
            "--ecs-service",
            f"DescribeServices {self.service}",
            lambda: self._ecs.describe_services(cluster=self.cluster, services=[self.service]),
        )
        if not reply["services"]:
            raise UserError(
                f"--ecs-service: no service {self.service} in cluster {self.cluster}", exit_code=1
            )
        return reply["services"][0]

    def _group(self) -> dict | None:
        if self.asg_name is None:
            return None
        reply = aws_call(
            "--asg-name",
            f"DescribeAutoScalingGroups {self.asg_name}",
            lambda: self._autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[self.asg_name]
            ),
        )
        if not reply["AutoScalingGroups"]:
            raise UserError(f"--asg-name: no Auto Scaling group {self.asg_name}", exit_code=1)
        group = reply["AutoScalingGroups"][0]
        return {key: group[key] for key in ("MinSize", "MaxSize", "DesiredCapacity")}

    def _set(self, tasks: int, group: dict | None) -> None:
        if group is not None:
            aws_call(
                "--asg-name",
                f"UpdateAutoScalingGroup {self.asg_name}",
                lambda: self._autoscaling.update_auto_scaling_group(
                    AutoScalingGroupName=self.asg_name, **group
                ),
            )
        aws_call(
            "--ecs-service",
            f"UpdateService {self.service}",
            lambda: self._ecs.update_service(
                cluster=self.cluster, service=self.service, desiredCount=tasks
            ),
        )
        self._current = tasks
        wait_until(
            lambda: self._serving(tasks),
            timeout_s=self._timeout_s,
            what=f"service {self.service} did not run {tasks} healthy task(s)",
            stopped=self._stopped,
            poll_s=self._poll_s,
        )

    def _serving(self, tasks: int) -> bool:
        service = self._service()
        if service["runningCount"] != tasks or service.get("pendingCount", 0):
            return False
        if self.target_group_arn is None:
            return True
        health = aws_call(
            "--target-group-arn",
            "DescribeTargetHealth",
            lambda: self._elbv2.describe_target_health(TargetGroupArn=self.target_group_arn),
        )
        healthy = [
            target
            for target in health["TargetHealthDescriptions"]
            if target["TargetHealth"]["State"] == "healthy"
        ]
        return len(healthy) == tasks

    def resize(self, instances: int) -> None:
        if self._original is None:
            self._original = (int(self._service()["desiredCount"]), self._group())
            self._current = self._original[0]
        tasks = instances * self.tasks_per_instance
        group = None
        if self.asg_name is not None:
            group = {"MinSize": instances, "MaxSize": instances, "DesiredCapacity": instances}
        if tasks != self._current:
            self._set(tasks, group)

    def restore(self) -> None:
        if self._original is not None and self._current != self._original[0]:
            self._stopped = lambda: False
            self._set(*self._original)
