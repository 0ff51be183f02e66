import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for moto_server
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moto_server import MotoServer, point_boto3_at, running_moto_server


@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server per test module; its state carries from test to test."""
    with running_moto_server(tmp_path_factory.mktemp("moto") / "recording.jsonl") as server:
        yield server


@pytest.fixture
def offline_aws(moto_module: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """This process's boto3 talks to the module's moto server, with test credentials."""
    return point_boto3_at(moto_module, monkeypatch)
