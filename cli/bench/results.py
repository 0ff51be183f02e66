"""The ``--out`` folder: ``results.json`` (see :mod:`.models`), ``requests.csv`` and
``requests.jsonl`` (the same rows, one JSON object a line).

All are rewritten after every step; ``results.schema.json`` describes the first.

bench writes only into a folder it created (or an empty one), marked (see
:mod:`inferfleet.cli.output_folder`) with the files it wrote; it refuses a folder
holding anyone else's files and, on a rerun, replaces only its own. Every file is
replaced atomically, so an interrupted run leaves the steps measured so far,
flagged ``"partial": true``, and never a half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import json
import os
import platform
import socket
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO

from inferfleet.cli import output_folder
from inferfleet.cli.bench.models import RequestResult, RunResults, StepResult
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.errors import UserError

OUT_FLAG = "--out"
WRITER = "inferfleet bench"
# Every name bench may write into --out: a file so named that bench did not write is the
# user's, and bench refuses to replace it.
OWN_PATTERNS = ("results.json", "results.schema.json", "requests.csv", "requests.jsonl",
                "report.md", "report.html", "latency_cdf_*.png", "*_vs_*.png")  # fmt: skip
CSV_COLUMNS = tuple(RequestResult.model_fields)
SCHEMA_FILE = "results.schema.json"
JSONL_FILE = "requests.jsonl"


def tool_info() -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "name": "inferfleet bench",
        "version": version("inferfleet"),
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "argv": sys.argv[1:],
    }


def machine_info() -> dict:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def request_rows(
    records: list[RequestRecord],
    *,
    step: int,
    variant: str,
    repeat: int,
    users: int | None,
    rate: float | None,
    origin: float,
) -> list[dict]:
    """One CSV row per request; times in ms from the step's start."""

    def ms(value: float | None, since: float | None = origin) -> float | None:
        return None if value is None or since is None else round((value - since) * 1000.0, 3)

    rows = []
    for record in records:
        gaps = record.itl_ms
        rows.append(
            {
                "step": step,
                "variant": variant,
                "repeat": repeat,
                "users": users,
                "rate": rate,
                "index": record.index,
                "conversation": record.conversation,
                "turn": record.turn,
                "warmup": record.warmup,
                "scheduled_ms": ms(record.scheduled),
                "sent_ms": ms(record.sent),
                "first_byte_ms": ms(record.first_byte),
                "first_token_ms": ms(record.first_token),
                "last_token_ms": ms(record.last_token),
                "end_ms": ms(record.end),
                "dispatch_lag_ms": round(record.dispatch_lag_s * 1000.0, 3),
                "inflight_wait_ms": round(record.inflight_wait_s * 1000.0, 3),
                "ttft_ms": ms(record.first_token, record.sent),
                "e2e_ms": ms(record.end, record.sent),
                "ttft_from_schedule_ms": ms(record.first_token, record.scheduled),
                "e2e_from_schedule_ms": ms(record.end, record.scheduled),
                "itl_mean_ms": round(sum(gaps) / len(gaps), 3) if gaps else None,
                "prompt_tokens": record.usage_prompt_tokens or record.prompt_tokens,
                "requested_tokens": record.requested_tokens,
                "output_tokens": record.output_tokens,
                "token_source": record.token_source,
                "chunks": record.chunks,
                "coalesced_chunks": record.coalesced,
                "bytes": record.bytes,
                "instance": record.instance,
                "status": record.status,
                "error": record.error,
                "error_detail": record.error_detail,
            }
        )
    return rows


