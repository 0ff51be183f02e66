"""Files named on the command line: only regular files are read, whole reads are bounded,
and every refusal names the flag and what to give instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferfleet.cli.errors import UserError
from inferfleet.cli.user_files import read_user_file, regular_file_size

WHAT = "a test file"


def test_a_regular_file_is_read_whole_up_to_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"x" * 1024)
    assert read_user_file(path, flag="--f", what=WHAT, limit=1024) == b"x" * 1024
    with pytest.raises(UserError, match=rf"--f {path}: larger than 1023 bytes, which is more"):
        read_user_file(path, flag="--f", what=WHAT, limit=1023)
    path.write_bytes(b"x" * 1025)
    with pytest.raises(UserError, match=rf"--f {path}: larger than 1 KiB, which is more"):
        read_user_file(path, flag="--f", what=WHAT, limit=1024)


@pytest.mark.parametrize("kind", ["missing", "folder", "device", "pipe"])
def test_what_is_not_a_regular_file_is_refused_before_a_read(tmp_path: Path, kind: str) -> None:
    path = {"missing": tmp_path / "missing", "folder": tmp_path, "device": Path("/dev/zero")}.get(
        kind, tmp_path / "pipe"
    )
    if kind == "pipe":
        os.mkfifo(path)  # a read would wait for a writer forever
    message = {
        "missing": "cannot read .* \\(no such file\\)",
        "folder": "is a folder",
        "device": "is not a regular file",
        "pipe": "is not a regular file",
    }[kind]
    with pytest.raises(UserError, match=rf"--f.*{message}.*give {WHAT}") as caught:
        regular_file_size(path, flag="--f", what=WHAT)
    assert caught.value.exit_code == 2


def inferfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferfleet.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["profile", "fit", "/dev/zero"], "RESULTS /dev/zero: is not a regular file"),
        (
            ["invoke", "--user", "u1", "--model", "m1", "--payload", "/dev/zero", "--stack", "s"],
            "--payload /dev/zero: is not a regular file",
        ),
        (
            [
                "finetune",
                "submit",
                "--user",
                "u1",
                "--data",
                "/dev/zero",
                "--stack",
                "s",
                "--region",
                "us-east-1",
            ],
            "--data /dev/zero: is not a regular file",
        ),
    ],
)
def test_commands_refuse_a_device_instead_of_reading_it_forever(
    args: list[str], message: str
) -> None:
    result = inferfleet(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
