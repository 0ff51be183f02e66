"""``results.json`` (schema_version 1) and ``requests.csv``, rewritten after every step.

Both files are replaced atomically, so an interrupted run leaves the steps
measured so far, flagged ``"partial": true``, and never a half-written file.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import socket
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from inferfleet.cli.bench.records import RequestRecord

SCHEMA_VERSION = 1
OWN_FILES = ("results.json", "requests.csv", "report.md", "latency_cdf_*.png",
             "p99_latency_vs_load.png", "tokens_per_min_vs_load.png")  # fmt: skip
CSV_COLUMNS = (
    "step",
    "variant",
    "repeat",
    "users",
    "rate",
    "index",
    "warmup",
    "scheduled_ms",
    "sent_ms",
    "dispatch_lag_ms",
    "ttft_ms",
    "e2e_ms",
    "ttft_from_schedule_ms",
    "e2e_from_schedule_ms",
    "itl_mean_ms",
    "prompt_tokens",
    "requested_tokens",
    "output_tokens",
    "token_source",
    "chunks",
    "instance",
    "status",
    "error",
    "error_detail",
)


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
                "warmup": record.warmup,
                "scheduled_ms": ms(record.scheduled),
                "sent_ms": ms(record.sent),
                "dispatch_lag_ms": round(record.dispatch_lag_s * 1000.0, 3),
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
                "instance": record.instance,
                "status": record.status,
                "error": record.error,
                "error_detail": record.error_detail,
            }
        )
    return rows


class ResultsWriter:
    """Owns ``--out``: results.json and requests.csv, kept consistent after each step."""

    def __init__(self, out: Path, header: dict) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        # A previous run's files in the same directory would read as this run's.
        for pattern in OWN_FILES:
            for stale in out.glob(pattern):
                stale.unlink()
        self.results: dict = {
            "schema_version": SCHEMA_VERSION,
            "partial": True,
            **header,
            "steps": [],
            "comparisons": [],
        }
        self._csv_path = out / "requests.csv"
        with _atomic(self._csv_path) as handle:
            csv.DictWriter(handle, CSV_COLUMNS).writeheader()
        self.write()

    def add_step(self, summary: dict, rows: list[dict]) -> None:
        self.results["steps"].append(summary)
        with self._csv_path.open("a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, CSV_COLUMNS).writerows(rows)
        self.write()

    def finish(self, *, partial: bool, comparisons: list[dict]) -> None:
        self.results["partial"] = partial
        self.results["comparisons"] = comparisons
        self.results["finished_at"] = now_iso()
        self.write()

    def write(self) -> None:
        with _atomic(self.out / "results.json") as handle:
            json.dump(self.results, handle, indent=2, allow_nan=False)
            handle.write("\n")


class _atomic:
    """Write to a sibling temp file and rename it over the target on success."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.tmp")

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.handle = self.temporary.open("w", newline="", encoding="utf-8")
        return self.handle

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.handle.close()
        if exc_type is None:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)
