"""Questions limited to part of the notes: folders or files, tags, a date range.

Every note carries, in the index manifest, its tags and its date (``note_metadata``):
tags from YAML front matter (``tags: [a, b]``, ``tags: a, b`` or a ``- a`` list) and inline
Obsidian-style ``#tag`` words outside code; the date from front matter (``updated:`` or
``date:``), else the file's modification time. A ``Scope`` says which notes a question may
use; retrieval searches inside it (``scope_mask``), before fusion and the relevance
decision, so a scoped question gets its full k from inside the scope.

Invariants: an empty ``Scope`` allows every note; each given criterion must hold (folders
are alternatives, tags are alternatives, dates bound both ends inclusively); a note without
a date fails a date range; a scope that allows no note raises ``ScopeEmpty``.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

import numpy as np

from rag.core.errors import InputError
from rag.core.text import FENCE

__all__ = ["Scope", "ScopeEmpty", "ScopeError", "note_metadata", "scope_mask", "search_within"]


class ScopeError(InputError, ValueError):
    """A scope given wrongly (a date that is not a date)."""


class ScopeEmpty(InputError, LookupError):
    """No note of the index lies inside the scope asked for."""


@dataclass(frozen=True)
class Scope:
    within: tuple[str, ...] = ()  # folders or notes, relative to the notes folder
    tags: tuple[str, ...] = ()
    since: dt.date | None = None
    until: dt.date | None = None

    def __bool__(self) -> bool:
        return bool(self.within or self.tags or self.since or self.until)

    @classmethod
    def parse(cls, within: Sequence[str] = (), tags: Sequence[str] = (), since: str | None = None,
              until: str | None = None) -> "Scope":
        """From command-line or request values; raises ScopeError for a date that is not YYYY-MM-DD."""
        folders = tuple(str(PurePosixPath(w.replace("\\", "/"))).strip("/") for w in within if w and w.strip())
        return cls(tuple(f for f in folders if f not in ("", ".")), tuple(t.lstrip("#").lower() for t in tags if t),
                   _date(since, "since"), _date(until, "until"))

    def describe(self) -> str:
        parts = [f"in {', '.join(self.within)}"] if self.within else []
        parts += [f"tagged {', '.join('#' + t for t in self.tags)}"] if self.tags else []
        parts += [f"since {self.since}"] if self.since else []
        parts += [f"until {self.until}"] if self.until else []
        return "; ".join(parts) or "all notes"

    def allows(self, source: str, tags: Sequence[str], date: str) -> bool:
        if self.within and not any(source == w or source.startswith(w + "/") for w in self.within):
            return False
        if self.tags and not set(self.tags) & {t.lower() for t in tags}:
            return False
        if self.since or self.until:
            day = _date(date, "date", strict=False)
            if day is None or (self.since and day < self.since) or (self.until and day > self.until):
                return False
        return True


def _date(value: str | None, what: str, strict: bool = True) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        if strict:
            raise ScopeError(f"--{what} {value!r} is not a date (YYYY-MM-DD)") from None
        return None


def scope_mask(scope: Scope, sources: Sequence[str], notes: Mapping[str, object]) -> np.ndarray:
    """Which passages (by their notes' ``sources``) the scope allows; ``notes`` maps a source to
    its manifest entry (``tags``, ``date``). Raises ScopeEmpty when it allows none."""
    allowed_notes = {s for s, entry in notes.items()
                     if scope.allows(s, getattr(entry, "tags", ()) or (), getattr(entry, "date", "") or "")}
    mask = np.fromiter((s in allowed_notes for s in sources), dtype=bool, count=len(sources))
    if not mask.any():
        raise ScopeEmpty(f"no note matches the scope ({scope.describe()}): check the folder, tag or dates")
    return mask


def search_within(vectors: np.ndarray, allowed: np.ndarray, queries: np.ndarray,
                  n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product search over the allowed rows of ``vectors``, shaped like
    ``VectorIndex.search``: (scores (nq, n), ids (nq, n)), best first, -1 ids past the end.
    Exact on every store: a scope is a subset, and its rows are already in memory."""
    ids = np.flatnonzero(allowed)
    scores = np.asarray(queries, dtype=np.float32) @ vectors[ids].T
    k = min(n, len(ids))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    out_scores = np.full((len(queries), n), -np.inf, dtype=np.float32)
    out_ids = np.full((len(queries), n), -1, dtype=np.int64)
    out_scores[:, :k] = np.take_along_axis(scores, top, axis=1)
    out_ids[:, :k] = ids[top]
    return out_scores, out_ids


# --- what a note says about itself ----------------------------------------------------------
_FRONT = re.compile(r"\A---\s*\n(.*?)\n(?:---|\.\.\.)\s*(?:\n|\Z)", re.S)
_KEY = re.compile(r"^(tags|date|updated)\s*:\s*(.*)$", re.I)
_INLINE_TAG = re.compile(r"(?<![\w#&/\\])#([A-Za-z\u4e00-\u9fff][\w\u4e00-\u9fff\-/]*)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def note_metadata(text: str, path: Path | None = None) -> tuple[tuple[str, ...], str]:
    """(tags, date as YYYY-MM-DD or "") of a note's text; the date falls back to ``path``'s mtime."""
    tags: list[str] = []
    date = ""
    front = _FRONT.match(text)
    if front:
        lines = front.group(1).split("\n")
        for i, line in enumerate(lines):
            m = _KEY.match(line.strip())
            if not m:
                continue
            key, value = m.group(1).lower(), m.group(2).strip()
            if key == "tags":
                if value:
                    tags += [t.strip(" '\"#") for t in value.strip("[]").split(",")]
                else:  # a YAML list on the lines below
                    for item in lines[i + 1:]:
                        if not item.strip().startswith("- "):
                            break
                        tags.append(item.strip()[2:].strip(" '\"#"))
            elif key == "updated" or (key == "date" and not date):
                date = _date(value.strip("'\""), key, strict=False).isoformat() if _date(
                    value.strip("'\""), key, strict=False) else date
    in_code = False
    for line in text[front.end():].split("\n") if front else text.split("\n"):
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:  # a heading's own marks ("## ") are never tags: a tag's # touches its word
            tags += _INLINE_TAG.findall(_CODE_SPAN.sub("", line))
    if not date and path is not None:
        try:
            date = dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
        except OSError:
            date = ""
    return tuple(dict.fromkeys(t.lower() for t in tags if t)), date
