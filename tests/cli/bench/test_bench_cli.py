"""``inferfleet bench`` end to end through the real entry point."""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from inferfleet.cli.bench.models import RequestResult, RunResults
from inferfleet.cli.main import main

INFERFLEET = str(Path(sys.executable).with_name("inferfleet"))


# Where a test is not about the client's own limits, a busy 2-core box must not turn its
# run invalid (exit 4); steps are still measured and checked.
LENIENT_CLIENT = ("--max-loop-lag-ms", "1000", "--max-dispatch-lag-ms", "1000")


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def test_run_writes_results_csv_report_and_plots(
    shared_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = cli(
        "--target", shared_server, "--users", "2,6", "--duration", "1", "--warmup", "0.3",
        "--output-tokens", "uniform:4:12", "--seed", "3", "--out", str(out),
        "--price-per-hour", "1.5", "--instances", "3", "--json", *LENIENT_CLIENT,
    )  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    assert printed == results
    assert results["schema_version"] == 2
    schema = json.loads((out / "results.schema.json").read_text())
    jsonschema.validate(results, schema)
    assert RunResults.model_validate(results).steps[1].users == 6
    assert results["partial"] is False
    assert results["tool"]["name"] == "inferfleet bench" and results["tool"]["version"]
    assert results["machine"]["cpus"] >= 1
    assert results["target"]["url"].endswith("/v1/completions")
    assert results["target"]["emulated"] is False
    assert results["workload"]["seed"] == 3
    assert len(results["workload"]["hash"]) == 64
    assert [step["users"] for step in results["steps"]] == [2, 6]
    for step in results["steps"]:
        assert step["variant"] == "default"
        for metric in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            assert set(step["latency"][metric]) == {"p50", "p90", "p99", "p999", "mean", "count"}
        assert 49 <= step["latency"]["ttft_ms"]["p50"] <= 90
        assert step["requests"] > 0 and step["errors"] == 0
        assert step["output_tokens_per_min"] > 0 and step["requests_per_s"] > 0
        assert step["cost_per_million_output_tokens"] > 0
        assert step["token_source"] == "usage"
        assert {row["instance"] for row in step["per_instance"]} == {"inst-0", "inst-1", "inst-2"}
        assert sum(row["requests"] for row in step["per_instance"]) == step["succeeded"]
    # More users, more throughput: the server's latency does not depend on load.
    assert (
        results["steps"][1]["output_tokens_per_min"]
        > 2 * results["steps"][0]["output_tokens_per_min"]
    )
    with (out / "requests.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    expected_rows = sum(
        step["requests"] + step["warmup_requests"] + step["cancelled_requests"]
        for step in results["steps"]
    )
    assert len(rows) == expected_rows
    assert {row["step"] for row in rows} == {"1", "2"}
    lines = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert [line["index"] for line in lines] == [int(row["index"]) for row in rows]
    for line in lines:
        RequestResult.model_validate(line)
        if line["error"] is None:
            # The moments of one exchange, in order, and the body it carried.
            assert line["sent_ms"] <= line["first_byte_ms"] <= line["first_token_ms"]
            assert line["first_token_ms"] <= line["last_token_ms"] <= line["end_ms"]
            assert line["status"] == 200 and line["instance"].startswith("inst-")
            assert line["bytes"] > 40 * line["chunks"] and 4 <= line["output_tokens"] <= 12
    report = (out / "report.md").read_text()
    assert "| 1 | default | 2 users | " in report
    assert "from the server's usage report" in report
    assert "EMULATED" not in report
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert pngs == [
        "latency_cdf_users_2.png", "latency_cdf_users_6.png", "p99_latency_vs_load.png",
        "tokens_per_min_vs_load.png",
    ]  # fmt: skip
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
        assert f"]({name})" in report


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BASE = ("--duration", "1", "--warmup", "0")


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (("--users", "0", *BASE), 2, "--users: "),
        (("--users", "4", "--output-tokens", "uniform:9:1", *BASE), 2, "--output-tokens: "),
        (("--users", "4", "--prompt-tokens", "zipf:3", *BASE), 2, "--prompt-tokens: "),
        (("--users", "4", "--rate", "2", *BASE), 2, "--rate: "),
        (("--users", "4", "--duration", "5", "--requests", "9"), 2, "--duration: "),
        (("--users", "4", "--dataset", "/nonexistent.jsonl", *BASE), 2, "--dataset: "),
        (("--users", "4", "--api", "websocket", *BASE), 2, "--api: "),
        (("--users", "4", "--compare", "routing=random,least_outstanding_requests", *BASE), 2,
         "--compare: "),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line_and_exit_2(
    shared_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...], code: int, phrase: str,
) -> None:  # fmt: skip
    assert cli("--target", shared_server, "--out", str(tmp_path / "o"), *args) == code
    error = capsys.readouterr().err
    assert phrase in error
    assert "Traceback" not in error
    assert not (tmp_path / "o").exists()


