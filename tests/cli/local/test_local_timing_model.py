"""The emulator timing model: validation, formulas and its documented table."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from inferfleet.cli.local import timing as timing_module
from inferfleet.cli.local.timing import EmulatorTiming


def test_timing_table_documents_every_parameter_with_its_default() -> None:
    doc = timing_module.__doc__ or ""
    for name, field in EmulatorTiming.model_fields.items():
        row = re.search(rf"^\| ``{name}`` \| ([^|]+) \|", doc, re.M)
        assert row is not None, f"{name} missing from the timing table"
        assert float(row.group(1)) == field.default, name


def test_timing_rejects_impossible_values() -> None:
    bad_values = (
        {"slots": 0},
        {"decode_base_s": -1},
        {"default_max_tokens": 10, "max_output_tokens": 5},
        {"speed": 2},
    )
    for bad in bad_values:
        with pytest.raises(ValidationError):
            EmulatorTiming(**bad)


def test_step_durations_follow_the_documented_formulas() -> None:
    timing = EmulatorTiming()

    assert timing.decode_step_s(4) == pytest.approx(0.02 + 4 * 0.002)
    assert timing.prefill_s(200) == pytest.approx(0.005 + 200 * 0.0001)
    assert timing.full_batch_tokens_per_s() == pytest.approx(4 / 0.028)