class OutputDir:
    """The ``--out`` folder, claimed before any request is sent; bench touches only its files."""

    def __init__(
        self, path: Path, created: list[Path], previous: list[str], *, marked_now: bool
    ) -> None:
        self.path = path
        self._created = created
        self._previous = previous
        self._marked_now = marked_now
        self._written: list[str] = []

    @classmethod
    def claim(cls, path: Path) -> OutputDir:
        """Check (and create) ``path`` so a run can write there; a clear error if it cannot."""
        created = []
        missing = path
        while not missing.exists() and missing != missing.parent:
            created.append(missing)
            missing = missing.parent
        previous = output_folder.written_entries(path) if path.is_dir() else []
        marked_now = not (path / output_folder.MARKER).is_file()
        output_folder.claim(path, flag=OUT_FLAG, writer=WRITER)
        claimed = cls(path, created, previous, marked_now=marked_now)
        try:
            # Proves a folder bench wrote before is still writable, before any request.
            output_folder.record_entries(path, writer=WRITER, entries=previous)
        except OSError as error:
            raise UserError(
                f"{OUT_FLAG} {path}: cannot write there ({error.strerror or error}); give a "
                "folder you can write to"
            ) from None
        foreign = [
            name
            for name in sorted(entry.name for entry in path.iterdir())
            if name not in previous and any(fnmatch.fnmatchcase(name, own) for own in OWN_PATTERNS)
        ]
        if foreign:
            claimed.release()
            raise UserError(
                f"{OUT_FLAG} {path}: holds {foreign[0]}, which {WRITER} did not write and a run "
                "would replace; move it out, or give another folder"
            )
        return claimed

    def begin(self) -> None:
        """The run starts: the previous run's files would read as this run's, so they go."""
        for name in self._previous:
            (self.path / name).unlink(missing_ok=True)
        self._previous = []
        self._record()

    def release(self) -> None:
        """The run never started: remove the marker and folders ``claim`` created, nothing else."""
        if self._marked_now:
            (self.path / output_folder.MARKER).unlink(missing_ok=True)
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def atomic(self, name: str, *, binary: bool = False) -> _Atomic:
        if name not in self._written:
            self._written.append(name)
            self._record()
        return _Atomic(self.path / name, binary=binary)

    def append(self, name: str) -> IO[str]:
        return (self.path / name).open("a", newline="", encoding="utf-8")

    def _record(self) -> None:
        output_folder.record_entries(self.path, writer=WRITER, entries=self._written)


class ResultsWriter:
    """results.json (with its JSON Schema) and requests.csv, consistent after each step."""

    def __init__(self, out: OutputDir, header: dict) -> None:
        self.out = out
        out.begin()
        self.results = RunResults(**header)
        with out.atomic(SCHEMA_FILE) as handle:
            json.dump(RunResults.model_json_schema(), handle, indent=1)
        with out.atomic("requests.csv") as handle:
            csv.DictWriter(handle, CSV_COLUMNS).writeheader()
        with out.atomic(JSONL_FILE):
            pass
        self.write()

    def add_step(self, step: StepResult, rows: list[dict]) -> None:
        self.results.steps.append(step)
        # One write per step: an interrupted run ends the file after a whole step.
        buffer = io.StringIO()
        csv.DictWriter(buffer, CSV_COLUMNS).writerows(rows)
        with self.out.append("requests.csv") as handle:
            handle.write(buffer.getvalue())
        with self.out.append(JSONL_FILE) as handle:
            handle.write("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
        self.write()

    def finish(self, *, partial: bool, **analysis: object) -> None:
        """Close the run: ``analysis`` sets the comparisons, the study and the load search."""
        for name, value in analysis.items():
            setattr(self.results, name, value)
        self.results.partial = partial
        self.results.finished_at = now_iso()
        self.write()

    def write(self) -> None:
        with self.out.atomic("results.json") as handle:
            handle.write(self.results.model_dump_json(indent=2))
            handle.write("\n")


class _Atomic:
    """Write to a sibling temp file and rename it over the target on success."""

    def __init__(self, path: Path, *, binary: bool = False) -> None:
        self.path = path
        self.binary = binary
        self.temporary = path.with_name(f".{path.name}.tmp")

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.binary:
            self.handle = self.temporary.open("wb")
        else:
            self.handle = self.temporary.open("w", newline="", encoding="utf-8")
        return self.handle

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.handle.close()
        if exc_type is None:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)
