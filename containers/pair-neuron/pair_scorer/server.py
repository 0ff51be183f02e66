"""SageMaker's inference contract for Batch Transform: ``GET /ping``, ``POST /invocations``.

SageMaker starts the image as ``<entrypoint> serve`` and sends each mini-batch (JSON
Lines, up to ``MaxPayloadInMB``) to ``/invocations`` on port 8080; the answer is one
JSON line per record. ``/ping`` answers 503 while the graphs are traced and loaded, 200
once every copy is ready. A model that cannot load, or a copy that dies, ends the process
with status 1 and one line saying why, so the job fails instead of hanging.

    python -m pair_scorer.server [serve] [--host 0.0.0.0] [--port 8080]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pair_scorer.records import RecordError, format_batch, parse_batch
from pair_scorer.settings import ScorerSettings, SettingsError
from pair_scorer.workers import WorkerError, WorkerPool

CONTENT_TYPE = "application/jsonlines"
SAGEMAKER_PORT = 8080


def log(message: str) -> None:
    print(f"pair-scorer: {message}", file=sys.stderr, flush=True)


def prepare_graphs(settings: ScorerSettings) -> Path:
    """The folder of traced graphs: the model folder itself, or the encoder traced now."""
    from pair_scorer.compile import compile_encoder, is_traced

    if is_traced(settings.model_dir):
        return settings.model_dir
    if not is_traced(settings.traced_dir):
        log(f"tracing {settings.model_dir} for {settings.target}, buckets {settings.buckets}")
        compile_encoder(
            settings.model_dir,
            settings.traced_dir,
            buckets=settings.buckets,
            batch_size=settings.batch_size,
            target=settings.target,
        )
    return settings.traced_dir


class ScorerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: ScorerSettings) -> None:
        super().__init__(address, ScorerHandler)
        self.settings = settings
        self.pool: WorkerPool | None = None
        self.ready = threading.Event()
        self.failure: str | None = None

    def load(self) -> None:
        """Trace when needed and start the copies; on failure, stop serving."""
        try:
            traced = prepare_graphs(self.settings)
            self.pool = WorkerPool(traced, self.settings.copies, self.settings.threads)
            self.pool.wait_ready()
        except Exception as error:
            self.fail(f"the model did not load: {type(error).__name__}: {error}")
            return
        self.ready.set()
        cores = ", ".join(self.pool.visible_cores)
        log(f"ready: {self.settings.copies} copies ({self.settings.target}), on cores {cores}")

    def fail(self, reason: str) -> None:
        self.failure = reason
        log(reason)
        threading.Thread(target=self.shutdown, daemon=True).start()


class ScorerHandler(BaseHTTPRequestHandler):
    server: ScorerServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path != "/ping":
            self._reply(HTTPStatus.NOT_FOUND, "use GET /ping or POST /invocations\n")
        elif self.server.ready.is_set():
            self._reply(HTTPStatus.OK, "")
        else:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "loading\n")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._reply(HTTPStatus.NOT_FOUND, "use POST /invocations\n")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._reply(HTTPStatus.LENGTH_REQUIRED, "send the mini-batch with Content-Length\n")
            return
        body = self.rfile.read(int(length))
        if not self.server.ready.is_set():
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "loading\n")
            return
        try:
            records = parse_batch(body.decode("utf-8"))
        except UnicodeDecodeError:
            self._reply(HTTPStatus.BAD_REQUEST, "the mini-batch is not UTF-8 text\n")
            return
        except RecordError as error:
            self._reply(HTTPStatus.BAD_REQUEST, f"{error}\n")
            return
        assert self.server.pool is not None
        try:
            scores = self.server.pool.score(
                [record.left for record in records], [record.right for record in records]
            )
        except WorkerError as error:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, f"{error}\n")
            if not self.server.pool.all_alive():
                self.server.fail(f"stopping: {error}")
            return
        self._reply(HTTPStatus.OK, format_batch(records, scores), CONTENT_TYPE)

    def _reply(self, status: HTTPStatus, text: str, content_type: str = "text/plain") -> None:
        payload = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        # One line per request would flood the job's log at thousands of mini-batches;
        # errors are logged where they are answered.
        return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("serve",), help="SageMaker passes serve")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=SAGEMAKER_PORT)
    arguments = parser.parse_args(argv)
    # Each copy tokenises in its own process; the tokenizer's threads would only contend.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        settings = ScorerSettings.from_env()
    except SettingsError as error:
        log(str(error))
        return 1
    server = ScorerServer((arguments.host, arguments.port), settings)
    # SageMaker stops the container with SIGTERM; stop serving, then stop the copies.
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    threading.Thread(target=server.load, name="load", daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if server.pool is not None:
            server.pool.close()
    return 1 if server.failure else 0


if __name__ == "__main__":
    sys.exit(main())
