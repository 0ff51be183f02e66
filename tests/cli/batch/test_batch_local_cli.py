"""``batch run --local``: the real scorer fed like Batch Transform, from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inferfleet.cli.batch.sample_pairs import write_sample
from inferfleet.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("output", "flags", "message"),
    [
        ("in/out", (), "is inside --input"),
        (None, (), "--local needs --input DIR"),
        ("out", ("--instance-type", "inf2.xlarge"), "use a Batch Transform Neuron type"),
        ("out", ("--copies", "0"), "--copies 0: use at least 1"),
        ("out", ("--copies", "100000"), "--copies 100000: use at least 1 and at most"),
        ("out", ("--buckets", "0,-1"), "--buckets: buckets '0,-1': give at least one size"),
        ("out", ("--buckets", "x"), "--buckets: buckets 'x': use sizes separated by commas"),
    ],
)
def test_bad_local_flags_fail_before_the_scorer_starts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    output: str | None,
    flags: tuple[str, ...],
    message: str,
) -> None:
    write_sample(tmp_path / "in", files=1, records=2)
    where = ("--output", str(tmp_path / output)) if output else ()
    code, _out, err = run(
        capsys, "batch", "run", "--local", "--input", str(tmp_path / "in"), *where, *flags
    )
    assert code == 2 and message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_output_folder_of_the_users_is_refused_before_the_scorer_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sample(tmp_path / "in", files=1, records=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.md").write_text("mine\n")
    code, _out, err = run(
        capsys, "batch", "run", "--local", "--input", str(tmp_path / "in"),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "was not written by inferfleet batch run --local and holds report.md" in " ".join(
        err.split()
    )
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["report.md"]


def scorer_processes() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"pair_scorer.server" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_ctrl_c_keeps_finished_files_and_the_next_run_skips_them(
    tmp_path: Path, trace_cache: Path
) -> None:
    write_sample(tmp_path / "in", files=6, records=30)
    command = [
        sys.executable, "-m", "inferfleet.cli", "batch", "run", "--local",
        "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
        "--copies", "1", "--buckets", "16", "--max-payload-mb", "0.002", "--json",
    ]  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(trace_cache), "HF_HUB_OFFLINE": "1"}
    scorers_before = scorer_processes()
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "out").glob("*.out")) and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.05)
    # As `timeout` or a cancelled CI job stops it: SIGTERM is handled as Ctrl-C.
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    report = json.loads(out)
    assert first.returncode == 130 and report["interrupted"] is True, err[-2000:]
    assert scorer_processes() <= scorers_before, "the scorer outlived the command"
    done = {Path(f["input"]).name for f in report["files"]}
    assert 1 <= len(done) < 6
    assert not list((tmp_path / "out").glob("*.partial"))

    second = subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    again = json.loads(second.stdout)
    assert {Path(f["input"]).name for f in again["files"] if f["skipped"]} == done
    assert again["records_scored"] + again["records_skipped"] == 6 * 30
    for index in range(6):
        lines = (tmp_path / "out" / f"pairs-{index:04d}.jsonl.out").read_text().splitlines()
        ids = [json.loads(line)["id"] for line in lines]
        assert ids == [f"f{index}-{n}" for n in range(30)]  # one per record, in order


def test_the_sample_generator_writes_only_into_a_folder_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferfleet.cli.batch.sample_pairs import main as sample_main

    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "pairs-0000.jsonl").write_text("mine\n")
    with pytest.raises(SystemExit) as exited:
        sample_main(["--out", str(tmp_path / "pairs"), "--files", "1", "--records", "2"])
    assert exited.value.code == 2 and "was not written by sample_pairs" in capsys.readouterr().err
    assert (tmp_path / "pairs" / "pairs-0000.jsonl").read_text() == "mine\n"
    for _ in range(2):  # its own folder, again
        sample_main(["--out", str(tmp_path / "new"), "--files", "1", "--records", "2"])
    assert len((tmp_path / "new" / "pairs-0000.jsonl").read_text().splitlines()) == 2
