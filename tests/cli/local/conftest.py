"""Fixtures for the local rehearsal: real fleets (emulators + nginx) on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile


@pytest.fixture(scope="module")
def api_fleet() -> Iterator[LocalFleet]:
    """Two continuous-batching servers with fast steps, for API-shape tests."""
    profile = ServerProfile(decode_base_s=0.002, decode_per_sequence_s=0.0, prefill_base_s=0.0)
    with LocalFleet(servers=2, routing="round_robin", profile=profile) as fleet:
        yield fleet
