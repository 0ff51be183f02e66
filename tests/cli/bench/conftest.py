"""Fixtures: the timed test server as a real process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto_server import moto, moto_server  # noqa: F401 - fixtures for the AWS control tests

SERVER = Path(__file__).with_name("timed_server.py")


@contextlib.contextmanager
def running_server(**options: object) -> Iterator[str]:
    command = [sys.executable, str(SERVER)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            command.append(flag)
        else:
            command += [flag, str(value)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"timed server did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def timed_server() -> Iterator[Callable[..., contextlib.AbstractContextManager[str]]]:
    """Start servers with given timing; each is stopped when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda **options: stack.enter_context(running_server(**options))


@pytest.fixture(scope="module")
def shared_server() -> Iterator[str]:
    """50 ms to the first token, then one chunk every 10 ms, 3 instance ids."""
    with running_server(ttft_ms=50, itl_ms=10, instances=3) as url:
        yield url
