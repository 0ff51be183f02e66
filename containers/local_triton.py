"""Run the Triton server shipped in the ``nvidia-pytriton`` wheel on 127.0.0.1.

Used by the CPU tests and benchmarks of the model repositories in this folder.
The wheel carries one Python-backend stub per Python version; the stub for the
running interpreter goes into a private copy of the backends folder, and the
interpreter's own ``libpython`` goes on ``LD_LIBRARY_PATH`` because the stub
links against a shared libpython that is not on the default search path here.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


class TritonUnavailableError(RuntimeError):
    """The wheel, its stub for this Python, or the server start-up is missing or failed."""


def _distribution() -> Path:
    try:
        import pytriton
    except ImportError as error:
        raise TritonUnavailableError("nvidia-pytriton is not installed") from error
    return Path(pytriton.__file__).parent / "tritonserver"


def prepare_backends(workdir: Path) -> Path:
    """Copy the backends with the Python-backend stub for this interpreter; return the folder."""
    source = _distribution()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonUnavailableError(f"no Python-backend stub for Python {version} in {source}")
    backends = workdir / "backends"
    shutil.copytree(source / "backends", backends, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(stub, backends / "python" / "triton_python_backend_stub")
    return backends


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int


class LocalTriton:
    """A Triton server process bound to 127.0.0.1 on free ports; a context manager."""

    def __init__(
        self,
        model_repository: Path,
        workdir: Path,
        environment: Mapping[str, str] | None = None,
        extra_arguments: tuple[str, ...] = (),
    ) -> None:
        self.model_repository = model_repository
        self.workdir = workdir
        self.environment = dict(environment or {})
        self.extra_arguments = extra_arguments
        self.ports = Ports(http=free_port(), grpc=free_port(), metrics=free_port())
        self.log_path = workdir / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        """Triton's gRPC port, as ``inferfleet bench --api triton-grpc --target`` takes it."""
        return f"http://127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def start(self, ready_timeout: float = 180.0) -> "LocalTriton":
        distribution = _distribution()
        backends = prepare_backends(self.workdir)
        library_path = [
            sysconfig.get_config_var("LIBDIR"),
            str(distribution.parent.parent / "nvidia_pytriton.libs"),
        ]
        environment = os.environ.copy()
        environment.update(self.environment)
        if environment.get("LD_LIBRARY_PATH"):
            library_path.append(environment["LD_LIBRARY_PATH"])
        environment["LD_LIBRARY_PATH"] = ":".join(library_path)
        # The stub starts the interpreter it finds first on PATH to resolve site-packages.
        environment["PATH"] = f"{Path(sys.executable).parent}:{environment.get('PATH', '')}"
        # The images copy common/serving_env.py next to their packages; here it stays in common/.
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).parent / "common"), environment.get("PYTHONPATH")])
        )
        command = [
            str(distribution / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--cache-directory={distribution / 'caches'}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--exit-on-error=true",
            *self.extra_arguments,
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
        self._wait_ready(ready_timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The Python-backend stubs run in the server's session; take them down with it.
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise TritonUnavailableError(
                    f"tritonserver exited with {self._process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise TritonUnavailableError(
            f"tritonserver not ready in {timeout} s:\n{self.log()[-4000:]}"
        )

    def __enter__(self) -> "LocalTriton":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
