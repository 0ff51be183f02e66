import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finetune_world

import moto_server as moto_fixtures
from finetune_world import FinetuneWorld, reset_clients

moto_server = moto_fixtures.moto_server
moto = moto_fixtures.moto


@pytest.fixture
def world(
    moto: moto_fixtures.MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FinetuneWorld]:
    world = FinetuneWorld(suffix=uuid.uuid4().hex[:8], region=moto.region)
    world.create()
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    reset_clients()
    yield world
    reset_clients()
