"""One worker process per model copy; a mini-batch goes whole to an idle copy.

SageMaker sends at most ``MaxConcurrentTransforms`` requests at a time, which the job sets
to the instance's NeuronCores, so with one copy per core every request has a core to
itself. Worker ``i`` sees only NeuronCore ``i``: ``NEURON_RT_VISIBLE_CORES`` is set before
the Neuron runtime is imported in that process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


class WorkerError(RuntimeError):
    """A copy failed on a mini-batch, or its process is gone."""


def _serve_copy(core: int, traced_dir: str, threads: int, connection: Connection) -> None:
    # The server stops its copies itself; a Ctrl-C meant for it must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["NEURON_RT_VISIBLE_CORES"] = str(core)
    import torch

    from pair_scorer.runtime import PairRuntime

    torch.set_num_threads(threads)
    try:
        runtime = PairRuntime(Path(traced_dir))
        runtime.warm_up()
    except Exception as error:  # reported to the parent, which stops the server
        connection.send(("error", f"copy {core} did not load: {type(error).__name__}: {error}"))
        return
    connection.send(("ready", os.environ["NEURON_RT_VISIBLE_CORES"]))
    while True:
        try:
            request = connection.recv()
        except EOFError:  # the server is gone
            return
        if request is None:
            return
        lefts, rights = request
        try:
            connection.send(("ok", runtime.score(lefts, rights)))
        except Exception as error:  # one bad batch must not take the copy down
            connection.send(("error", f"{type(error).__name__}: {error}"))


@dataclass
class _Copy:
    core: int
    process: Any  # multiprocessing.Process of the spawn context
    connection: Connection


class WorkerPool:
    """``copies`` processes, each loading ``traced_dir``; ``score`` blocks for an idle one."""

    def __init__(self, traced_dir: Path, copies: int, threads: int = 1) -> None:
        # spawn: a fork of a process that already imported torch is not safe to use.
        context = multiprocessing.get_context("spawn")
        self._copies: list[_Copy] = []
        for core in range(copies):
            parent, child = context.Pipe()
            process = context.Process(
                target=_serve_copy,
                args=(core, str(traced_dir), threads, child),
                name=f"pair-copy-{core}",
                daemon=True,
            )
            process.start()
            child.close()
            self._copies.append(_Copy(core, process, parent))
        self._idle: queue.Queue[_Copy] = queue.Queue()
        self.visible_cores: list[str] = []

    def wait_ready(self) -> None:
        """Block until every copy has loaded; WorkerError names the first that did not.

        ``visible_cores`` then lists the NeuronCores each copy's process sees."""
        for copy in self._copies:
            status, message = self._receive(copy)
            if status != "ready":
                raise WorkerError(message)
            self.visible_cores.append(message)
            self._idle.put(copy)

    def score(self, lefts: Sequence[str], rights: Sequence[str]) -> list[float]:
        copy = self._idle.get()
        try:
            copy.connection.send((list(lefts), list(rights)))
            status, result = self._receive(copy)
        finally:
            self._idle.put(copy)
        if status != "ok":
            raise WorkerError(f"copy {copy.core}: {result}")
        return result

    def _receive(self, copy: _Copy) -> tuple[str, Any]:
        try:
            return copy.connection.recv()
        except (EOFError, OSError):
            copy.process.join(timeout=5)
            raise WorkerError(
                f"copy {copy.core} exited with status {copy.process.exitcode}"
            ) from None

    def all_alive(self) -> bool:
        return all(copy.process.is_alive() for copy in self._copies)

    def close(self) -> None:
        for copy in self._copies:
            with contextlib.suppress(OSError):
                copy.connection.send(None)
        for copy in self._copies:
            copy.process.join(timeout=10)
            if copy.process.is_alive():
                copy.process.kill()
                copy.process.join()
