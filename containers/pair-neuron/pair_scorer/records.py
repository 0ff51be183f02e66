"""The JSON Lines contract of one mini-batch: pair records in, score records out.

Input lines are ``{"id": ..., "left": "...", "right": "..."}``; any other keys are carried
through to the output line, which drops the two texts and adds ``score`` (0..1). Blank
lines are not records. One output line per record, in input order, so SageMaker's
``AssembleWith: Line`` joins them into one ``<file>.out`` per input file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEXT_FIELDS = ("left", "right")
SCORE_FIELD = "score"
SCORE_DIGITS = 6


class RecordError(ValueError):
    """A line of a mini-batch is not a pair record; the message names the line and the fix."""


@dataclass(frozen=True)
class PairRecord:
    id: str | int
    left: str
    right: str
    extra: dict[str, Any]

    def scored(self, score: float) -> str:
        """The output line: id first, the carried keys, then the score."""
        record = {"id": self.id, **self.extra, SCORE_FIELD: round(score, SCORE_DIGITS)}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def parse_record(line: str, number: int) -> PairRecord:
    """One non-blank line; ``number`` (1-based within its batch) goes into the error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordError(
            f"line {number}: not JSON ({error.msg}); write one object per line"
        ) from None
    if not isinstance(record, dict):
        raise RecordError(f"line {number}: a record is a JSON object with id, left and right")
    identifier = record.pop("id", None)
    if isinstance(identifier, bool) or not isinstance(identifier, (str, int)) or identifier == "":
        raise RecordError(f"line {number}: 'id' must be a non-empty string or an integer")
    texts = []
    for name in TEXT_FIELDS:
        text = record.pop(name, None)
        if not isinstance(text, str):
            raise RecordError(f"line {number} (id {identifier}): {name!r} must be a string")
        texts.append(text)
    if SCORE_FIELD in record:
        raise RecordError(
            f"line {number} (id {identifier}): {SCORE_FIELD!r} is the output field; rename "
            "that key in the input"
        )
    return PairRecord(identifier, texts[0], texts[1], record)


def parse_batch(body: str) -> list[PairRecord]:
    """Every record of a mini-batch body; blank lines are skipped."""
    return [
        parse_record(line, number)
        for number, line in enumerate(body.splitlines(), start=1)
        if line.strip()
    ]


def format_batch(records: Sequence[PairRecord], scores: Sequence[float]) -> str:
    if len(records) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(records)} records")
    return "".join(
        record.scored(score) + "\n" for record, score in zip(records, scores, strict=True)
    )
