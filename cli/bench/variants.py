"""A/B variants: which routing policy the load balancer uses for a step, and the paired ratios.

Variants of one load step run back to back (A B A B ... with ``--repeat``), so
slow drift of the target hits both arms alike; each repeat forms a pair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Protocol

from inferfleet.cli.errors import UserError

ALGORITHM_ATTRIBUTE = "load_balancing.algorithm.type"
# ALB names the random policy weighted_random; the rest match nginx's wording here.
ALB_ALGORITHMS = {
    "least_outstanding_requests": "least_outstanding_requests",
    "round_robin": "round_robin",
    "random": "weighted_random",
}
# An ALB applies attribute changes node by node within seconds; wait before measuring.
ALB_SETTLE_S = 10.0

COMPARED = (
    ("output_tokens_per_min", None, "tokens/min"),
    ("requests_per_s", None, "req/s"),
    ("ttft_ms", "p50", "TTFT p50"),
    ("ttft_ms", "p99", "TTFT p99"),
    ("itl_ms", "p50", "ITL p50"),
    ("e2e_ms", "p50", "E2E p50"),
    ("e2e_ms", "p99", "E2E p99"),
)


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
        algorithm = ALB_ALGORITHMS[routing]
        if algorithm != self._current:
            self._write(algorithm)
            time.sleep(self.settle_s)

    def restore(self) -> None:
        if self._original is not None and self._current != self._original:
            self._write(self._original)


class LocalRouting:
    """The local rehearsal's nginx upstream policy."""

    def __init__(self, fleet: object) -> None:
        self._fleet = fleet

    def apply(self, routing: str) -> None:
        self._fleet.set_routing(routing)  # type: ignore[attr-defined]

    def restore(self) -> None:
        """The local fleet is torn down after the run; nothing outlives it."""


def paired_ratios(steps: Sequence[dict], variants: Sequence[str]) -> list[dict]:
    """Each variant against the first, per load and repeat; aggregated as a geometric mean."""
    if len(variants) < 2:
        return []
    baseline = variants[0]
    by_key = {(step["load"], step["repeat"], step["variant"]): step for step in steps}
    comparisons = []
    for load in dict.fromkeys(step["load"] for step in steps):
        for variant in variants[1:]:
            pairs = [
                (by_key[(load, repeat, baseline)], by_key[(load, repeat, variant)])
                for (step_load, repeat, name) in by_key
                if step_load == load and name == baseline and (load, repeat, variant) in by_key
            ]
            if not pairs:
                continue
            row: dict = {
                "load": load,
                "variant": variant,
                "baseline": baseline,
                "pairs": len(pairs),
                "valid_pairs": sum(1 for a, b in pairs if a["valid"] and b["valid"]),
                "ratios": {},
            }
            for metric, point, label in COMPARED:
                ratios = [
                    _ratio(_value(b, metric, point), _value(a, metric, point)) for a, b in pairs
                ]
                finite = [value for value in ratios if value is not None]
                row["ratios"][label] = {
                    "per_repeat": ratios,
                    "geomean": _geomean(finite),
                    "min": min(finite) if finite else None,
                    "max": max(finite) if finite else None,
                }
            comparisons.append(row)
    return comparisons


def _value(step: dict, metric: str, point: str | None) -> float | None:
    value = step.get(metric)
    return value.get(point) if point is not None and isinstance(value, dict) else value


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return round(value / base, 4)


def _geomean(values: Sequence[float]) -> float | None:
    positive = [value for value in values if value > 0]
    if not positive:
        return None
    return round(math.exp(sum(math.log(value) for value in positive) / len(positive)), 4)
