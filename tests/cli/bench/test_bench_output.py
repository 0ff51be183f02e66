"""``--out``: bench writes only into a folder of its own and replaces only its own files."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from inferfleet.cli.main import main
from inferfleet.cli.output_folder import MARKER

RUN = ("--users", "2", "--duration", "0.4", "--warmup", "0", "--output-tokens", "4",
       "--max-loop-lag-ms", "1000")  # fmt: skip


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def requests_seen(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_sent_log") as response:
        return len(json.load(response))


def test_a_rerun_replaces_only_its_own_files(
    timed_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = timed_server(ttft_ms=5, itl_ms=2)
    out = tmp_path / "results" / "run"
    assert cli("--target", url, "--users", "2,3", *RUN[2:], "--out", str(out)) == 0
    assert (out / MARKER).is_file()
    assert {"latency_cdf_users_2.png", "latency_cdf_users_3.png"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("the user's own")
    assert cli("--target", url, "--users", "4", *RUN[2:], "--out", str(out)) == 0
    names = {path.name for path in out.iterdir()}
    assert "latency_cdf_users_4.png" in names
    # The first run's plots are gone (they were bench's); the user's note is not.
    assert not names & {"latency_cdf_users_2.png", "latency_cdf_users_3.png"}
    assert (out / "notes.txt").read_text() == "the user's own"
    assert [step["users"] for step in json.loads((out / "results.json").read_text())["steps"]] == [
        4
    ]
    marker = json.loads((out / MARKER).read_text())
    assert marker["writer"] == "inferfleet bench"
    assert "notes.txt" not in marker["entries"] and "report.md" in marker["entries"]


@pytest.mark.parametrize(
    "own_files",
    [
        {"report.md": "my analysis", "latency_cdf_users_4.png": "my plot"},
        {"notes.txt": "anything at all"},
    ],
)
def test_a_folder_bench_did_not_create_is_refused_before_any_request(
    timed_server, tmp_path: Path, capsys: pytest.CaptureFixture[str], own_files: dict
) -> None:
    url = timed_server(ttft_ms=5, itl_ms=2)
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in own_files.items():
        (out / name).write_text(text)
    requests_seen(url)
    assert cli("--target", url, *RUN, "--out", str(out)) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --out {out}: the folder was not written by inferfleet bench")
    assert "give another folder" in error and "Traceback" not in error
    assert {path.name: path.read_text() for path in out.iterdir()} == own_files
    assert requests_seen(url) == 0


def test_a_foreign_file_in_a_bench_folder_is_not_replaced(
    timed_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = timed_server(ttft_ms=5, itl_ms=2)
    out = tmp_path / "run"
    assert cli("--target", url, *RUN, "--out", str(out)) == 0
    (out / "cost_vs_load.png").write_text("the user's plot, named like bench's")
    assert cli("--target", url, *RUN, "--out", str(out)) == 2
    error = capsys.readouterr().err
    assert f"--out {out}: holds cost_vs_load.png, which inferfleet bench did not write" in error
    assert (out / "cost_vs_load.png").read_text() == "the user's plot, named like bench's"


@pytest.mark.parametrize("kind", ["file", "below a file", "unwritable"])
def test_an_out_that_cannot_be_a_folder_is_refused_before_any_request(
    timed_server, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    url = timed_server(ttft_ms=5, itl_ms=2)
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    out = {
        "file": existing,
        "below a file": existing / "run",
        # Not even root may create folders in procfs.
        "unwritable": Path("/proc/self/inferfleet-bench-run"),
    }[kind]
    requests_seen(url)
    assert cli("--target", url, *RUN, "--out", str(out)) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --out {out}: ") and "Traceback" not in error
    assert ("is a file, not a folder" in error) == (kind == "file")
    assert ("cannot write there" in error) == (kind != "file")
    assert existing.read_text() == "keep me"
    assert requests_seen(url) == 0


def test_a_run_that_never_started_leaves_no_trace(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    # Nothing listens on port 9 of 127.0.0.1: the preflight request fails.
    assert cli("--target", "http://127.0.0.1:9", *RUN, "--out", str(out)) == 1
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("--target", "http://127.0.0.1:9", *RUN, "--out", str(empty)) == 1
    assert list(empty.iterdir()) == []
