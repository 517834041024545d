"""One error type with a stable code, so the page, the CLI and the tests agree on what went wrong.

A user sees `message` (one plain sentence); scripts and tests match on `code`, which never changes
once published.
"""

from __future__ import annotations


class QuantLensError(Exception):
    """A failure the user can act on: a bad input, a rejected upload, a limit reached."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The single line shown in the CLI and the page: message plus its stable code."""
        return f"{self.message} [{self.code}]"
