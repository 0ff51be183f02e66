"""Every flag, path and number of ``inferfleet bench``: bad values get one clear line and exit 2.

Nothing is sent, nothing is created, no traceback, and nothing grows without bound.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from inferfleet.cli.main import main

INFERFLEET = str(Path(sys.executable).with_name("inferfleet"))
STEP = ("--duration", "1", "--warmup", "0")

BAD = [
    # (flag named in the error, arguments)
    ("--rate", ("--rate", "1e9", *STEP)),
    ("--rate", ("--rate", "inf", *STEP)),
    ("--rate", ("--rate", "nan", *STEP)),
    ("--rate", ("--rate", "-2", *STEP)),
    ("--duration", ("--rate", "50000", "--duration", "86400")),
    ("--warmup", ("--rate", "1000", "--requests", "10", "--warmup", "3600")),
    ("--duration", ("--users", "2", "--duration", "inf")),
    ("--duration", ("--users", "2", "--duration", "nan")),
    ("--duration", ("--users", "2", "--duration", "1e12")),
    ("--duration", ("--users", "2", "--duration", "0")),
    ("--requests", ("--users", "2", "--requests", "99999999999999999999")),
    ("--warmup", ("--users", "2", "--duration", "1", "--warmup", "inf")),
    ("--warmup", ("--users", "2", "--duration", "1", "--warmup", "-1")),
    ("--users", ("--users", "100000000", *STEP)),
    ("--users", ("--users", "1,2,x", *STEP)),
    ("--users", ("--users", ",".join(["1"] * 1001), *STEP)),
    ("--output-tokens", ("--users", "2", "--output-tokens", "lognormal:100:inf", *STEP)),
    ("--output-tokens", ("--users", "2", "--output-tokens", "lognormal:100:nan", *STEP)),
    ("--output-tokens", ("--users", "2", "--output-tokens", "lognormal:inf:1", *STEP)),
    ("--output-tokens", ("--users", "2", "--output-tokens", "lognormal:100:50", *STEP)),
    ("--output-tokens", ("--users", "2", "--output-tokens", "9223372036854775808", *STEP)),
    ("--output-tokens", ("--users", "2", "--output-tokens", "uniform:1:1e9", *STEP)),
    ("--prompt-tokens", ("--users", "2", "--prompt-tokens", "lognormal:1e300:1", *STEP)),
    ("--prompt-tokens", ("--users", "2", "--prompt-tokens", "1000000", *STEP)),
    ("--seed", ("--users", "2", "--seed", "-1", *STEP)),
    ("--seed", ("--users", "2", "--seed", str(2**64), *STEP)),
    ("--timeout", ("--users", "2", "--timeout", "inf", *STEP)),
    ("--timeout", ("--users", "2", "--timeout", "0", *STEP)),
    ("--max-inflight", ("--users", "2", "--max-inflight", "0", *STEP)),
    ("--max-inflight", ("--users", "2", "--max-inflight", "10000000", *STEP)),
    ("--max-loop-lag-ms", ("--users", "2", "--max-loop-lag-ms", "nan", *STEP)),
    ("--max-dispatch-lag-ms", ("--users", "2", "--max-dispatch-lag-ms", "-5", *STEP)),
    ("--max-error-rate", ("--users", "2", "--max-error-rate", "1.5", *STEP)),
    ("--max-error-rate", ("--users", "2", "--max-error-rate", "nan", *STEP)),
    ("--price-per-hour", ("--users", "2", "--price-per-hour", "inf", *STEP)),
    ("--price-per-hour", ("--users", "2", "--price-per-hour", "-1", *STEP)),
    ("--instances", ("--users", "2", "--instances", "0", *STEP)),
    ("--workers", ("--users", "2", "--workers", "1000", *STEP)),
    ("--repeat", ("--users", "2", "--repeat", "1000", *STEP)),
    ("--servers", ("--users", "2", "--servers", "0", *STEP)),
    ("--alb-settle", ("--users", "2", "--alb-settle", "inf", *STEP)),
    ("--region", ("--users", "2", "--region", "not a region", *STEP)),
    ("--model", ("--users", "2", "--model", "", *STEP)),
    ("--arrival", ("--rate", "2", "--arrival", "bursty", *STEP)),
    ("--arrival", ("--users", "2", "--arrival", "gamma", *STEP)),
    ("--burstiness", ("--rate", "2", "--arrival", "gamma", "--burstiness", "0", *STEP)),
    ("--burstiness", ("--rate", "2", "--burstiness", "0.5", *STEP)),
    ("--burstiness", ("--rate", "2", "--arrival", "gamma", "--burstiness", "1e-300", *STEP)),
    ("--ramp-up", ("--users", "2", "--ramp-up", "soon", *STEP)),
    ("--ramp-up", ("--users", "2", "--ramp-up", "2h", *STEP)),
    ("--ramp-up", ("--users", "2", "--ramp-up", "9999s", *STEP)),
    ("--ramp-up", ("--rate", "2", "--ramp-up", "5s", *STEP)),
    ("--stagger", ("--users", "2", "--ramp-up", "5s", "--stagger", "1s", *STEP)),
]


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def requests_seen(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_sent_log") as response:
        return len(json.load(response))


@pytest.mark.parametrize(("flag", "args"), BAD, ids=[" ".join(a[:2])[:40] for _, a in BAD])
def test_bad_numbers_are_refused_before_anything_happens(
    shared_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    flag: str, args: tuple[str, ...],
) -> None:  # fmt: skip
    requests_seen(shared_server)
    out = tmp_path / "o"
    assert cli("--target", shared_server, "--out", str(out), *args) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {flag}: "), error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not out.exists()
    assert requests_seen(shared_server) == 0


def test_a_huge_rate_is_refused_at_once_in_bounded_memory(tmp_path: Path) -> None:
    # Before: every arrival of --rate 1e9 was computed up front, until the kernel killed it.
    started = time.monotonic()
    result = subprocess.run(
        [INFERFLEET, "bench", "--target", "http://127.0.0.1:9", "--rate", "1e9",
         "--duration", "60", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--rate: 1e+09 req/s is more than one client can send" in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
            "is not UTF-8 text (byte 0x89 at offset 0)",
        ),
        ('{"prompt": "hé"}\n'.encode("utf-16"), "is not UTF-8 text (byte 0xff at offset 0)"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
        (b'{"prompt": "a", "output_tokens": true}\n', "'output_tokens' must be an integer"),
        (b'{"prompt": "a", "output_tokens": 10000000}\n', "'output_tokens' must be an integer"),
    ],
    ids=["binary", "utf-16", "nested", "bool tokens", "huge tokens"],
)
def test_bad_datasets_are_refused_before_any_request(
    shared_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    content: bytes, phrase: str,
) -> None:  # fmt: skip
    dataset = tmp_path / "prompts.jsonl"
    dataset.write_bytes(content)
    requests_seen(shared_server)
    out = tmp_path / "o"
    assert cli("--target", shared_server, "--users", "1", *STEP, "--dataset", str(dataset),
               "--out", str(out)) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert error.startswith(f"error: --dataset: {dataset}") and phrase in error, error
    assert "Traceback" not in error
    assert not out.exists()
    assert requests_seen(shared_server) == 0


def test_a_folder_as_dataset_is_refused(
    shared_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--target", shared_server, "--users", "1", *STEP, "--dataset", str(tmp_path),
               "--out", str(tmp_path / "o")) == 2  # fmt: skip
    assert "--dataset: " in capsys.readouterr().err
