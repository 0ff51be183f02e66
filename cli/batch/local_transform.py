"""Feed a folder of JSON Lines files to a scorer the way SageMaker Batch Transform does.

What Batch Transform does with ``SplitType: Line``, ``BatchStrategy: MultiRecord`` and
``AssembleWith: Line``, on one instance: it takes the input files one at a time, splits
each by line, packs consecutive records into mini-batches of at most ``MaxPayloadInMB``,
keeps up to ``MaxConcurrentTransforms`` of them in flight, retries a failed request up to
``InvocationsMaxRetries`` times, and writes the answers in input order to
``<output>/<relative path>.out``.

Here each ``.out`` is written under a temporary name and renamed when its file is done, so
an interrupted run leaves only complete outputs; a later run skips every input whose
``.out`` holds one line per record. The output folder is marked as this command's (see
:mod:`inferfleet.cli.output_folder`): a folder that holds anything else is refused, so no
file of the user's is overwritten. Every answer is checked: one line per record, carrying
that record's id.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inferfleet.cli import output_folder

WRITER = "inferfleet batch run --local"
OUTPUT_FLAG = "--output"
OUTPUT_SUFFIX = ".out"
PARTIAL_SUFFIX = ".partial"
MIB = 1024 * 1024


class TransformError(Exception):
    """The run cannot go on; ``exit_code`` 2 for bad input, 1 for a failed scorer."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ScorerRejected(Exception):
    """The scorer answered 4xx: the mini-batch itself is wrong, a retry cannot help."""


@dataclass(frozen=True)
class TransformLimits:
    """The job's request shaping: Batch Transform's MaxPayloadInMB (in bytes here),
    MaxConcurrentTransforms and InvocationsMaxRetries."""

    max_payload_bytes: int
    max_concurrent_transforms: int
    invocations_max_retries: int

    @classmethod
    def of_job(cls, max_payload_mb: int, max_concurrent: int, retries: int) -> TransformLimits:
        return cls(max_payload_mb * MIB, max_concurrent, retries)


@dataclass(frozen=True)
class MiniBatch:
    first_line: int  # 1-based line of the file where the batch's first record is
    lines: tuple[int, ...]  # file line of each record
    body: bytes
    ids: tuple[object, ...]


@dataclass
class FileResult:
    input: str
    output: str
    records: int
    skipped: bool


@dataclass
class TransformReport:
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def records_scored(self) -> int:
        return sum(result.records for result in self.files if not result.skipped)

    @property
    def pairs_per_second(self) -> float:
        return self.records_scored / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "files": [asdict(result) for result in self.files],
            "records_scored": self.records_scored,
            "records_skipped": sum(r.records for r in self.files if r.skipped),
            "seconds": round(self.seconds, 3),
            "pairs_per_second": round(self.pairs_per_second, 1),
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class Progress:
    """Reported after each mini-batch is written (and once per skipped file)."""

    file: str
    records: int
    bytes: int
    skipped: bool = False


Invoke = Callable[[bytes], bytes]


