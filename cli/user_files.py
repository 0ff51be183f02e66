"""Files the user names on the command line, checked before they are read or written.

Only regular files are read: a device (``/dev/zero``), a pipe or a socket would hang a read
or never end; a whole-file read stops at a bound, so a wrong path cannot exhaust memory.

A file a command writes (``--out FILE``) replaces only a file that holds what the command
writes — its own earlier output — or an empty one (:func:`check_replaceable_file`); another
file, one of the command's own inputs among them, is refused with exit code 2. The file is
written whole or not at all (:func:`write_file_atomically`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from inferfleet.cli.errors import UserError


def _size_text(limit: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def regular_file_size(path: Path, *, flag: str, what: str) -> int:
    """The size of ``path`` when it is a regular file; otherwise a ``UserError`` saying
    what to give instead (``what``, e.g. "the results.json a bench run wrote")."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{flag}: cannot read {path} (no such file); give {what}") from None
    except OSError as error:
        raise UserError(f"{flag}: cannot read {path} ({error.strerror}); give {what}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{flag} {path}: is a folder; give {what}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(
            f"{flag} {path}: is not a regular file (a device, pipe or socket); give {what}"
        )
    return info.st_size


def read_user_file(path: Path, *, flag: str, what: str, limit: int) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes."""
    regular_file_size(path, flag=flag, what=what)
    try:
        with path.open("rb") as file:
            content = file.read(limit + 1)  # read to the bound: the file may grow meanwhile
    except OSError as error:
        raise UserError(f"{flag}: cannot read {path} ({error.strerror}); give {what}") from None
    if len(content) > limit:
        raise UserError(
            f"{flag} {path}: larger than {_size_text(limit)}, which is more than {what} "
            "holds: check the path"
        )
    return content


def check_replaceable_file(
    path: Path, *, flag: str, what: str, holds_ours: Callable[[bytes], bool], limit: int
) -> None:
    """UserError unless writing ``path`` loses nothing: it is missing, empty, or a regular
    file whose first ``limit`` bytes ``holds_ours`` recognises as ``what`` (the command's
    own output)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise UserError(
            f"{flag} {path}: cannot reach it ({error.strerror}); give a path you can write to"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(
            f"{flag} {path}: not a regular file (a folder, device or pipe); give the path of "
            f"a file to write {what} to"
        )
    if info.st_size == 0:
        return
    try:
        with path.open("rb") as file:
            head = file.read(limit)
    except OSError as error:
        raise UserError(
            f"{flag} {path}: cannot read it ({error.strerror}) to see what it holds; give "
            "another path"
        ) from None
    if not holds_ours(head):
        raise UserError(
            f"{flag} {path}: the file holds something other than {what}, and writing would "
            "replace it: give another path, or move the file away first"
        )


def write_file_atomically(path: Path, write: Callable[[Path], None], *, flag: str) -> None:
    """Have ``write`` fill a temporary file beside ``path``, then rename it over ``path``:
    the file is whole or not there, with the permissions a new file gets."""
    staging = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, staging = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent
        )
        os.close(descriptor)
        write(Path(staging))
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(staging, 0o666 & ~umask)
        os.replace(staging, path)
        staging = None
    except OSError as error:
        raise UserError(
            f"{flag} {path}: cannot write it ({error.strerror or error}); give a path in a "
            "folder you can write to"
        ) from None
    finally:
        if staging is not None:
            Path(staging).unlink(missing_ok=True)
