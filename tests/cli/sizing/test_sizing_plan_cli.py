"""``inferfleet plan``: a fleet file's pools sized per region for a load and an SLO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferfleet.cli.main import main
from inferfleet.cli.sizing.plan_report import planned_text
from inferfleet.infra.plan import load_fleet_plan
from inferfleet.infra.yaml_source import load_yaml

FLEET = """\
name: tiny
regions: [us-east-1, us-west-2]
services:
  chat:
    kind: llm
    model: {parameters_b: 8, weights_dtype: int8, max_batch_size: 8}
    pools:
      - {instance_type: inf2.xlarge, tensor_parallel: 2, max: 4}
      - instance_type: trn1.2xlarge
        tensor_parallel: 2
        max: 4
  intent:
    kind: classifier
    model: {parameters_b: 0.11}
    pools:
      - {instance_type: inf2.xlarge, tensor_parallel: 1, max: 2}
"""
SIZES = ("--prompt-tokens", "lognormal:200:0.3", "--output-tokens", "lognormal:100:0.3")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    return path


def test_sizes_each_region_for_the_peak_after_a_region_is_lost(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = subprocess.run(
        [
            sys.executable, "-m", "inferfleet.cli", "plan", "--config", str(fleet), "--load",
            "20req/s", *SIZES, "--slo", "ttft_p99=500ms", "--peak-factor", "1.5",
            "--survive-region-loss", "--out", str(out), "--json",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan == json.loads((out / "plan.json").read_text())
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("plan.json", "plan.png"):  # a new file's permissions, not a temporary's
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert plan["service"] == "chat" and plan["simulated"] and plan["feasible"]
    assert plan["routing"] == "least_outstanding_requests"
    # Two regions of equal weight: losing one leaves the other the whole peak, 20 x 1.5.
    assert [r["peak_requests_per_s"] for r in plan["regions"]] == [30.0, 30.0]
    assert [r["average_requests_per_s"] for r in plan["regions"]] == [10.0, 10.0]
    for region in plan["regions"]:
        assert region["peak"]["predicted"]["ttft_p99"] <= 0.5
        assert region["average"]["instances"] < region["peak"]["instances"]
        inf2, trn1 = region["pools"]
        assert inf2["peak"]["replicas"] == inf2["peak"]["instances"]  # TP 2 of 2 cores
        assert trn1["peak"]["chips"] == trn1["peak"]["instances"]
        assert region["peak"]["dollars_per_hour"] > 0
    bounds = plan["fleet_yaml"]
    for index, bound in enumerate(bounds):
        assert bound["max"] == max(r["pools"][index]["peak"]["instances"] for r in plan["regions"])
        assert bound["min"] == max(
            r["pools"][index]["average"]["instances"] for r in plan["regions"]
        )
    assert (
        f"+      - {{instance_type: inf2.xlarge, tensor_parallel: 2, min: {bounds[0]['min']}, "
        f"max: {bounds[0]['max']}}}" in plan["fleet_yaml_diff"]
    )
    assert (out / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # What the diff gives is a fleet file the plan accepts, with the planned bounds.
    planned = tmp_path / "planned.yaml"
    planned.write_text(planned_text(FLEET, load_yaml(FLEET).lines, "chat", bounds))
    pools = load_fleet_plan(planned).region("us-east-1").service("chat").pools
    assert [(p.min_instances, p.max_instances) for p in pools] == [
        (b["min"], b["max"]) for b in bounds
    ]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(["plan", *args])
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err  # type: ignore[return-value]


def test_an_slo_below_the_prefill_floor_prints_the_plan_and_fails(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "--config", str(fleet), "--load", "5req/s", *SIZES, "--slo", "ttft_p99=20ms",
        "--out", str(tmp_path / "plan"),
    )  # fmt: skip

    assert code == 1
    assert "chat" in out and "us-east-1" in out and "inf2.xlarge" in out
    assert "plan: the SLO cannot be met in us-east-1" in err and "relax --slo" in err
    assert json.loads((tmp_path / "plan" / "plan.json").read_text())["feasible"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "search"], "--service search: no such service in"),
        (["--load", "lots"], "--load: 'lots' is not a load"),
        (["--slo", "ttft=1s"], "--slo: 'ttft=1s' is not a limit"),
        (["--prompt-tokens", "normal:3"], "--prompt-tokens: "),
        (["--peak-factor", "0.5"], "--peak-factor: 0.5 must be from 1"),
        (["--headroom", "-0.1"], "--headroom: -0.1 must be from 0"),
        (["--weights", "eu-west-1=2"], "--weights: 'eu-west-1=2' is not REGION=WEIGHT"),
        (["--weights", "us-east-1=0,us-west-2=0"], "--weights: every region weighs 0"),
        (["--prices", "/nonexistent.yaml"], "--prices: cannot read"),
    ],
)
def test_bad_input_is_one_clear_paragraph_and_exit_2(
    fleet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    given = {"--load": "5req/s", **dict(zip(args[::2], args[1::2], strict=True))}
    flags = [part for pair in given.items() for part in pair]
    code, _, err = run(capsys, "--config", str(fleet), *flags, "--out", str(tmp_path / "plan"))

    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "plan").exists()


def test_a_missing_fleet_file_says_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--config", str(tmp_path / "none.yaml"), "--load", "1req/s")
    assert code == 2 and "no such file" in err and "inferfleet init" in err


def test_a_folder_plan_did_not_write_is_refused_and_left_as_it_was(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "notes"
    theirs.mkdir()
    (theirs / "plan.json").write_text("my own plan\n")
    args = ("--config", str(fleet), "--load", "5req/s", *SIZES, "--slo", "ttft_p99=20ms")

    code, _, err = run(capsys, *args, "--out", str(theirs))

    assert code == 2 and "--out" in err and "plan.json" in err and "give another folder" in err
    assert [p.name for p in theirs.iterdir()] == ["plan.json"]
    assert (theirs / "plan.json").read_text() == "my own plan\n"
    # A folder plan wrote is its own to write again.
    ours = tmp_path / "plan"
    assert run(capsys, *args, "--out", str(ours))[0] == 1
    assert run(capsys, *args, "--out", str(ours))[0] == 1
    assert json.loads((ours / "plan.json").read_text())["feasible"] is False
