"""The one error type for what a user can cause or fix (a server that is down, a bad setting).

Minimal version from the "scale" branch; the "robust" branch owns this module and may extend
it. Contract relied on here: ``RagError(message, exit_code)``, ``str(exc) == message``.
"""
from __future__ import annotations

EXIT_USAGE = 2  # a bad setting or argument
EXIT_UNAVAILABLE = 4  # a server the app needs is down or misbehaving


class RagError(Exception):
    """A user-facing error: one clean line of ``message``; the CLI exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
