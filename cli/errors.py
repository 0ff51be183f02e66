"""Errors the CLI reports to people as one paragraph, never as a traceback."""

from collections.abc import Mapping
from typing import Any


class UserError(Exception):
    """Bad input or a missing prerequisite that the user can fix.

    The message names what is wrong (the field, flag or file) and says the fix.
    ``exit_code`` 2 means bad input; other codes are for failed operations.
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def pydantic_problem(detail: Mapping[str, Any]) -> str:
    """pydantic's message for one error, with the given value where the message lacks it.

    Our own validators' messages already quote the value and say the fix; pydantic puts
    "Value error, " before them, which says nothing to a user.
    """
    message = str(detail["msg"]).removeprefix("Value error, ")
    given = detail.get("input")
    if detail["type"] != "value_error" and isinstance(given, int | float | str):
        message += f" (got {given!r})"
    return message
