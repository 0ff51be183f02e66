"""Steps of a rollout as events: JSON lines for CI, a rich view on stderr for people.

Every step ends in exactly one event, one JSON object per line with ``--json``::

    {"time": "2026-11-21T11:57:34+00:00", "phase": "deploy", "status": "succeeded",
     "region": "us-east-1", "stack": "fleet-us-east-1", "duration_s": 41.2,
     "outputs": {"AssistantEndpoint": "http://...", ...}, "message": "", "detail": {...}}

``phase`` is one of credentials, bootstrap, synth, preflight, deploy, wait, smoke, diff,
destroy, summary; ``status`` one of succeeded, failed, skipped (``message`` says why).
``region`` and ``stack`` are null for steps of the whole run, ``outputs`` null until a
deploy step has them. The last event is the summary, whose detail names the completed
and untouched regions and, on failure, the region and phase that failed; after Ctrl-C
it is the interrupted step's failure instead.
"""

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TextIO

from inferfleet.cli.errors import UserError

Phase = Literal[
    "credentials", "bootstrap", "synth", "preflight", "deploy", "wait", "smoke", "diff",
    "destroy", "summary",
]  # fmt: skip
Status = Literal["succeeded", "failed", "skipped"]


class StepFailed(Exception):
    """A step that failed for a reason the message gives (with the fix where there is one)."""


@dataclass
class Event:
    phase: Phase
    status: Status
    region: str | None = None
    stack: str | None = None
    duration_s: float = 0.0
    outputs: dict[str, str] | None = None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "phase": self.phase,
            "status": self.status,
            "region": self.region,
            "stack": self.stack,
            "duration_s": round(self.duration_s, 3),
            "outputs": self.outputs,
            "message": self.message,
            "detail": self.detail,
        }


class EventSink(Protocol):
    def started(self, phase: Phase, region: str | None, stack: str | None) -> None: ...
    def progress(self, text: str) -> None: ...
    def finished(self, event: Event) -> None: ...


class JsonLinesSink:
    """One JSON object per line on ``stream`` (stdout), flushed as each step ends."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def started(self, phase: Phase, region: str | None, stack: str | None) -> None:
        pass

    def progress(self, text: str) -> None:
        pass

    def finished(self, event: Event) -> None:
        self.stream.write(json.dumps(event.as_dict()) + "\n")
        self.stream.flush()


_MARKS = {
    "succeeded": "[green]✓[/green]",
    "failed": "[red]✗[/red]",
    "skipped": "[yellow]-[/yellow]",
}


class RichView:
    """A spinner for the running step and one line per finished step, on stderr."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False)
        self._status: Any = None
        self._label = ""

    def started(self, phase: Phase, region: str | None, stack: str | None) -> None:
        self._label = " ".join(part for part in (phase, region) if part)
        self._status = self.console.status(self._label)
        self._status.start()

    def progress(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"{self._label}: {text}")

    def finished(self, event: Event) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if event.phase == "summary":
            # A failed rollout is reported once, as the command's error.
            if event.status == "succeeded":
                self.console.print(f"[green]{event.message}[/green]")
            return
        where = " ".join(part for part in (event.phase, event.region) if part)
        line = f"{_MARKS[event.status]} [bold]{where}[/bold] ({event.duration_s:.1f} s)"
        if event.message:
            line += f" {event.message}"
        self.console.print(line)


class Step:
    """What a running step reports back: its outputs, a message, details, or a skip."""

    def __init__(self) -> None:
        self.status: Status = "succeeded"
        self.outputs: dict[str, str] | None = None
        self.message = ""
        self.detail: dict[str, Any] = {}

    def skip(self, reason: str) -> None:
        self.status = "skipped"
        self.message = reason


class EventStream:
    """Runs steps, times them, and hands each one's event to every sink."""

    def __init__(self, sinks: list[EventSink]) -> None:
        self.sinks = sinks
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)
        for sink in self.sinks:
            sink.finished(event)

    def progress(self, text: str) -> None:
        for sink in self.sinks:
            sink.progress(text)

    @contextmanager
    def step(
        self, phase: Phase, *, region: str | None = None, stack: str | None = None
    ) -> Iterator[Step]:
        """Raises StepFailed when the body fails; an unexpected error becomes one too, so the
        stream always ends with the event of the step that stopped it."""
        for sink in self.sinks:
            sink.started(phase, region, stack)
        step = Step()
        start = time.monotonic()
        try:
            yield step
        except KeyboardInterrupt:
            self.emit(
                Event(
                    phase,
                    "failed",
                    region=region,
                    stack=stack,
                    duration_s=time.monotonic() - start,
                    message="interrupted; an operation CloudFormation already started goes on "
                    "without us: check the stack before running again",
                )
            )
            raise
        except Exception as error:  # reported as the failure of the step
            message = str(error) if isinstance(error, StepFailed | UserError) else _describe(error)
            self.emit(
                Event(
                    phase,
                    "failed",
                    region=region,
                    stack=stack,
                    duration_s=time.monotonic() - start,
                    outputs=step.outputs,
                    message=message,
                    detail=step.detail,
                )
            )
            raise StepFailed(message) from error
        self.emit(
            Event(
                phase,
                step.status,
                region=region,
                stack=stack,
                duration_s=time.monotonic() - start,
                outputs=step.outputs,
                message=step.message,
                detail=step.detail,
            )
        )


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
