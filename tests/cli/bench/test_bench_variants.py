"""A/B: paired ratios, and the ALB routing switch against moto's server."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fabricated import step_result

from inferfleet.cli.bench.models import StepResult
from inferfleet.cli.bench.variants import (
    ALGORITHM_ATTRIBUTE,
    AlbRouting,
    paired_ratios,
    study_table,
)
from inferfleet.cli.main import main


def step(load: float, repeat: int, variant: str, tokens: float, p99: float) -> StepResult:
    return step_result(
        load=load, repeat=repeat, variant=variant, output_tokens_per_min=tokens,
        requests_per_s=tokens / 100, ttft_ms={"p50": p99 / 2, "p99": p99},
        itl_ms={"p50": 10.0}, e2e_ms={"p50": p99, "p99": 2 * p99},
    )  # fmt: skip


def test_paired_ratios_per_repeat_and_geometric_mean() -> None:
    a, b = "routing=least_outstanding_requests", "routing=random"
    steps = [
        step(20, 0, a, 1000, 100), step(20, 0, b, 800, 400),
        step(20, 1, a, 1000, 100), step(20, 1, b, 500, 100),
        step(40, 0, a, 2000, 200), step(40, 0, b, 2000, 100),
    ]  # fmt: skip
    rows = paired_ratios(steps, [a, b])
    assert [(row.load, row.pairs) for row in rows] == [(20, 2), (40, 1)]
    tokens = rows[0].ratios["tokens/min"]
    assert tokens.per_repeat == [0.8, 0.5]
    assert tokens.geomean == pytest.approx((0.8 * 0.5) ** 0.5, abs=1e-4)
    assert (tokens.min, tokens.max) == (0.5, 0.8)
    assert rows[0].ratios["TTFT p99"].per_repeat == [4.0, 1.0]
    assert rows[1].ratios["E2E p99"].geomean == 0.5
    assert paired_ratios(steps, [a]) == []


def test_the_study_table_pairs_variants_per_instance_count() -> None:
    a, b = "routing=least_outstanding_requests", "routing=random"
    steps = []
    for instances, (p99_a, p99_b, tokens_a, tokens_b) in {
        1: (100.0, 110.0, 1000.0, 1000.0),
        5: (100.0, 200.0, 6000.0, 5000.0),
    }.items():
        for repeat, jitter in enumerate((1.0, 1.1)):
            common = {"load": 4.0 * instances, "users": 4 * instances, "instances": instances,
                      "repeat": repeat}  # fmt: skip
            steps.append(
                step_result(
                    variant=a,
                    e2e_ms={"p99": p99_a * jitter},
                    output_tokens_per_min=tokens_a * jitter,
                    **common,
                )
            )
            steps.append(step_result(variant=b, e2e_ms={"p99": p99_b},
                                     output_tokens_per_min=tokens_b, **common))  # fmt: skip
    study = study_table(steps, [a, b], users_per_instance=4)
    assert study is not None and [row.instances for row in study.rows] == [1, 5]
    five = study.rows[1]
    assert five.users == 20
    # Per pair: P99 ratios 0.5 and 0.55; throughput per instance 1200/1000 and 1320/1000.
    assert five.e2e_p99_improvement_pct.geomean == pytest.approx(
        (1 - (0.5 * 0.55) ** 0.5) * 100, abs=0.01
    )
    assert (five.e2e_p99_improvement_pct.min, five.e2e_p99_improvement_pct.max) == (45.0, 50.0)
    assert five.throughput_improvement_pct.min == pytest.approx(20.0)
    assert five.throughput_improvement_pct.max == pytest.approx(32.0)
    assert five.tokens_per_instance_per_min[b].geomean == 1000.0
    assert five.e2e_p99_ms[a].geomean == pytest.approx((100 * 110) ** 0.5, rel=1e-3)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            assert time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def target_group(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object]:
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    vpc = boto3.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = boto3.client("elbv2")
    created = elbv2.create_target_group(
        Name=f"bench-{time.monotonic_ns() % 10**9}", Protocol="HTTP", Port=80, VpcId=vpc
    )
    return created["TargetGroups"][0]["TargetGroupArn"], elbv2


def algorithm(elbv2, arn: str) -> str:  # type: ignore[no-untyped-def]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    return {item["Key"]: item["Value"] for item in attributes}[ALGORITHM_ATTRIBUTE]


@pytest.mark.slow
def test_alb_switch_sets_each_algorithm_and_restores(target_group) -> None:  # type: ignore[no-untyped-def]
    arn, elbv2 = target_group
    assert algorithm(elbv2, arn) == "round_robin"
    switch = AlbRouting(arn, settle_s=0)
    switch.apply("random")
    assert algorithm(elbv2, arn) == "weighted_random"
    switch.apply("least_outstanding_requests")
    assert algorithm(elbv2, arn) == "least_outstanding_requests"
    switch.restore()
    assert algorithm(elbv2, arn) == "round_robin"


@pytest.mark.slow
def test_compare_on_a_deployed_target_group_restores_it(
    target_group, shared_server: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    arn, elbv2 = target_group
    out = tmp_path / "ab"
    with pytest.raises(SystemExit) as exited:
        main([
            "bench", "--target", shared_server, "--users", "2", "--duration", "0.5",
            "--warmup", "0", "--output-tokens", "4", "--target-group-arn", arn,
            "--compare", "routing=least_outstanding_requests,random", "--alb-settle", "0",
            "--out", str(out), "--max-loop-lag-ms", "1000",
        ])  # fmt: skip
    assert exited.value.code in (0, None)
    results = json.loads((out / "results.json").read_text())
    assert [s["variant"] for s in results["steps"]] == [
        "routing=least_outstanding_requests", "routing=random",
    ]  # fmt: skip
    assert results["comparisons"][0]["pairs"] == 1
    assert algorithm(elbv2, arn) == "round_robin"


def test_unreadable_target_group_is_a_clear_error(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferfleet.cli.errors import UserError

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/none/0123456789abcdef"
    with pytest.raises(UserError, match="--target-group-arn: cannot read"):
        AlbRouting(arn, region="us-east-1", settle_s=0).apply("random")
