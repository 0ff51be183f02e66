"""A/B variants: which routing policy the load balancer uses for a step, and the paired ratios.

Variants of one load step run back to back (A B A B ... with ``--repeat``), so
slow drift of the target hits both arms alike; each repeat forms a pair.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from inferfleet.cli.bench.metrics import Metric
from inferfleet.cli.bench.models import Comparison, Ratio, StepResult, Study, StudyCell, StudyRow
from inferfleet.cli.errors import UserError
from inferfleet.constructs.routing import Routing

ALGORITHM_ATTRIBUTE = "load_balancing.algorithm.type"
# An ALB applies attribute changes node by node within seconds; wait before measuring.
ALB_SETTLE_S = 10.0


class RoutingSwitch(Protocol):
    def apply(self, routing: str) -> None: ...

    def restore(self) -> None: ...


class AlbRouting:
    """Sets a deployed ALB target group's algorithm per variant; puts the original back."""

    def __init__(
        self,
        target_group_arn: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        settle_s: float = ALB_SETTLE_S,
    ) -> None:
        import boto3

        self.arn = target_group_arn
        self.settle_s = settle_s
        self._elbv2 = boto3.client("elbv2", region_name=region, endpoint_url=endpoint_url)
        self._original: str | None = None
        self._current: str | None = None

    def _read(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self._elbv2.describe_target_group_attributes(TargetGroupArn=self.arn)
        except (BotoCoreError, ClientError) as error:
            raise UserError(
                f"--target-group-arn: cannot read {self.arn} ({error}); check the ARN, the region "
                "and elasticloadbalancing:DescribeTargetGroupAttributes permission",
                exit_code=1,
            ) from None
        attributes = {item["Key"]: item["Value"] for item in reply["Attributes"]}
        return attributes.get(ALGORITHM_ATTRIBUTE, "round_robin")

    def _write(self, algorithm: str) -> None:
        self._elbv2.modify_target_group_attributes(
            TargetGroupArn=self.arn,
            Attributes=[{"Key": ALGORITHM_ATTRIBUTE, "Value": algorithm}],
        )
        self._current = algorithm

    def apply(self, routing: str) -> None:
        if self._original is None:
            self._original = self._read()
            self._current = self._original
        algorithm = Routing.parse(routing).alb
        if algorithm != self._current:
            self._write(algorithm)
            time.sleep(self.settle_s)

    def restore(self) -> None:
        if self._original is not None and self._current != self._original:
            self._write(self._original)


# Fields of DescribeEndpointConfig that CreateEndpointConfig takes back as they are.
ENDPOINT_CONFIG_FIELDS = (
    "ProductionVariants", "DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig",
    "ExplainerConfig", "ShadowProductionVariants", "ExecutionRoleArn", "VpcConfig",
    "EnableNetworkIsolation",
)  # fmt: skip


class SageMakerRouting:
    """Switches a SageMaker endpoint's routing strategy by swapping in a copy of its config.

    For each strategy other than the endpoint's own, bench creates a copy of the
    endpoint config with that ``RoutingConfig.RoutingStrategy`` on every variant
    and updates the endpoint to it (keeping the current instance counts and
    weights), waiting for InService. :meth:`restore` puts the original config
    back and deletes the copies it created, whatever happened.
    """

    def __init__(
        self,
        endpoint_name: str,
        *,
        region: str | None,
        timeout_s: float,
        stopped: Callable[[], bool],
        poll_s: float = 5.0,
    ) -> None:
        import boto3

        self.endpoint_name = endpoint_name
        self._client = boto3.client("sagemaker", region_name=region)
        self._timeout_s, self._stopped, self._poll_s = timeout_s, stopped, poll_s
        self._original: str | None = None
        self._original_strategy: str | None = None
        self._copies: dict[str, str] = {}
        self.current: str | None = None

    def _call(self, action: str, call: Callable[[], dict]) -> dict:
        from inferfleet.cli.bench.scaling import aws_call

        return aws_call("--compare", f"{action} on endpoint {self.endpoint_name}", call)

    def _read(self) -> None:
        endpoint = self._call(
            "DescribeEndpoint",
            lambda: self._client.describe_endpoint(EndpointName=self.endpoint_name),
        )
        self._original = self.current = endpoint["EndpointConfigName"]
        config = self._describe_config(self._original)
        first = config["ProductionVariants"][0]
        self._original_strategy = (first.get("RoutingConfig") or {}).get(
            "RoutingStrategy", "LEAST_OUTSTANDING_REQUESTS"
        )

    def _describe_config(self, name: str) -> dict:
        return self._call(
            f"DescribeEndpointConfig {name}",
            lambda: self._client.describe_endpoint_config(EndpointConfigName=name),
        )

    def copy_name(self, strategy: str) -> str:
        """The copy's name: the original's (cut to fit 63 characters), marked as bench's."""
        assert self._original is not None
        digest = hashlib.sha256(f"{self._original}/{strategy}".encode()).hexdigest()[:6]
        suffix = f"-bench-{strategy.lower().replace('_', '')[:8]}-{digest}"
        return self._original[: 63 - len(suffix)] + suffix

    def _copy(self, strategy: str) -> str:
        assert self._original is not None
        config = self._describe_config(self._original)
        request = {key: config[key] for key in ENDPOINT_CONFIG_FIELDS if key in config}
        request["ProductionVariants"] = [
            {**variant, "RoutingConfig": {"RoutingStrategy": strategy}}
            for variant in config["ProductionVariants"]
        ]
        name = self.copy_name(strategy)
        from botocore.exceptions import ClientError

        try:
            self._client.create_endpoint_config(EndpointConfigName=name, **request)
        except ClientError as error:
            if "already exist" not in str(error):
                from inferfleet.cli.bench.scaling import aws_error

                action = f"CreateEndpointConfig {name} on endpoint {self.endpoint_name}"
                raise aws_error("--compare", action, error) from None
            # A copy left by an interrupted earlier run: bench's own name, so bench replaces it.
            self._call(
                f"DeleteEndpointConfig {name}",
                lambda: self._client.delete_endpoint_config(EndpointConfigName=name),
            )
            self._call(
                f"CreateEndpointConfig {name}",
                lambda: self._client.create_endpoint_config(EndpointConfigName=name, **request),
            )
        self._copies[strategy] = name
        return name

    def _switch(self, config_name: str, *, stopped: Callable[[], bool]) -> None:
        self._call(
            f"UpdateEndpoint to {config_name}",
            lambda: self._client.update_endpoint(
                EndpointName=self.endpoint_name,
                EndpointConfigName=config_name,
                RetainAllVariantProperties=True,
            ),
        )
        self.current = config_name

        def in_service() -> bool:
            endpoint = self._call(
                "DescribeEndpoint",
                lambda: self._client.describe_endpoint(EndpointName=self.endpoint_name),
            )
            if endpoint["EndpointStatus"] == "Failed":
                raise UserError(
                    f"--compare: endpoint {self.endpoint_name} failed to update to "
                    f"{config_name}: {endpoint.get('FailureReason', 'no reason given')}",
                    exit_code=1,
                )
            return (
                endpoint["EndpointStatus"] == "InService"
                and endpoint["EndpointConfigName"] == config_name
            )

        from inferfleet.cli.bench.scaling import wait_until

        wait_until(
            in_service,
            timeout_s=self._timeout_s,
            what=f"endpoint {self.endpoint_name} was not InService on {config_name}",
            stopped=stopped,
            poll_s=self._poll_s,
        )

    def apply(self, routing: str) -> None:
        if self._original is None:
            self._read()
        strategy = Routing.parse(routing).sagemaker
        if strategy is None:
            routes = " or ".join(r for r in Routing if r.sagemaker is not None)
            raise UserError(f"--compare: SageMaker endpoints route by {routes}, not {routing}")
        assert self._original is not None
        wanted = (
            self._original
            if strategy == self._original_strategy
            else self._copies.get(strategy) or self._copy(strategy)
        )
        if wanted != self.current:
            self._switch(wanted, stopped=self._stopped)

    def restore(self) -> None:
        try:
            if self._original is not None and self.current != self._original:
                self._switch(self._original, stopped=lambda: False)
        finally:
            for name in self._copies.values():
                self._call(
                    f"DeleteEndpointConfig {name}",
                    lambda name=name: self._client.delete_endpoint_config(EndpointConfigName=name),
                )
            self._copies.clear()


class LocalRouting:
    """The local rehearsal's nginx upstream policy."""

    def __init__(self, fleet: object) -> None:
        self._fleet = fleet

    def apply(self, routing: str) -> None:
        self._fleet.set_routing(routing)  # type: ignore[attr-defined]

    def restore(self) -> None:
        """The local fleet is torn down after the run; nothing outlives it."""


def compared_figures() -> list[tuple[type[Metric], str | None]]:
    """(metric, point) pairs the A/B ratios compare, in the registry's order."""
    return [(metric, point) for metric in Metric.registry.values() for point in metric.compared]


def _pairs(
    steps: Sequence[StepResult], baseline: str, variant: str
) -> dict[tuple[float, int | None], list[tuple[StepResult, StepResult]]]:
    """Steps of ``baseline`` and ``variant`` run back to back: per (load, instances), by repeat."""
    by_key = {(step.load, step.instances, step.repeat, step.variant): step for step in steps}
    pairs: dict[tuple[float, int | None], list[tuple[StepResult, StepResult]]] = {}
    for load, instances, repeat, name in by_key:
        other = by_key.get((load, instances, repeat, variant))
        if name == baseline and other is not None:
            pairs.setdefault((load, instances), []).append(
                (by_key[(load, instances, repeat, baseline)], other)
            )
    return pairs


def paired_ratios(steps: Sequence[StepResult], variants: Sequence[str]) -> list[Comparison]:
    """Each variant against the first, per load and repeat; aggregated as a geometric mean."""
    if len(variants) < 2:
        return []
    baseline = variants[0]
    comparisons = []
    for variant in variants[1:]:
        for (load, instances), pairs in _pairs(steps, baseline, variant).items():
            ratios = {}
            for metric, point in compared_figures():
                per_repeat = [
                    _ratio(metric.value(b, point), metric.value(a, point)) for a, b in pairs
                ]
                ratios[metric.name(point)] = Ratio(per_repeat=per_repeat, **_spread(per_repeat))
            comparisons.append(
                Comparison(
                    load=load,
                    instances=instances,
                    variant=variant,
                    baseline=baseline,
                    pairs=len(pairs),
                    valid_pairs=sum(1 for a, b in pairs if a.valid and b.valid),
                    ratios=ratios,
                )
            )
    return comparisons


def study_table(
    steps: Sequence[StepResult], variants: Sequence[str], users_per_instance: int
) -> Study | None:
    """The routing study's table: per instance count, P99 E2E and throughput per instance
    per variant, and how much better the first variant did than the second, pair by pair."""
    if len(variants) < 2 or not any(step.instances for step in steps):
        return None
    first, second = variants[0], variants[1]
    rows = []
    for (_, instances), pairs in sorted(_pairs(steps, first, second).items(), key=_by_instances):
        if instances is None:
            continue
        e2e = {first: [a.latency["e2e_ms"].p99 for a, _ in pairs],
               second: [b.latency["e2e_ms"].p99 for _, b in pairs]}  # fmt: skip
        throughput = {first: [a.output_tokens_per_instance_per_min for a, _ in pairs],
                      second: [b.output_tokens_per_instance_per_min for _, b in pairs]}  # fmt: skip
        e2e_ratios = [_ratio(a, b) for a, b in zip(e2e[first], e2e[second], strict=True)]
        throughput_ratios = [
            _ratio(a, b) for a, b in zip(throughput[first], throughput[second], strict=True)
        ]
        rows.append(
            StudyRow(
                instances=instances,
                users=pairs[0][0].users or 0,
                e2e_p99_ms={name: _cell(values) for name, values in e2e.items()},
                tokens_per_instance_per_min={
                    name: _cell(values) for name, values in throughput.items()
                },
                e2e_p99_improvement_pct=_change_cell(e2e_ratios, lower_is_better=True),
                throughput_improvement_pct=_change_cell(throughput_ratios, lower_is_better=False),
            )
        )
    return Study(variants=(first, second), users_per_instance=users_per_instance, rows=rows)


def _by_instances(item: tuple[tuple[float, int | None], list]) -> int:
    return item[0][1] or 0


def _cell(values: Sequence[float | None]) -> StudyCell:
    return StudyCell(**_spread(values))


def _change_cell(ratios: Sequence[float | None], *, lower_is_better: bool) -> StudyCell:
    """Improvement in % from paired ratios (first / second): geometric mean, min..max."""
    spread = _spread(ratios)

    def percent(ratio: float | None) -> float | None:
        if ratio is None:
            return None
        return round((1.0 - ratio if lower_is_better else ratio - 1.0) * 100.0, 2)

    low, high = (spread["min"], spread["max"])
    if lower_is_better:
        low, high = high, low
    return StudyCell(geomean=percent(spread["geomean"]), min=percent(low), max=percent(high))


def _spread(values: Sequence[float | None]) -> dict[str, float | None]:
    known = [value for value in values if value is not None]
    return {
        "geomean": _geomean(known),
        "min": min(known) if known else None,
        "max": max(known) if known else None,
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return round(value / base, 4)


def _geomean(values: Sequence[float]) -> float | None:
    positive = [value for value in values if value > 0]
    if not positive:
        return None
    return round(math.exp(sum(math.log(value) for value in positive) / len(positive)), 4)
