"""The one error type for everything a user can cause, and its exit codes.

Every error a person can cause or fix — a missing notes folder, a bad setting, a bad
line in a batch file, an index that is missing or being built, a server that is down —
is a ``RagError``: ``str(exc)`` is one line written for that person, and ``exit_code``
is what the ``rag`` command returns. The CLI has one handler for all of them
(``rag.cli.main``); anything else is a bug and keeps its traceback.

The tree (classes defined elsewhere keep their historic names and also subclass the
builtin they always were, so ``except ValueError`` around them still works)::

    RagError                          exit 1
    ├── ConfigError                   exit 2   a bad setting or a malformed rag.toml
    ├── InputError                    exit 2   something the user gave: a question, a file, a batch line
    │   ├── BatchLineError                     one bad line of a --batch file
    │   ├── CorpusNotFound                     the notes folder does not exist
    │   ├── rag.reading.ingest.IngestError     a file that cannot be read as a note
    │   ├── rag.answer.chat.QuestionError      a blank or too-long question
    │   ├── rag.reading.scope.ScopeError / ScopeEmpty   a scope given wrongly / holding no note
    │   └── rag.notes.NoteError                a refused note operation
    │       └── rag.notes.UploadError          a refused upload (nothing was written)
    ├── IndexUnavailable              exit 2   no usable index
    │   ├── rag.index.version_files.IndexNotFound       no index built yet
    │   └── rag.index.build_lock.IndexFolderUnusable   the index folder cannot be made or written
    ├── IndexBusy                     exit 3   another build holds the index lock
    │   └── IndexLocked                        a build holds the lock (file lock or shared lease)
    ├── ServiceError                  exit 4   a server the app talks to failed
    │   └── rag.answer.llm.base.LLMError
    │       └── rag.answer.llm.base.LLMUnavailable      unreachable, not loaded, timed out
    └── ServeError (ui.bind)          exit 2   the web server cannot start as configured
"""
from __future__ import annotations

EXIT_ERROR = 1
EXIT_USAGE = 2  # the user's input or configuration must change
EXIT_BUSY = 3  # try again later: another build holds the index
EXIT_SERVICE = 4  # a server (LLM) is down or refused


class RagError(Exception):
    """An error meant for the user: ``str(exc)`` is one clear line, ``exit_code`` the CLI's status.

    ``key`` and ``values``, when given, name the same line in the web page's catalogue
    (ui/i18n.py), so that a reader of another language gets it in theirs; ``str(exc)``
    stays the English line for the CLI and the logs."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str = "", *, exit_code: int | None = None, key: str = "", **values) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.key, self.values = key, values

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(RagError):
    """A setting has a value the program cannot work with (or rag.toml does not parse)."""

    exit_code = EXIT_USAGE


class InputError(RagError):
    """Something the user gave (a question, a file, a line of a batch) cannot be used as given."""

    exit_code = EXIT_USAGE


class BatchLineError(InputError):
    """One line of a ``--batch`` file is not a usable request; the other lines are still answered."""

    def __init__(self, message: str, *, line: int, item_id=None) -> None:
        super().__init__(message)
        self.line = line
        self.item_id = item_id

    def to_dict(self) -> dict:
        """The error object printed on stdout in place of that line's answer."""
        return {"id": self.item_id, "line": self.line, "error": str(self)}


class CorpusNotFound(InputError, FileNotFoundError):
    """The notes folder does not exist."""


class IndexUnavailable(RagError):
    """There is no index that can be used (none built, or built for another model)."""

    exit_code = EXIT_USAGE


class IndexBusy(RagError):
    """Another build holds the index; trying again later will work."""

    exit_code = EXIT_BUSY


class IndexLocked(IndexBusy, RuntimeError):
    """Another build holds this index's lock (a file lock, or the shared index's lease)."""


class ServiceError(RagError):
    """A server the app depends on (the LLM server) is down or refused a request."""

    exit_code = EXIT_SERVICE


def one_line(exc: BaseException) -> str:
    """``exc`` as the single line the CLI prints: its message with newlines folded."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text
