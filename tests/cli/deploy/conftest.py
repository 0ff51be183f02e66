import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for moto_server
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moto_server import MotoServer, offline_aws_environment, running_moto_server


@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server per test module; its state carries from test to test."""
    with running_moto_server(tmp_path_factory.mktemp("moto") / "recording.jsonl") as server:
        yield server


@pytest.fixture
def offline_aws(moto_module: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """This process's boto3 talks to the module's moto server, with test credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in offline_aws_environment(moto_module).items():
        monkeypatch.setenv(name, value)
    return moto_module
