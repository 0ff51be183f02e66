"""The pair-neuron image's server, started from the files its Dockerfile copies."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from containers_support import PAIR_CONTEXT
from pair_scorer.compile import compile_encoder

from inferfleet.containers.image_tree import image_tree
from inferfleet.containers.local_triton import free_port
from inferfleet.containers.tiny_models import minilm_dir

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    pings: list[int] = field(default_factory=list)  # /ping answers until ready


def _start(root: Path, environment: dict[str, str], log: Path) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "pair_scorer.server", "serve"),
            *("--host", "127.0.0.1"),
            *("--port", str(port)),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **environment},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Server(f"http://127.0.0.1:{port}", process, log)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _wait_ready(server: Server, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.process.poll() is None:
        server.pings.append(_status(f"{server.url}/ping"))
        if server.pings[-1] == 200:
            return
        time.sleep(0.1)
    raise AssertionError(server.log.read_text()[-3000:])


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/jsonlines"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _stop(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        raise


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two copies; the untraced encoder is traced at start, as in a job without traced graphs."""
    workdir = tmp_path_factory.mktemp("pair-server")
    root = image_tree(PAIR_CONTEXT, workdir / "image")
    server = _start(
        root,
        {
            "INFERFLEET_PAIR_MODEL_DIR": str(minilm_dir()),
            "INFERFLEET_PAIR_TRACED_DIR": str(workdir / "traced"),
            "INFERFLEET_PAIR_TARGET": "cpu",
            "INFERFLEET_PAIR_BUCKETS": "16,32",
            "INFERFLEET_NEURON_CORES": "2",
        },
        workdir / "server.log",
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        if server.process.poll() is None:
            _stop(server)


def test_ping_is_unavailable_while_loading_then_ok(served: Server) -> None:
    assert served.pings[-1] == 200
    assert 503 in served.pings  # answered while tracing, before the copies were ready
    assert set(served.pings[:-1]) <= {0, 503}
    log = served.log.read_text()
    assert "tracing" in log
    assert "ready: 2 copies (cpu), on cores 0, 1" in log  # one NeuronCore per copy


def test_a_mini_batch_gets_one_line_per_record_in_order(served: Server) -> None:
    records = [
        {"id": f"r{i}", "left": "Apple iPhone 13 blue", "right": right, "batch": 3}
        for i, right in enumerate(["iphone 13 128gb blue apple", "garlic press", "iPhone 13"] * 7)
    ]
    body = "".join(json.dumps(record) + "\n" for record in records).encode()
    status, answer = _post(served.url, body)
    assert status == 200
    lines = [json.loads(line) for line in answer.splitlines()]
    assert [line["id"] for line in lines] == [record["id"] for record in records]
    assert all(set(line) == {"id", "batch", "score"} for line in lines)
    assert lines[0]["score"] > 0.7 > 0.3 > lines[1]["score"]


def test_concurrent_mini_batches_are_answered_by_both_copies(served: Server) -> None:
    bodies = [
        "".join(
            json.dumps({"id": f"{n}-{i}", "left": f"item {n} {i}", "right": "item"}) + "\n"
            for i in range(12)
        ).encode()
        for n in range(6)
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda body: _post(served.url, body), bodies))
    for n, (status, answer) in enumerate(answers):
        assert status == 200
        assert [json.loads(line)["id"] for line in answer.splitlines()] == [
            f"{n}-{i}" for i in range(12)
        ]


def test_a_bad_record_is_refused_with_its_line_and_other_paths_are_unknown(
    served: Server,
) -> None:
    status, answer = _post(served.url, b'{"id": 1, "left": "a", "right": "b"}\n{"id": 2}\n')
    assert status == 400
    assert answer.startswith("line 2 (id 2): 'left' must be a string")
    assert _post(served.url, b"\xff\xfe")[0] == 400
    assert _status(f"{served.url}/health") == 404
    status, answer = _post(served.url, b"")
    assert (status, answer) == (200, "")


def test_sigterm_stops_the_server_and_its_copies(tmp_path: Path) -> None:
    traced = compile_encoder(minilm_dir(), tmp_path / "traced", buckets=(16,), target="cpu")
    root = image_tree(PAIR_CONTEXT, tmp_path / "image")
    server = _start(
        root,
        {"INFERFLEET_PAIR_MODEL_DIR": str(traced), "INFERFLEET_NEURON_CORES": "1"},
        tmp_path / "server.log",
    )
    _wait_ready(server)
    assert "tracing" not in server.log.read_text()  # traced graphs are used as they are
    children = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children
    assert _stop(server) == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{child}").exists() for child in children):
        assert time.monotonic() < deadline, f"copies {children} outlived the server"
        time.sleep(0.1)


def test_a_model_that_does_not_load_ends_the_server_with_the_reason(tmp_path: Path) -> None:
    root = image_tree(PAIR_CONTEXT, tmp_path / "image")
    (tmp_path / "empty").mkdir()
    server = _start(
        root,
        {
            "INFERFLEET_PAIR_MODEL_DIR": str(tmp_path / "empty"),
            "INFERFLEET_PAIR_TRACED_DIR": str(tmp_path / "traced"),
            "INFERFLEET_PAIR_TARGET": "cpu",
        },
        tmp_path / "server.log",
    )
    assert server.process.wait(timeout=120) == 1
    assert "the model did not load" in server.log.read_text()
