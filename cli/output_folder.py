"""Folders the CLI writes, marked so it never removes or overwrites what it did not write.

A command that owns a folder (synth's assembly, deploy's work folder, local's state
folder) keeps a marker file in it naming the command and, for a folder it replaces
as a whole, every entry it wrote. It then

- writes into a folder only when the folder is new, empty, or marked by the same
  command (:func:`claim`; :func:`check_claimable` asks first), listing what it wrote
  file by file where it keeps the folder (:func:`record_entries`); and
- replaces a folder only when every entry in it is one the marker lists
  (:func:`check_replaceable`, :func:`replace`), swapping the new folder in with
  one atomic rename where the system has one, so the folder is always either the
  old or the new content.

Anything else is refused with exit code 2, naming the folder, what is in it, and
the fix.
"""

import contextlib
import ctypes
import json
import os
import shutil
import uuid
from pathlib import Path

from inferfleet.cli.errors import UserError

MARKER = ".inferfleet-owned.json"
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def check_claimable(folder: Path, *, flag: str, writer: str) -> None:
    """UserError unless :func:`claim` would take ``folder``: missing, empty, or marked by
    ``writer``; for a command that checks its flags before it writes anything."""
    _refuse_a_file(folder, flag)
    marker = _read_marker(folder)
    if marker is None and _top_level(folder) - {MARKER}:
        raise _not_ours(folder, flag, writer)
    if marker is not None and marker.get("writer") != writer:
        raise _not_ours(folder, flag, writer, marked_by=marker.get("writer"))


def claim(folder: Path, *, flag: str, writer: str) -> None:
    """Create ``folder`` (or accept it when empty or marked by ``writer``) and mark it."""
    check_claimable(folder, flag=flag, writer=writer)
    marker = _read_marker(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if marker is None:
            _write_marker(folder, writer, entries=None)
    except OSError as error:
        raise _cannot_write(folder, flag, error) from None


def written_entries(folder: Path) -> list[str]:
    """The entries the marker of a claimed ``folder`` lists as written (none yet: empty)."""
    return list((_read_marker(folder) or {}).get("entries") or [])


def record_entries(folder: Path, *, writer: str, entries: list[str]) -> None:
    """List ``entries`` as ``writer``'s in the marker, for a command that writes file by file."""
    _write_marker(folder, writer, entries=sorted(entries))


def check_replaceable(folder: Path, *, flag: str, writer: str) -> None:
    """UserError unless ``folder`` is missing, empty, or holds only what ``writer`` put there."""
    _refuse_a_file(folder, flag)
    if not _top_level(folder):
        return
    marker = _read_marker(folder)
    if marker is None or marker.get("writer") != writer or marker.get("entries") is None:
        raise _not_ours(folder, flag, writer, marked_by=(marker or {}).get("writer"))
    unknown = sorted(_entries(folder) - set(marker["entries"]) - {MARKER})
    if unknown:
        raise UserError(
            f"{flag} {folder}: holds {_some(unknown)}, which {writer} did not write; replacing "
            "the folder would delete them: move them out, or give another folder",
        )


def staging_folder(folder: Path, *, flag: str) -> Path:
    """A new empty folder next to ``folder``, to fill and then :func:`replace` it with."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staged = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.staging"
        staged.mkdir()
    except OSError as error:
        raise _cannot_write(folder, flag, error) from None
    return staged


def replace(folder: Path, staged: Path, *, flag: str, writer: str) -> None:
    """Mark ``staged`` as ``writer``'s and put it where ``folder`` is; the old one goes."""
    check_replaceable(folder, flag=flag, writer=writer)
    _write_marker(staged, writer, entries=sorted(_entries(staged)))
    if not folder.exists():
        staged.rename(folder)
        return
    if _exchange(staged, folder):
        shutil.rmtree(staged)
        return
    retired = staged.with_name(staged.name.replace(".staging", ".retired"))
    folder.rename(retired)
    try:
        staged.rename(folder)
    except OSError:
        retired.rename(folder)
        raise
    shutil.rmtree(retired)


def remove_staging(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where that is not available."""
    with contextlib.suppress(AttributeError, OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.renameat2(
            _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
        )
        return result == 0
    return False


def _top_level(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    try:
        return {path.name for path in folder.iterdir()}
    except OSError as error:
        raise UserError(
            f"{folder}: cannot list the folder ({error.strerror or error}); check its permissions"
        ) from None


def _entries(folder: Path) -> set[str]:
    """Every path below ``folder``, relative and with '/' separators (empty when missing)."""
    if not folder.is_dir():
        return set()
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


def _read_marker(folder: Path) -> dict | None:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _write_marker(folder: Path, writer: str, *, entries: list[str] | None) -> None:
    (folder / MARKER).write_text(
        json.dumps({"writer": writer, "entries": entries}, indent=1) + "\n", encoding="utf-8"
    )


def _refuse_a_file(folder: Path, flag: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder}: is a file, not a folder; give a folder path")


def _not_ours(folder: Path, flag: str, writer: str, *, marked_by: str | None = None) -> UserError:
    shown = _some(sorted(_top_level(folder) - {MARKER}))
    origin = f"was written by {marked_by}" if marked_by else f"was not written by {writer}"
    return UserError(
        f"{flag} {folder}: the folder {origin} and holds {shown}; {writer} only writes into a "
        "new or empty folder, or one it wrote before: give another folder",
    )


def _cannot_write(folder: Path, flag: str, error: OSError) -> UserError:
    return UserError(
        f"{flag} {folder}: cannot write there ({error.strerror or error}); give a folder "
        "you can write to",
    )


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
