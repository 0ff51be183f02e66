from pathlib import Path

import moto_server as moto_fixtures
import pytest

moto_server = moto_fixtures.moto_server
moto = moto_fixtures.moto


@pytest.fixture(scope="session")
def trace_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_CACHE_HOME for the scorer: the MiniLM is traced once per session, not per test."""
    return tmp_path_factory.mktemp("cache")
