"""Processes as /proc shows them: alive or not, command lines, and what runs below a pid."""

import contextlib
import os
import signal
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True for a live process; zombies (exited, not yet reaped) count as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def command_of(pid: int) -> str | None:
    """The command line with spaces between arguments; None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` (children, theirs, ...): pid -> command line."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    below: dict[int, str] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        below |= {pid: command_of(pid) or "" for pid in frontier}
    return below


def kill_if_unchanged(started: dict[int, str]) -> None:
    """SIGKILL each recorded process that still runs the same command (a test's leftovers)."""
    for pid, command in started.items():
        if command_of(pid) == command:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
