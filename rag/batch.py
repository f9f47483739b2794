"""Reading ``--batch`` files: one JSON request per line, each answered on its own.

Used by every batch command (``rag retrieve --batch``, ``rag ask --batch``). A bad line —
not JSON, not an object, no ``question``, a ``history`` that is not a list of turns — never
stops the batch: it becomes a ``BatchLineError`` that the command prints on stdout as an
error object for that line's ``id`` (or its line number), and the next line is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from rag.search.conversation import Message
from rag.core.errors import BatchLineError, InputError
from rag.reading.scope import Scope

SCOPE_KEYS = ("in", "tags", "since", "until")


@dataclass(frozen=True)
class BatchItem:
    line: int  # 1-based line number in the file
    id: object  # the request's "id" as given (any JSON value), or None
    question: str
    history: list[Message] = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # the whole request, for commands with extra fields
    scope: Scope | None = None  # "in", "tags", "since", "until" of the request (rag/reading/scope.py); None: not given


def parse_batch_line(text: str, line: int) -> BatchItem:
    """One line of a batch file as a BatchItem; raises BatchLineError naming what is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchLineError(f"line {line} is not JSON ({exc.msg} at column {exc.colno})", line=line) from None
    if not isinstance(raw, dict):
        raise BatchLineError(f"line {line} is not a JSON object with a \"question\"", line=line)
    item_id = raw.get("id")
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        what = "has no \"question\"" if question is None else "has a blank or non-text \"question\""
        raise BatchLineError(f"line {line} {what}", line=line, item_id=item_id)
    history_raw = raw.get("history")
    if history_raw is None:
        history_raw = []
    if not isinstance(history_raw, list):
        raise BatchLineError(f"line {line}: \"history\" must be a list of {{role, content}} turns, "
                             f"not {type(history_raw).__name__}", line=line, item_id=item_id)
    history = []
    for n, turn in enumerate(history_raw, 1):
        try:
            if not isinstance(turn, dict):
                raise ValueError("not an object")
            history.append(Message.from_dict(turn))
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise BatchLineError(f"line {line}: history turn {n} is not a {{role, content}} turn ({detail})",
                                 line=line, item_id=item_id) from None
    try:
        scope = request_scope(raw)
    except (InputError, TypeError) as exc:
        raise BatchLineError(f"line {line}: {exc}", line=line, item_id=item_id) from None
    return BatchItem(line, item_id, question, history, raw, scope)


def request_scope(raw: dict) -> Scope | None:
    """The scope keys of a request ({"in": "folder" or [...], "tags": [...], "since", "until"}),
    or None when it has none; raises InputError for a value of the wrong kind."""
    if not any(key in raw for key in SCOPE_KEYS):
        return None

    def strings(key: str) -> list[str]:
        value = raw.get(key) or []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f'"{key}" must be a string or a list of strings')
        return value

    for key in ("since", "until"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise InputError(f'"{key}" must be a date string (YYYY-MM-DD)')
    return Scope.parse(strings("in"), strings("tags"), raw.get("since"), raw.get("until"))


def parse_request(question: object, history: object, what: str = "the request") -> BatchItem:
    """A question and its history given by other means than a batch file (the /ask API,
    ``--history``), checked by the same rules; raises InputError naming ``what`` is wrong."""
    try:
        return parse_batch_line(json.dumps({"question": question, "history": history}), 1)
    except (TypeError, ValueError) as exc:  # not JSON values at all
        raise InputError(f"{what} is not a question with a history ({exc})") from None
    except BatchLineError as exc:
        raise InputError(what + str(exc).removeprefix("line 1").removeprefix(":")) from None


def read_batch(fh: IO[bytes] | IO[str]) -> Iterator[BatchItem | BatchLineError]:
    """Every non-blank line of ``fh``: a BatchItem, or the BatchLineError saying why it is not one.

    ``fh`` is best opened in binary (``open_batch``): each line is then decoded on its own, so
    that a line that is not UTF-8 is that line's error and the lines after it are still read."""
    for line, raw in enumerate(fh, 1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BatchLineError(f"line {line} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                     f"{exc.start + 1}); save the batch file as UTF-8", line=line)
                continue
        else:
            text = raw
        if line == 1:
            text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as Windows editors write
        if not text.strip():
            continue
        try:
            yield parse_batch_line(text, line)
        except BatchLineError as exc:
            yield exc


def open_batch(path: str | Path) -> IO[bytes]:
    """The batch file opened for reading, in binary (``read_batch`` decodes each line); raises
    InputError when it cannot be."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"batch file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read the batch file {path}: {exc.strerror or exc}") from None
