"""The fine-tune queue's stacks come from a full plan, then from its record while nothing the
plan read has changed."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

import pytest

from inferfleet.cli.errors import UserError
from inferfleet.cli.finetune.fleet_stacks import RECORDS_KEPT, personalization_stacks
from inferfleet.infra.names import CONTEXT_FILE
from inferfleet.infra.plan import load_fleet_plan

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = resources.files("inferfleet.infra").joinpath("example_fleet.yaml").read_text()


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "fleet"
    folder.mkdir()
    shutil.copy(REPO_ROOT / CONTEXT_FILE, folder / CONTEXT_FILE)
    path = folder / "fleet.yaml"
    path.write_text(EXAMPLE)
    return path


def records(fleet: Path) -> list[Path]:
    return sorted((fleet.parent.parent / "cache" / "inferfleet" / "plans").glob("*.json"))


def planned_stacks(fleet: Path) -> dict[str, str]:
    plan = load_fleet_plan(fleet)
    return {r: plan.region(r).stack_name for r in plan.personalization_regions}


def test_the_first_run_records_the_plans_names_and_the_next_reads_them(fleet: Path) -> None:
    expected = planned_stacks(fleet)
    assert expected  # the example has a personalization section

    assert personalization_stacks(fleet) == expected
    [record] = records(fleet)
    content = json.loads(record.read_text())
    assert content["stacks"] == expected
    # What the plan loaded is what the record depends on: its own modules and data.
    assert any(path.endswith(os.path.join("infra", "spec.py")) for path in content["depends_on"])
    assert any(path.endswith("availability_zones.json") for path in content["depends_on"])

    # The record, not a new plan, answers now: a changed answer in it comes back as written.
    content["stacks"] = {"eu-west-1": "from-the-record"}
    record.write_text(json.dumps(content))
    assert personalization_stacks(fleet) == {"eu-west-1": "from-the-record"}


def test_a_changed_dependency_plans_again(fleet: Path, tmp_path: Path) -> None:
    personalization_stacks(fleet)
    [record] = records(fleet)
    content = json.loads(record.read_text())
    dependency = tmp_path / "module.py"
    dependency.write_text("A = 1\n")
    status = dependency.stat()
    content["depends_on"][str(dependency)] = [status.st_size, status.st_mtime_ns]
    content["stacks"] = {"eu-west-1": "stale"}
    record.write_text(json.dumps(content))
    assert personalization_stacks(fleet) == {"eu-west-1": "stale"}

    dependency.write_text("A = 22\n")  # an upgraded module: other size

    assert personalization_stacks(fleet) == planned_stacks(fleet)
    assert str(dependency) not in json.loads(record.read_text())["depends_on"]


def test_an_edited_fleet_or_context_is_planned_again_and_a_bad_one_fails_each_time(
    fleet: Path,
) -> None:
    personalization_stacks(fleet)
    context = fleet.parent / CONTEXT_FILE
    context.write_text(json.dumps({**json.loads(context.read_text()), "unrelated": "1"}))
    personalization_stacks(fleet)
    assert len(records(fleet)) == 2

    assert "tensor_parallel: 24," in EXAMPLE
    fleet.write_text(EXAMPLE.replace("tensor_parallel: 24,", "tensor_parallel: 5,", 1))
    for _ in range(2):
        with pytest.raises(UserError, match=r"tensor_parallel"):
            personalization_stacks(fleet)
    assert len(records(fleet)) == 2  # a fleet that does not plan is never recorded


def test_an_unreadable_record_is_replaced_and_an_unwritable_cache_is_no_error(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    expected = planned_stacks(fleet)
    personalization_stacks(fleet)
    [record] = records(fleet)
    record.write_text('{"format": 1, "stacks": ')
    assert personalization_stacks(fleet) == expected
    assert json.loads(record.read_text())["stacks"] == expected

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert personalization_stacks(fleet) == expected


def test_old_records_are_pruned_and_nothing_else_in_the_folder_is_touched(fleet: Path) -> None:
    folder = fleet.parent.parent / "cache" / "inferfleet" / "plans"
    folder.mkdir(parents=True)
    for index in range(RECORDS_KEPT + 5):
        old = folder / f"{index:064x}.json"
        old.write_text("{}")
        os.utime(old, ns=(index * 10**9, index * 10**9))
    mine = folder / "notes.json"
    mine.write_text("keep")

    personalization_stacks(fleet)

    kept = [path for path in records(fleet) if path != mine]
    assert len(kept) == RECORDS_KEPT
    assert not (folder / f"{0:064x}.json").exists()  # the oldest went first
    assert mine.read_text() == "keep"
    assert not list(folder.glob(".record-*"))
