"""Folders the CLI owns: claimed and replaced only when marked, never the user's."""

import json
from pathlib import Path

import pytest

from inferfleet.cli.errors import UserError
from inferfleet.cli.output_folder import (
    MARKER,
    check_replaceable,
    claim,
    replace,
    staging_folder,
)


def test_claim_creates_and_marks_a_new_folder_and_accepts_it_again(tmp_path: Path):
    folder = tmp_path / "work" / "deep"
    claim(folder, flag="--out", writer="inferfleet deploy")
    assert json.loads((folder / MARKER).read_text())["writer"] == "inferfleet deploy"
    (folder / "logs").mkdir()
    claim(folder, flag="--out", writer="inferfleet deploy")


def test_claim_accepts_an_empty_folder_and_refuses_one_with_files(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty", flag="--out", writer="w")
    assert (tmp_path / "empty" / MARKER).is_file()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("mine")
    with pytest.raises(UserError, match=r"--out .*full: the folder was not written by w and holds"):
        claim(tmp_path / "full", flag="--out", writer="w")
    assert not (tmp_path / "full" / MARKER).exists()


def test_claim_refuses_a_folder_of_another_command_and_a_file(tmp_path: Path):
    claim(tmp_path / "a", flag="--out", writer="inferfleet synth")
    with pytest.raises(UserError, match="was written by inferfleet synth"):
        claim(tmp_path / "a", flag="--state-dir", writer="inferfleet local")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        claim(tmp_path / "f", flag="--out", writer="w")


def test_replace_swaps_in_the_new_content_and_removes_only_the_old_assembly(tmp_path: Path):
    folder = tmp_path / "cdk.out"
    first = staging_folder(folder, flag="--out")
    (first / "a.json").write_text("1")
    (first / "assets" / "x").mkdir(parents=True)
    replace(folder, first, flag="--out", writer="w")
    assert sorted(json.loads((folder / MARKER).read_text())["entries"]) == [
        "a.json",
        "assets",
        "assets/x",
    ]

    second = staging_folder(folder, flag="--out")
    (second / "b.json").write_text("2")
    replace(folder, second, flag="--out", writer="w")

    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdk.out"]


def test_replace_refuses_when_the_user_added_a_file_and_keeps_both_folders(tmp_path: Path):
    folder = tmp_path / "cdk.out"
    first = staging_folder(folder, flag="--out")
    (first / "a.json").write_text("1")
    replace(folder, first, flag="--out", writer="w")
    (folder / "assets").mkdir()
    (folder / "assets" / "mine.txt").write_text("mine")

    second = staging_folder(folder, flag="--out")
    with pytest.raises(UserError, match=r"holds assets, assets/mine.txt, which w did not write"):
        replace(folder, second, flag="--out", writer="w")
    assert (folder / "assets" / "mine.txt").read_text() == "mine"
    assert (folder / "a.json").read_text() == "1"
    with pytest.raises(UserError):
        check_replaceable(folder, flag="--out", writer="w")
