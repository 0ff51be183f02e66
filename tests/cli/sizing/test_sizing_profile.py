"""The server profile: validation, formulas and its documented table."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from inferfleet.cli.errors import UserError
from inferfleet.cli.sizing import profile as profile_module
from inferfleet.cli.sizing.profile import (
    MAX_PROFILE_BYTES,
    ServerProfile,
    read_profile,
    write_profile,
)


def test_profile_table_documents_every_timing_parameter_with_its_default() -> None:
    doc = profile_module.__doc__ or ""
    for name, field in ServerProfile.model_fields.items():
        if field.default is None:
            assert f"``{name}``" in doc, f"{name} is not explained"
            continue
        row = re.search(rf"^\| ``{name}`` \| ([^|]+) \|", doc, re.M)
        assert row is not None, f"{name} missing from the profile table"
        assert row.group(1).strip() == str(field.default), name


def test_profile_rejects_impossible_values() -> None:
    bad_values = (
        {"slots": 0},
        {"decode_base_s": -1},
        {"decode_base_s": 0, "decode_per_sequence_s": 0},
        {"default_max_tokens": 10, "max_output_tokens": 5},
        {"batching": "dynamic"},
        {"speed": 2},
    )
    for bad in bad_values:
        with pytest.raises(ValidationError):
            ServerProfile(**bad)


def test_step_durations_follow_the_documented_formulas() -> None:
    profile = ServerProfile()

    assert profile.decode_step_s(4) == pytest.approx(0.02 + 4 * 0.002)
    assert profile.prefill_s(200) == pytest.approx(0.005 + 200 * 0.0001)
    assert profile.full_batch_tokens_per_s() == pytest.approx(4 / 0.028)


def test_read_profile_names_the_flag_the_file_and_the_field(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"slots": 8, "batching": "static"}))
    assert read_profile(good, flag="--profile") == ServerProfile(slots=8, batching="static")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"slots": 8, "decode_base_s": -1}))
    with pytest.raises(UserError, match=rf"--profile {bad}: decode_base_s: .*fix the file"):
        read_profile(bad, flag="--profile")
    with pytest.raises(UserError, match="--profile: cannot read"):
        read_profile(tmp_path / "missing.json", flag="--profile")


def test_read_profile_refuses_a_folder_a_device_and_a_huge_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a folder"):
        read_profile(tmp_path, flag="--server-profile")
    with pytest.raises(UserError, match="is not a regular file"):
        read_profile(Path("/dev/zero"), flag="--server-profile")  # hung before: read forever
    huge = tmp_path / "huge.json"
    huge.write_text(" " * (MAX_PROFILE_BYTES + 1))
    with pytest.raises(UserError, match="larger than 64 KiB"):
        read_profile(huge, flag="--server-profile")


def test_write_profile_never_replaces_a_pipe_or_a_folder(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for target in (pipe, tmp_path):
        with pytest.raises(UserError, match="not a regular file") as caught:
            write_profile(ServerProfile(), target)
        assert caught.value.exit_code == 2
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    written = tmp_path / "profile.json"
    write_profile(ServerProfile(slots=8), written)
    assert read_profile(written, flag="--server-profile").slots == 8
