import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for moto_server
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_world import FinetuneWorld, reset_clients  # noqa: E402
from moto_server import MotoServer, moto, moto_server  # noqa: E402, F401


@pytest.fixture
def world(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FinetuneWorld]:
    world = FinetuneWorld(suffix=uuid.uuid4().hex[:8], region=moto.region)
    world.create()
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    reset_clients()
    yield world
    reset_clients()
