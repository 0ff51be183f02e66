import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "constructs" / "finetune_handlers"))

import moto_server as moto_fixtures
from finetune_stack import Deployed, deploy_stack
from finetune_world import FinetuneWorld, reset_clients

moto_server = moto_fixtures.moto_server
moto = moto_fixtures.moto


@pytest.fixture
def deployed(moto: moto_fixtures.MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    world = FinetuneWorld(suffix=uuid.uuid4().hex[:8], region=moto.region)
    deploy_stack(world, "personalization-us-east-1", f"users-{world.suffix}")
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    reset_clients()
    yield Deployed(world, "personalization-us-east-1", f"users-{world.suffix}", moto)
    reset_clients()