def input_files(input_dir: Path) -> list[Path]:
    """Every regular file under ``input_dir`` (hidden ones aside), as sorted relative paths."""
    found = []
    for path in input_dir.rglob("*"):
        relative = path.relative_to(input_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found.append(relative)
    return sorted(found)


def output_path(output_dir: Path, relative: Path) -> Path:
    return output_dir / relative.parent / (relative.name + OUTPUT_SUFFIX)


def check_folders(input_dir: Path, output_dir: Path) -> None:
    if not input_dir.is_dir():
        raise TransformError(
            f"--input {input_dir}: no such folder; give the folder of JSON Lines files",
            exit_code=2,
        )
    source, target = input_dir.resolve(), output_dir.resolve()
    if target == source or target.is_relative_to(source):
        raise TransformError(
            f"--output {output_dir} is inside --input {input_dir}: its .out files would be "
            "read as input by the next run; write them to a folder outside the input",
            exit_code=2,
        )
    output_folder.check_claimable(output_dir, flag=OUTPUT_FLAG, writer=WRITER)


def _record_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip(b"\r\n")


def count_records(path: Path) -> int:
    return sum(1 for _ in _record_lines(path))


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def is_finished(output_file: Path, records: int) -> bool:
    """An output from an earlier run that holds one line per input record."""
    return output_file.is_file() and _count_lines(output_file) == records


def _record_id(line: bytes, where: str) -> object:
    try:
        record = json.loads(line)
    except ValueError:
        raise TransformError(
            f"{where}: not a JSON object; write one record per line", exit_code=2
        ) from None
    if not isinstance(record, dict) or "id" not in record:
        raise TransformError(f"{where}: a record needs an 'id'", exit_code=2)
    return record["id"]


def mini_batches(path: Path, label: str, max_payload_bytes: int) -> Iterator[MiniBatch]:
    """Consecutive records of ``path``, as many per batch as fit ``max_payload_bytes``."""
    lines: list[int] = []
    bodies: list[bytes] = []
    ids: list[object] = []
    size = 0
    for number, line in _record_lines(path):
        record_size = len(line) + 1
        if record_size > max_payload_bytes:
            raise TransformError(
                f"{label}:{number}: the record is {record_size} bytes, more than the "
                f"{max_payload_bytes} bytes a mini-batch may hold; shorten it or raise "
                "max_payload_mb",
                exit_code=2,
            )
        if size + record_size > max_payload_bytes:
            yield MiniBatch(lines[0], tuple(lines), b"\n".join(bodies) + b"\n", tuple(ids))
            lines, bodies, ids, size = [], [], [], 0
        lines.append(number)
        bodies.append(line)
        ids.append(_record_id(line, f"{label}:{number}"))
        size += record_size
    if lines:
        yield MiniBatch(lines[0], tuple(lines), b"\n".join(bodies) + b"\n", tuple(ids))


_SCORER_LINE = re.compile(r"^line (\d+)\b[^:]*: (.*)$", re.DOTALL)


def _rejected(label: str, batch: MiniBatch, message: str) -> TransformError:
    """The scorer's 'line N: ...' (N within the batch) as 'file:line: ...'."""
    match = _SCORER_LINE.match(message.strip())
    if match and 1 <= int(match.group(1)) <= len(batch.lines):
        line = batch.lines[int(match.group(1)) - 1]
        return TransformError(f"{label}:{line}: {match.group(2)}", exit_code=2)
    return TransformError(
        f"{label}: the scorer rejected the mini-batch from line {batch.first_line}: "
        f"{message.strip()}",
        exit_code=2,
    )


def _checked(label: str, batch: MiniBatch, answer: bytes) -> bytes:
    """The answer of one mini-batch, if it has one line per record carrying its id."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if len(lines) != len(batch.ids):
        raise TransformError(
            f"{label}: the scorer answered {len(lines)} lines for the {len(batch.ids)} records "
            f"from line {batch.first_line}; every record needs exactly one output"
        )
    for line, number, expected in zip(lines, batch.lines, batch.ids, strict=True):
        try:
            got = json.loads(line).get("id")
        except (ValueError, AttributeError):
            got = None
        if got != expected:
            raise TransformError(
                f"{label}:{number}: the scorer's output carries id {got!r} for the record "
                f"with id {expected!r}"
            )
    return b"\n".join(lines) + b"\n"


def _invoke_with_retries(invoke: Invoke, batch: MiniBatch, retries: int) -> bytes:
    for attempt in range(retries):
        try:
            return invoke(batch.body)
        except ScorerRejected:
            raise
        except Exception:
            time.sleep(min(2.0, 0.1 * 2**attempt))
    return invoke(batch.body)


def transform_file(
    source: Path,
    label: str,
    target: Path,
    invoke: Invoke,
    limits: TransformLimits,
    on_progress: Callable[[Progress], None],
) -> int:
    """Score one file into ``target`` (complete or not at all); returns its records."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    records = 0
    executor = ThreadPoolExecutor(max_workers=limits.max_concurrent_transforms)
    try:
        with partial.open("wb") as out:
            in_flight: deque[tuple[MiniBatch, Future[bytes]]] = deque()

            def write_oldest() -> None:
                nonlocal records
                batch, future = in_flight.popleft()
                try:
                    answer = future.result()
                except ScorerRejected as error:
                    raise _rejected(label, batch, str(error)) from None
                except Exception as error:
                    raise TransformError(
                        f"{label}: the mini-batch from line {batch.first_line} failed after "
                        f"{limits.invocations_max_retries} retries: {error}"
                    ) from None
                out.write(_checked(label, batch, answer))
                records += len(batch.ids)
                on_progress(Progress(label, len(batch.ids), len(batch.body)))

            for batch in mini_batches(source, label, limits.max_payload_bytes):
                if len(in_flight) >= limits.max_concurrent_transforms:
                    write_oldest()
                future = executor.submit(
                    _invoke_with_retries, invoke, batch, limits.invocations_max_retries
                )
                in_flight.append((batch, future))
            while in_flight:
                write_oldest()
        os.replace(partial, target)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        partial.unlink(missing_ok=True)
    return records


def run_transform(
    input_dir: Path,
    output_dir: Path,
    invoke: Invoke,
    limits: TransformLimits,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> TransformReport:
    """Every input file, one at a time; on Ctrl-C the report says ``interrupted`` and the
    finished files stay finished."""
    check_folders(input_dir, output_dir)
    output_folder.claim(output_dir, flag=OUTPUT_FLAG, writer=WRITER)
    report = TransformReport()
    started = time.perf_counter()
    try:
        for relative in input_files(input_dir):
            source, target = input_dir / relative, output_path(output_dir, relative)
            label = str(relative)
            records = count_records(source)
            if is_finished(target, records):
                report.files.append(FileResult(label, str(target), records, skipped=True))
                on_progress(Progress(label, records, source.stat().st_size, skipped=True))
                continue
            records = transform_file(source, label, target, invoke, limits, on_progress)
            report.files.append(FileResult(label, str(target), records, skipped=False))
    except KeyboardInterrupt:
        report.interrupted = True
    report.seconds = time.perf_counter() - started
    return report
