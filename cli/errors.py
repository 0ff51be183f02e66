"""Errors the CLI reports to people as one paragraph, never as a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite that the user can fix.

    The message names what is wrong (the field, flag or file) and says the fix.
    ``exit_code`` 2 means bad input; other codes are for failed operations.
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
