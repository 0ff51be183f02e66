"""Fixtures of the controller tests: moto's server and a three-region fleet on it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import moto_server as moto_fixtures
from traffic_world import TrafficWorld, make_world

from inferfleet.constructs.traffic_controller import handler as controller_handler

moto_server = moto_fixtures.moto_server
moto = moto_fixtures.moto


@pytest.fixture
def world(moto: moto_fixtures.MotoServer) -> Iterator[TrafficWorld]:
    yield make_world()
    controller_handler.client.cache_clear()
