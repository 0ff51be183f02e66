"""The fine-tune queue's stacks, read from the fleet plan once and from its record after.

``finetune`` and ``invoke`` need only which regions run the queue and their stacks' names,
but planning a fleet file imports pydantic and the whole spec, most of the commands' start.
So a run plans in full, as ``validate`` does, and records those names under a key of the
inputs the plan read (the fleet file's path and bytes, the CDK context recorded next to it);
with the record go the size and modification time of every module and data file the
planning loaded. A later run with the same key reads the names back when none of those
files has changed since. A fleet file that does not plan is never recorded, so it fails the
same way every time; an edit to it, its context or the installed code plans it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from inferfleet.cli.user_cache import user_cache_dir
from inferfleet.infra.names import CONTEXT_FILE

RECORD_FORMAT = 1
RECORDS_KEPT = 64


def personalization_stacks(config: Path) -> dict[str, str]:
    """Stack name by region, for each region of the personalization section, first first.

    A fleet that does not plan raises the plan's UserError naming every problem.
    """
    key = _inputs_key(config)
    folder = user_cache_dir("plans")
    record = folder / f"{key}.json"
    recorded = _read(record)
    if recorded is not None:
        return recorded
    from inferfleet.cli.commands.fleet import load_plan
    from inferfleet.infra import availability

    plan = load_plan(config)
    stacks = {region: plan.region(region).stack_name for region in plan.personalization_regions}
    loaded = [m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)]
    _write(folder, record, stacks, [*loaded, *map(str, availability.data_files())])
    return stacks


def _inputs_key(config: Path) -> str:
    """What the plan reads besides code: the file (by bytes and by place, since asset paths
    resolve against its folder) and the context beside it. A missing file is the plan's error."""
    digest = hashlib.sha256(f"{RECORD_FORMAT}\0{config.resolve()}\0".encode())
    for path in (config, config.parent / CONTEXT_FILE):
        try:
            digest.update(b"\1" + path.read_bytes())
        except OSError:
            digest.update(b"\0")  # planned in full, which reports it if it matters
    return digest.hexdigest()


def _stamp(path: str) -> list[int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _read(record: Path) -> dict[str, str] | None:
    """The recorded names, or None when there are none or any file they came from changed."""
    try:
        content = json.loads(record.read_text(encoding="utf-8"))
        if content["format"] != RECORD_FORMAT:
            return None
        if any(_stamp(path) != stamp for path, stamp in content["depends_on"].items()):
            return None
        return {str(region): str(stack) for region, stack in content["stacks"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable or not ours: plan in full and record again


def _write(folder: Path, record: Path, stacks: dict[str, str], depends_on: list[str]) -> None:
    content = {
        "format": RECORD_FORMAT,
        "stacks": stacks,
        "depends_on": {path: _stamp(path) for path in sorted(set(depends_on))},
    }
    # A record only saves time: a read-only or full cache must not fail the command.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, staging = tempfile.mkstemp(dir=folder, prefix=".record-", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(content, file)
        os.replace(staging, record)
        _prune(folder)
    except OSError:
        Path(staging).unlink(missing_ok=True)


def _prune(folder: Path) -> None:
    """Keep the newest records; only this module's own files (hex digest names) go."""
    records = [
        path
        for path in folder.glob("*.json")
        if len(path.stem) == 64 and all(c in "0123456789abcdef" for c in path.stem)
    ]
    stamped = [(stamp[1], path) for path in records if (stamp := _stamp(str(path)))]
    for _, stale in sorted(stamped, reverse=True)[RECORDS_KEPT:]:
        stale.unlink(missing_ok=True)
