"""The project's user-facing error type (minimal version from the `store` branch).

Helper "robust" owns the full module (an error tree, exit codes, the CLI handler); this
file only carries what the index store needs, with a compatible signature, so the two
merge by taking robust's file.
"""
from __future__ import annotations


class RagError(Exception):
    """An error meant for the user: ``str(exc)`` is one clear line, ``exit_code`` the CLI's status."""

    exit_code: int = 1

    def __init__(self, message: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
