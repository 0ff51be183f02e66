"""``inferfleet simulate --local``: the bench's files for the fleet bench --local would run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def inferfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferfleet.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_writes_results_requests_report_and_plots_labelled_simulated(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = inferfleet(
        "simulate", "--local", "--servers", "3", "--users", "2,6", "--duration", "5",
        "--compare", "routing=least_outstanding_requests,random", "--out", str(out),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "SIMULATED" in result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["partial"] is False
    assert results["tool"]["name"] == "inferfleet simulate"
    assert results["target"]["simulated"] is True and results["target"]["emulated"] is False
    assert results["target"]["local"] == {"servers": 3, "mode": "continuous"}
    assert [(s["users"], s["variant"]) for s in results["steps"]] == [
        (2, "routing=least_outstanding_requests"), (2, "routing=random"),
        (6, "routing=least_outstanding_requests"), (6, "routing=random"),
    ]  # fmt: skip
    for step in results["steps"]:
        assert step["simulated"] and step["valid"] and step["requests"] > 0
        assert {row["instance"] for row in step["per_instance"]} <= {
            "emulator-0", "emulator-1", "emulator-2",
        }  # fmt: skip
    assert len(results["comparisons"]) == 2
    with (out / "requests.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["step"] for row in rows} == {"1", "2", "3", "4"}
    report = (out / "report.md").read_text()
    assert report.startswith("# inferfleet simulate report\n\n> **SIMULATED.**")
    assert (out / "latency_cdf_users_6.png").stat().st_size > 5000


def test_json_prints_the_results_file(tmp_path: Path) -> None:
    result = inferfleet(
        "simulate", "--local", "--users", "4", "--duration", "3", "--json",
        "--out", str(tmp_path / "sim"),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((tmp_path / "sim" / "results.json").read_text())


def test_a_server_profile_file_sets_the_timing(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"slots": 2, "decode_base_s": 0.05, "batching": "static"}))
    result = inferfleet(
        "simulate", "--local", "--servers", "1", "--users", "1", "--duration", "5",
        "--output-tokens", "11", "--server-profile", str(profile), "--json",
        "--out", str(tmp_path / "sim"),
    )  # fmt: skip

    results = json.loads(result.stdout)
    assert results["target"]["profile"]["batching"] == "static"
    # A lone user on a static server: every gap is one decode step of a batch of one.
    assert results["steps"][0]["latency"]["itl_ms"]["p50"] == pytest.approx(52.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "simulate: give --local"),
        (["--local", "--users", "0"], "--users:"),
        (["--local", "--users", "4", "--routing", "fastest"], "--routing: 'fastest'"),
        (
            [
                "--local",
                "--users",
                "4",
                "--routing",
                "random",
                "--compare",
                "routing=random,round_robin",
            ],
            "--routing: --compare sets",
        ),
        (["--local", "--users", "4", "--local-mode", "dynamic"], "--local-mode:"),
        (["--local", "--users", "4", "--network-ms", "-1"], "--network-ms:"),
        (
            ["--local", "--users", "4", "--server-profile", "/nonexistent.json"],
            "--server-profile: cannot read",
        ),
        (
            ["--local", "--users", "4", "--replay-routing", "/nonexistent.csv"],
            "--replay-routing: cannot read",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "sim"
    result = inferfleet("simulate", *args, "--out", str(out))

    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "results.json").exists()


def test_a_requests_file_of_another_fleet_is_refused(tmp_path: Path) -> None:
    requests = tmp_path / "requests.csv"
    requests.write_text("step,index,instance\n1,0,emulator-7\n")
    result = inferfleet(
        "simulate", "--local", "--servers", "5", "--users", "4", "--replay-routing",
        str(requests), "--out", str(tmp_path / "sim"),
    )  # fmt: skip

    assert result.returncode == 2
    assert "names 'emulator-7', not one of the 5 servers" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is not a regular file"),  # a pipe: reading it waited for a writer forever
        ("step,index,instance\n1,0,emulator-0\n".encode("utf-16"), "is not UTF-8 text"),
        (
            b"step,index,instance\n1,0,emulator-0\n2,0," + b"x" * 200_000 + b"\n",
            "line 3: field larger",
        ),
        (b"step,index,instance\n1,0\n", "line 2 has no step, index and emulator-N instance"),
    ],
)
def test_a_requests_file_that_is_not_one_names_the_file_and_line(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    from inferfleet.cli.errors import UserError
    from inferfleet.cli.sizing.local_run import measured_routing

    requests = tmp_path / "requests.csv"
    if content is None:
        os.mkfifo(requests)
    else:
        requests.write_bytes(content)
    with pytest.raises(UserError, match=message) as caught:
        measured_routing(requests, 5)
    assert str(caught.value).startswith(f"--replay-routing: {requests}") or str(
        caught.value
    ).startswith(f"--replay-routing {requests}")
