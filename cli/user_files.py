"""Files the user names on the command line, checked before they are read.

Only regular files are read: a device (``/dev/zero``), a pipe or a socket would hang a read
or never end; a whole-file read stops at a bound, so a wrong path cannot exhaust memory.
"""

from __future__ import annotations

import stat
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
