"""The notes folder: safe note names, a note's file, listing and deleting.

No name from outside (an upload's file name, a note path sent by a browser) reaches a path
outside ``settings.corpus_dir``: ``check_note_name`` and ``note_path`` are the two gates.
"""
from __future__ import annotations

import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Collection, Sequence

from rag.core.errors import InputError
from rag.reading.ingest import discover
from rag.core.settings import Settings

log = logging.getLogger(__name__)

TEMP_PREFIX = ".upload-"  # hidden: neither indexing nor the watcher looks at it
MAX_NAME_BYTES = 200  # leaves room for the temp prefix within the usual 255-byte limit
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NoteError(InputError, ValueError):
    """A note operation was refused; ``str(exc)`` is written for the user."""


class UploadError(NoteError):
    """An upload was refused; nothing was written."""


def refused_uploads(errors: Sequence[UploadError], nothing_added: bool) -> UploadError:
    """One error for several refused files; the web page renders each part in the reader's language."""
    text = " ".join(str(e) for e in errors) + (" Nothing was added." if nothing_added else "")
    return UploadError(text, parts=list(errors), nothing_added=nothing_added)


def too_big(name: str, size: int, max_bytes: int) -> UploadError:
    size_text, limit = human_size(size), human_size(max_bytes)
    return UploadError(f"“{name}” is {size_text}; notes can be at most {limit}.", key="up_too_big", name=name,
                       size=size_text, limit=limit)


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _allowed(extensions: Sequence[str]) -> str:
    return ", ".join(extensions)


# --- names ---------------------------------------------------------------------------------
def check_note_name(name: str, extensions: Sequence[str]) -> str:
    """The name an uploaded file gets in the corpus; raises UploadError for an unsafe one.

    A note name is a plain file name: no folders (``/``, ``\\``), no ``..``, not absolute,
    not hidden, no control characters, a note extension. Unicode (Chinese) names are kept,
    normalised to NFC so that the same name typed on two systems is one file.
    """
    raw = name if isinstance(name, str) else str(name)
    shown = _CONTROL.sub("?", raw)[:80] or "(empty)"
    clean = unicodedata.normalize("NFC", raw).strip()
    if not clean:
        raise UploadError("A file has no name.")
    if "/" in clean or "\\" in clean or clean in (".", ".."):
        raise UploadError(f"“{shown}”: a note's file name cannot contain folders or “..”; rename the file.")
    if _CONTROL.search(clean):
        raise UploadError(f"“{shown}”: the file name contains control characters; rename the file.")
    if clean.startswith("."):
        raise UploadError(f"“{shown}”: hidden files (names starting with “.”) cannot be notes.")
    if re.match(r"^[A-Za-z]:", clean):
        raise UploadError(f"“{shown}”: a note's file name cannot be a drive path.")
    stem, suffix = os.path.splitext(clean)
    if suffix.lower() not in {e.lower() for e in extensions}:
        allowed = _allowed(extensions)
        raise UploadError(f"“{shown}”: only {allowed} files can be added as notes.", key="up_type", name=shown,
                          allowed=allowed)
    if not stem.strip() or stem.strip(". ") == "":
        raise UploadError(f"“{shown}”: the file name is empty apart from its extension.")
    if stem.lower() in _RESERVED:
        raise UploadError(f"“{shown}”: this file name is reserved by some systems; rename the file.")
    if len(clean.encode("utf-8")) > MAX_NAME_BYTES:
        raise UploadError(f"“{shown[:40]}…”: the file name is too long (over {MAX_NAME_BYTES} bytes).")
    return clean


def corpus_root(settings: Settings) -> Path:
    root = Path(settings.corpus_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def inside_folder(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def note_path(settings: Settings, source: str) -> Path:
    """The file of the note ``source`` (a corpus-relative path as listed); raises NoteError.

    Refuses anything that is not an existing note file inside the corpus folder. Symbolic
    links follow the one rule of ``ingest.discover_notes``: a link to a note inside the
    folder is a note (deleting it removes the link); one that leads outside is refused.
    """
    root = corpus_root(settings)
    text = unicodedata.normalize("NFC", str(source or "")).strip()
    if not text:
        raise NoteError("No note was chosen.")
    rel = PurePosixPath(text.replace("\\", "/"))
    if rel.is_absolute() or any(part in ("..", ".", "") or part.startswith(".") for part in rel.parts):
        raise NoteError(f"“{_CONTROL.sub('?', text)[:80]}” is not a note in the notes folder.")
    if rel.suffix.lower() not in {e.lower() for e in settings.extensions}:
        raise NoteError(f"“{text[:80]}” is not a note ({_allowed(settings.extensions)}).")
    path = root.joinpath(*rel.parts)
    if not inside_folder(root, path.parent) or not inside_folder(root, path):
        raise NoteError(f"“{text[:80]}” is outside the notes folder.")
    if not path.is_file():
        raise NoteError(f"There is no note “{text[:80]}” (it may have been deleted or renamed).")
    return path


# --- listing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteInfo:
    source: str  # corpus-relative path with forward slashes
    size: int
    modified: float
    indexed: bool | None = None  # in the current index with this content; None: unknown

    def to_dict(self) -> dict:
        return {"source": self.source, "size": self.size, "modified": self.modified, "indexed": self.indexed}


def list_notes(settings: Settings, indexed_sources: Collection[str] | None = None,
               indexed_at: float | None = None) -> list[NoteInfo]:
    """Every note in the corpus, sorted by path.

    With ``indexed_sources`` (the notes in the current index) and ``indexed_at`` (when it
    was built), each note says whether the index has it: listed there and not modified
    since (a note that gave no passage is in the manifest's ``skipped``, so not indexed).
    Cheap: only ``stat`` calls, no reading. Links out of the folder are not listed.
    """
    root = Path(settings.corpus_dir)
    if not root.is_dir():
        return []
    known = set(indexed_sources) if indexed_sources is not None else None
    notes = []
    for path in discover(root, settings.extensions):
        try:
            st = path.stat()
        except OSError:
            continue  # deleted while listing
        source = path.relative_to(root).as_posix()
        indexed = None
        if known is not None:
            indexed = source in known and (indexed_at is None or st.st_mtime <= indexed_at)
        notes.append(NoteInfo(source, st.st_size, st.st_mtime, indexed))
    return notes


# --- deleting --------------------------------------------------------------------------------
def delete_note(settings: Settings, source: str) -> str:
    """Delete the note ``source`` (corpus-relative); returns it. Raises NoteError."""
    path = note_path(settings, source)
    try:
        path.unlink()
    except OSError as exc:
        raise NoteError(f"“{source}” could not be deleted ({exc.strerror or exc}).") from None
    log.info("deleted note %s", source)
    return path.relative_to(corpus_root(settings)).as_posix()
