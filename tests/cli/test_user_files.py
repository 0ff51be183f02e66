"""Files named on the command line: only regular files are read, whole reads are bounded,
and every refusal names the flag and what to give instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inferfleet.cli.errors import UserError
from inferfleet.cli.user_files import (
    check_replaceable_file,
    read_user_file,
    regular_file_size,
    write_file_atomically,
)

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


def _says_ours(head: bytes) -> bool:
    return head.startswith(b"OURS")


def test_an_output_file_replaces_only_its_own_earlier_output_or_an_empty_file(
    tmp_path: Path,
) -> None:
    for name, content in (("ours", b"OURS v1"), ("empty", b"")):
        (tmp_path / name).write_bytes(content)
    for name in ("new", "ours", "empty"):
        path = tmp_path / name
        check_replaceable_file(path, flag="--out", what=WHAT, holds_ours=_says_ours, limit=8)
        write_file_atomically(path, lambda staging: staging.write_text("OURS v2"), flag="--out")
        assert path.read_text() == "OURS v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new", "ours"]


@pytest.mark.parametrize("kind", ["theirs", "folder", "pipe"])
def test_an_output_path_holding_anything_else_is_refused_untouched(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "out"
    if kind == "theirs":
        path.write_text("my notes\n")
        message = "the file holds something other than a test file, and writing would replace it"
    elif kind == "folder":
        path.mkdir()
        message = "not a regular file (a folder, device or pipe)"
    else:
        os.mkfifo(path)
        message = "not a regular file (a folder, device or pipe)"
    with pytest.raises(UserError, match=re.escape(message)) as refused:
        check_replaceable_file(path, flag="--out", what=WHAT, holds_ours=_says_ours, limit=8)
    assert refused.value.exit_code == 2 and str(refused.value).startswith(f"--out {path}: ")
    if kind == "theirs":
        assert path.read_text() == "my notes\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("OURS v1")

    def half_then_full_disk(staging: Path) -> None:
        staging.write_text("OURS v2, half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match=re.escape("cannot write it (No space left on device)")):
        write_file_atomically(path, half_then_full_disk, flag="--out")
    assert path.read_text() == "OURS v1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_written_file_has_the_permissions_of_a_new_file(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_file_atomically(
            tmp_path / "out", lambda staging: staging.write_text("x"), flag="--out"
        )
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o640