def test_unreachable_target_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = f"http://127.0.0.1:{free_port()}"
    assert cli("--target", target, "--users", "1", *BASE, "--out", str(tmp_path / "o")) == 1
    error = capsys.readouterr().err
    assert "--target: cannot connect" in error and "Traceback" not in error
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("served", "asked"), [("triton", "openai"), ("openai", "triton")])
def test_wrong_api_is_named(
    timed_server, tmp_path: Path, capsys: pytest.CaptureFixture, served: str, asked: str
) -> None:
    url = timed_server(apis=served)
    out = str(tmp_path / "o")
    assert cli("--target", url, "--api", asked, "--users", "1", *BASE, "--out", out) == 2
    error = capsys.readouterr().err
    assert "--api: " in error and "Traceback" not in error


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_partial_results(shared_server: str, tmp_path: Path, signum: int) -> None:
    out = tmp_path / "partial"
    command = [
        INFERFLEET, "bench", "--target", shared_server, "--users", "4,8", "--duration", "60",
        "--warmup", "0.2", "--output-tokens", "8", "--out", str(out),
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (out / "results.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["partial"] is True
    [step] = results["steps"]
    assert step["partial"] is True and step["valid"] is False
    assert step["requests"] > 0 and step["errors"] == 0
    assert step["output_tokens_per_min"] > 0
    assert "PARTIAL RESULTS" in (out / "report.md").read_text()
    assert len((out / "requests.csv").read_text().splitlines()) > step["requests"]


@pytest.mark.slow
def test_workers_share_an_open_loop_schedule(shared_server: str, tmp_path: Path) -> None:
    out = tmp_path / "workers"
    code = cli(
        "--target", shared_server, "--rate", "60", "--requests", "90", "--warmup", "0.3",
        "--output-tokens", "5", "--workers", "2", "--out", str(out), *LENIENT_CLIENT,
    )  # fmt: skip
    assert code == 0
    [step] = json.loads((out / "results.json").read_text())["steps"]
    assert step["client"]["processes"] == 2
    assert step["requests"] == 90 and step["errors"] == 0
    assert step["requests_per_s"] == pytest.approx(60, rel=0.35)
    assert step["latency"]["ttft_from_schedule_ms"]["p50"] >= step["latency"]["ttft_ms"]["p50"]
    report = (out / "report.md").read_text()
    assert "TTFT p50 / p99 from schedule" in report and "| 60 req/s |" in report
    with (out / "requests.csv").open() as handle:
        indices = sorted(int(row["index"]) for row in csv.DictReader(handle))
    assert indices == list(range(len(indices)))


@pytest.mark.slow
def test_local_fleet_ab_run_is_labelled_emulated_and_torn_down(tmp_path: Path) -> None:
    out = tmp_path / "local"
    code = cli(
        "--local", "--servers", "3", "--users", "6", "--duration", "1.5", "--warmup", "0.5",
        "--output-tokens", "16", "--compare", "routing=least_outstanding_requests,random",
        "--repeat", "2", "--out", str(out), *LENIENT_CLIENT,
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["emulated"] is True
    assert [step["variant"] for step in results["steps"]] == [
        "routing=least_outstanding_requests", "routing=random",
    ] * 2  # fmt: skip
    assert all(step["emulated"] and step["errors"] == 0 for step in results["steps"])
    assert {row["instance"] for row in results["steps"][0]["per_instance"]} <= {
        f"emulator-{n}" for n in range(3)
    }
    [comparison] = results["comparisons"]
    assert comparison["pairs"] == 2
    assert len(comparison["ratios"]["tokens/min"]["per_repeat"]) == 2
    report = (out / "report.md").read_text()
    assert "EMULATED TARGET" in report and "paired ratios" in report
    # --local scrapes every emulated server's /metrics during each step.
    for step in results["steps"]:
        assert step["server_metrics"]["running_requests"]["samples"] >= 1
    assert "## Server metrics" in report and "requests in the batch" in report
    port = int(results["target"]["url"].split(":")[2].split("/")[0])
    with socket.socket() as probe, pytest.raises(OSError):
        probe.connect(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("api", "target", "extra", "source"),
    [
        ("triton", "{url}", (), "chunks"),
        ("sagemaker", "llm-endpoint", ("--endpoint-url", "{url}", "--region", "us-east-1",
                                       "--target-model", "user-7.tar.gz"), "usage"),
        ("classify", "{url}/classify", (), None),
        ("openai", "{url}", ("--endpoint", "chat"), "usage"),
    ],
)  # fmt: skip
def test_every_api_through_the_cli(
    shared_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    api: str, target: str, extra: tuple[str, ...], source: str | None,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dataset = tmp_path / "prompts.jsonl"
    dataset.write_text(
        "".join(json.dumps({"prompt": f"item {n} in red?"}) + "\n" for n in range(5))
    )
    out = tmp_path / api
    args = [arg.format(url=shared_server) for arg in (target, *extra)]
    code = cli(
        "--api", api, "--target", args[0], *args[1:], "--users", "3", "--requests", "12",
        "--warmup", "0", "--output-tokens", "6", "--dataset", str(dataset), "--out", str(out),
        *LENIENT_CLIENT,
    )  # fmt: skip
    assert code == 0
    [step] = json.loads((out / "results.json").read_text())["steps"]
    assert step["requests"] == 12 and step["errors"] == 0
    assert step["token_source"] == source
    assert 49 <= step["latency"]["ttft_ms"]["p50"] <= 90
    assert step["output_tokens_per_min"] > 0 or api == "classify"
