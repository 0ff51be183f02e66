"""The pair-neuron image's scorer, run from this installation on 127.0.0.1 with CPU graphs.

The same ``pair_scorer.server`` the image starts, imported from the image's folder the way
the image imports it, with ``INFERFLEET_PAIR_TARGET=cpu``. Traced graphs are kept in the
user's cache, keyed by the model's files, the buckets, the batch size and the torch
version, so only the first run with a model traces it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType, TracebackType

from inferfleet.cli.batch.local_transform import ScorerRejected
from inferfleet.cli.errors import UserError
from inferfleet.cli.user_cache import user_cache_dir

IMAGE_FOLDER = "pair-neuron"
START_TIMEOUT_S = 900.0
LOG_TAIL_BYTES = 3000


def image_context() -> Path:
    return Path(str(resources.files("inferfleet.containers") / IMAGE_FOLDER))


def default_model_dir() -> Path:
    from inferfleet.containers.tiny_models import minilm_dir

    return minilm_dir()


def _cache_root() -> Path:
    return user_cache_dir("pair-traced")


def traced_cache_dir(model_dir: Path, environment: dict[str, str]) -> Path:
    """Where graphs of this model and these settings are kept between runs."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for name in sorted(environment):
        if name in ("INFERFLEET_PAIR_BUCKETS", "INFERFLEET_PAIR_BATCH_SIZE"):
            digest.update(f"{name}={environment[name]}".encode())
    digest.update(f"torch {version('torch')} transformers {version('transformers')}".encode())
    return _cache_root() / digest.hexdigest()[:24]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ScorerOptions:
    """
    :param model_dir: encoder folder (or traced graphs) the image would find in /opt/ml/model.
    :param copies: worker processes, one per NeuronCore the job's instance has.
    :param buckets: sequence buckets to trace, e.g. ``16,32,64,128``; None for the image's.
    :param threads: torch threads per copy.
    """

    model_dir: Path
    copies: int
    buckets: str | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if self.buckets is not None:
            try:
                _image_buckets().parse_buckets(self.buckets)
            except ValueError as error:
                raise UserError(f"--buckets: {error}") from None


def _image_buckets() -> ModuleType:
    """The image's own bucket rules (standard library only), read from its folder."""
    path = image_context() / "pair_scorer" / "buckets.py"
    spec = importlib.util.spec_from_file_location("inferfleet_pair_buckets", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look it up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class LocalPairScorer:
    """A running scorer process (context manager); ``invoke`` posts one mini-batch."""

    def __init__(self, options: ScorerOptions, *, timeout_s: float = 600.0) -> None:
        if not options.model_dir.is_dir():
            raise UserError(
                f"--model {options.model_dir}: no such folder; give an encoder folder "
                "(config.json, weights, tokenizer) or traced graphs"
            )
        self.options = options
        self.timeout_s = timeout_s
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Closed in __exit__: the scorer writes to it for as long as it runs.
        self._log = tempfile.NamedTemporaryFile(prefix="pair-scorer-", suffix=".log")  # noqa: SIM115
        self._process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        settings = {
            "INFERFLEET_PAIR_MODEL_DIR": str(self.options.model_dir),
            "INFERFLEET_PAIR_TARGET": "cpu",
            "INFERFLEET_NEURON_CORES": str(self.options.copies),
            "INFERFLEET_PAIR_THREADS": str(self.options.threads),
        }
        if self.options.buckets:
            settings["INFERFLEET_PAIR_BUCKETS"] = self.options.buckets
        settings["INFERFLEET_PAIR_TRACED_DIR"] = str(
            traced_cache_dir(self.options.model_dir, settings)
        )
        return {
            **os.environ,
            **settings,
            "PYTHONPATH": str(image_context()),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(self.options.threads),
        }

    def __enter__(self) -> LocalPairScorer:
        self._process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "pair_scorer.server"),
                *("--host", "127.0.0.1"),
                *("--port", str(self.port)),
            ],
            cwd=image_context(),
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C at the terminal reaches this process only, which
            # then stops the scorer in order.
            start_new_session=True,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise UserError(
                    f"the scorer exited with status {self._process.returncode} before it was "
                    f"ready: {self.log_tail()}",
                    exit_code=1,
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise UserError(
            f"the scorer was not ready within {START_TIMEOUT_S:.0f} s: {self.log_tail()}",
            exit_code=1,
        )

    def log_tail(self) -> str:
        self._log.flush()
        text = Path(self._log.name).read_bytes()[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
        return " ".join(text.split()) or "(no output)"

    def invoke(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            f"{self.url}/invocations",
            data=body,
            headers={"Content-Type": "application/jsonlines"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                return reply.read()
        except urllib.error.HTTPError as error:
            message = error.read().decode("utf-8", "replace")
            if 400 <= error.code < 500:
                raise ScorerRejected(message) from None
            raise RuntimeError(f"HTTP {error.code}: {message.strip()}") from None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
