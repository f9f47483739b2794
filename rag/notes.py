"""Managing the notes folder from an app: list, add (upload), delete, show a passage in context,
and re-index in the background.

Everything here works on real files under ``settings.corpus_dir`` and never lets a name
from outside (an upload's file name, a note path sent by a browser) reach a path outside
that folder. Adding notes is all-or-nothing: every file of a batch is validated before
any is written, each is written to a hidden temporary file and renamed into place, so a
failed upload leaves the corpus, and therefore the index, exactly as it was.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import unicodedata
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Callable, Collection, Iterable, Sequence

from rag.core.errors import InputError
from rag.core.progress import ProgressMeter
from rag.reading.ingest import Document, IngestError, decode, discover, file_hash
from rag.reading.loaders import loader_for, page_lines, page_span
from rag.core.settings import Settings
from rag.core.text import HAN, HAN_CHAR

__all__ = [
    "AddReport",
    "BuildCancelled",
    "NoteError",
    "NoteInfo",
    "PassageView",
    "Reindexer",
    "ReindexStatus",
    "Upload",
    "UploadError",
    "add_notes",
    "check_note_name",
    "delete_note",
    "highlight_terms",
    "list_notes",
    "note_path",
    "passage_view",
    "read_note_lines",
    "term_pattern",
    "read_upload",
]

log = logging.getLogger(__name__)

TEMP_PREFIX = ".upload-"  # hidden: neither indexing nor the watcher looks at it
MAX_NAME_BYTES = 200  # leaves room for the temp prefix within the usual 255-byte limit
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# When another process (a `rag index` in a terminal) holds the index lock, a background
# rebuild waits and tries again, doubling the wait up to the cap: its change must get in.
# A small corpus builds in seconds, a 2 MB one in minutes (bench/README.md), so the cap
# keeps the delay after a long build short without polling a lock file many times a second.
LOCKED_RETRY_FIRST_S = 0.5
LOCKED_RETRY_MAX_S = 8.0


class NoteError(InputError, ValueError):
    """A note operation was refused; ``str(exc)`` is written for the user."""


class UploadError(NoteError):
    """An upload was refused; nothing was written."""


def refused_uploads(errors: Sequence[UploadError], nothing_added: bool) -> UploadError:
    """One error for several refused files; the web page renders each part in the reader's language."""
    text = " ".join(str(e) for e in errors) + (" Nothing was added." if nothing_added else "")
    return UploadError(text, parts=list(errors), nothing_added=nothing_added)


def _too_big(name: str, size: int, max_bytes: int) -> UploadError:
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


def _corpus_root(settings: Settings) -> Path:
    root = Path(settings.corpus_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _inside(root: Path, path: Path) -> bool:
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
    root = _corpus_root(settings)
    text = unicodedata.normalize("NFC", str(source or "")).strip()
    if not text:
        raise NoteError("No note was chosen.")
    rel = PurePosixPath(text.replace("\\", "/"))
    if rel.is_absolute() or any(part in ("..", ".", "") or part.startswith(".") for part in rel.parts):
        raise NoteError(f"“{_CONTROL.sub('?', text)[:80]}” is not a note in the notes folder.")
    if rel.suffix.lower() not in {e.lower() for e in settings.extensions}:
        raise NoteError(f"“{text[:80]}” is not a note ({_allowed(settings.extensions)}).")
    path = root.joinpath(*rel.parts)
    if not _inside(root, path.parent) or not _inside(root, path):
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


# --- adding ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    name: str  # the file name the user gave (may be hostile)
    data: bytes


def read_upload(path: str | Path, name: str | None, max_bytes: int) -> Upload:
    """An uploaded temp file as an Upload, refusing a too-large one before reading it all."""
    path = Path(path)
    name = name if name is not None else path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UploadError(f"“{name}”: the upload could not be read ({exc.strerror or exc}).") from None
    if size > max_bytes:
        raise _too_big(name, size, max_bytes)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    return Upload(name, data)


@dataclass(frozen=True)
class AddedNote:
    source: str
    size: int
    replaced: bool = False


@dataclass
class AddReport:
    added: list[AddedNote] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, note it duplicates)

    def summary(self) -> str:
        parts = []
        if self.added:
            names = ", ".join(a.source for a in self.added)
            replaced = sum(a.replaced for a in self.added)
            parts.append(f"Added {len(self.added)} note{'s' if len(self.added) != 1 else ''}: {names}"
                         + (f" ({replaced} replaced)" if replaced else "") + ".")
        for name, existing in self.duplicates:
            same = " (the same file)" if name == existing else ""
            parts.append(f"“{name}” is already in your notes as “{existing}”{same}; skipped.")
        return " ".join(parts) or "Nothing to add."


# What a refused file is called, per loader (rag/reading/loaders): "“x.pdf” is not a readable PDF (...)".
_FORMAT_NOUN = {"text": "a text note", "pdf": "a readable PDF", "html": "a readable HTML page"}


def _validate_content(name: str, data: bytes, max_bytes: int) -> None:
    """Size, then type by content: the loader of the name's suffix must read the bytes.

    A PDF must start with %PDF and have a text layer; HTML and text must decode as text.
    """
    if len(data) > max_bytes:
        raise _too_big(name, len(data), max_bytes)
    if not data.strip():
        raise UploadError(f"“{name}” is empty.", key="up_empty", name=name)
    try:
        loader = loader_for(name)
    except IngestError as exc:
        raise UploadError(f"“{name}”: {exc}.") from None
    try:
        loader.check(data)
    except IngestError as exc:
        raise UploadError(f"“{name}” is not {_FORMAT_NOUN.get(loader.name, 'a note')} ({exc}).") from None


def _existing_hashes(root: Path, settings: Settings, sizes: set[int]) -> dict[str, str]:
    """content hash -> source, for existing notes whose size matches an upload (cheap prefilter)."""
    found: dict[str, str] = {}
    for path in discover(root, settings.extensions):
        try:
            if path.stat().st_size not in sizes:
                continue
            found.setdefault(file_hash(path.read_bytes()), path.relative_to(root).as_posix())
        except OSError:
            continue
    return found


def _write_temp(folder: Path, data: bytes) -> Path:
    tmp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def add_notes(settings: Settings, uploads: Iterable[Upload], *, replace: bool = False) -> AddReport:
    """Add uploaded files to the corpus folder, all or nothing; raises UploadError.

    Every file is checked first (safe name, type, size limit, decodes as text, no clash
    with another file of the batch or, unless ``replace``, with an existing note of the
    same name). A file whose exact content is already a note is reported as a duplicate
    and skipped, not an error. Then each is written to a hidden temp file and renamed
    into place.
    """
    uploads = list(uploads)
    if not uploads:
        raise UploadError("No files were given.")
    root = _corpus_root(settings)
    max_bytes = settings.max_upload_bytes
    errors: list[UploadError] = []
    checked: list[tuple[str, bytes, str]] = []  # (name, data, hash)
    for up in uploads:
        try:
            name = check_note_name(up.name, settings.extensions)
            _validate_content(name, up.data, max_bytes)
            checked.append((name, up.data, file_hash(up.data)))
        except UploadError as exc:
            errors.append(exc)
    if errors:
        raise refused_uploads(errors, nothing_added=len(uploads) > 1)

    existing = _existing_hashes(root, settings, {len(d) for _, d, _ in checked})
    report = AddReport()
    planned: list[tuple[str, bytes, Path, bool]] = []
    seen_names: set[str] = set()
    seen_hashes: dict[str, str] = {}
    for name, data, digest in checked:
        if digest in existing:
            report.duplicates.append((name, existing[digest]))
            continue
        if digest in seen_hashes:
            report.duplicates.append((name, seen_hashes[digest]))
            continue
        key = name.casefold()
        if key in seen_names:
            errors.append(UploadError(f"Two files are named “{name}”."))
            continue
        seen_names.add(key)
        target = root / name
        if not _inside(root, target):
            errors.append(UploadError(f"“{name}” would be written outside the notes folder."))
            continue
        exists = target.exists() or target.is_symlink()
        if exists and (target.is_dir() or target.is_symlink()):
            errors.append(UploadError(f"“{name}” clashes with a folder or link in the notes folder."))
            continue
        if exists and not replace:
            errors.append(UploadError(f"A different note named “{name}” already exists; delete it first or choose "
                                      "to replace it.", key="up_exists", name=name))
            continue
        seen_hashes[digest] = name
        planned.append((name, data, target, exists))
    if errors:
        raise refused_uploads(errors, nothing_added=True)

    temps: list[Path] = []
    try:
        for _, data, target, _ in planned:
            temps.append(_write_temp(target.parent, data))
    except OSError as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise UploadError(f"The notes could not be written ({exc.strerror or exc}). Nothing was added.") from None

    done: list[Path] = []
    try:
        for tmp, (name, data, target, exists) in zip(temps, planned):
            os.replace(tmp, target)
            done.append(target)
            report.added.append(AddedNote(name, len(data), exists))
    except OSError as exc:
        # Undo the new files (a replaced note cannot be restored, but replacing is opt-in).
        for target, (_, _, _, exists) in zip(done, planned):
            if not exists:
                target.unlink(missing_ok=True)
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise UploadError(f"The notes could not be saved ({exc.strerror or exc}). Nothing was added.") from None
    log.info("added notes: %s", [a.source for a in report.added])
    return report


# --- deleting --------------------------------------------------------------------------------
def delete_note(settings: Settings, source: str) -> str:
    """Delete the note ``source`` (corpus-relative); returns it. Raises NoteError."""
    path = note_path(settings, source)
    try:
        path.unlink()
    except OSError as exc:
        raise NoteError(f"“{source}” could not be deleted ({exc.strerror or exc}).") from None
    log.info("deleted note %s", source)
    return path.relative_to(_corpus_root(settings)).as_posix()


# --- showing a passage in its note -------------------------------------------------------------
def read_note_lines(settings: Settings, source: str) -> list[str]:
    """The note's lines as the index numbers them; raises NoteError.

    Text notes: the file's lines as on disk (decoded like indexing does, clutter not
    blanked). Other formats (PDF, HTML): the lines their loader makes of the file.
    """
    return list(_note_lines(settings, source)[0])


def _note_lines(settings: Settings, source: str) -> tuple[list[str], tuple[int, ...] | None]:
    """(lines, page of each line or None) of a note, by its format."""
    path = note_path(settings, source)
    try:
        loader = loader_for(path)
        if loader.name == "text":
            text, _ = decode(path.read_bytes())
            return text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), None
        st = path.stat()
        doc = _load_cached(str(path), st.st_mtime_ns, st.st_size)
        return list(doc.lines), doc.pages
    except OSError as exc:
        raise NoteError(f"“{source}” could not be read ({exc.strerror or exc}).") from None
    except IngestError as exc:
        raise NoteError(f"“{source}” could not be read ({exc}).") from None


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> Document:
    """A parsed PDF or HTML note, kept while the file is unchanged: opening the sources of one
    answer reads the same note several times (PDF reading: about 13 ms a page in bench/loaders.py)."""
    return loader_for(path).load(Path(path), Path(path).name)


_CJK = HAN_CHAR
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+#\-.]*[A-Za-z0-9+#]|[A-Za-z0-9]")
_CJK_RUN = re.compile(f"[{HAN}]+")


def highlight_terms(query: str) -> list[str]:
    """The words of a question worth marking in a passage, longest first.

    English words as typed (no stop words, at least two letters); Chinese segmented the
    way the keyword index segments it, keeping words of two or more characters.
    """
    from rag.index.bm25 import STOPWORDS, tokenize

    terms: set[str] = set()
    for m in _WORD.finditer(query):
        word = m.group(0).strip(".-")
        if len(word) >= 2 and word.lower() not in STOPWORDS:
            terms.add(word)
    for run in _CJK_RUN.findall(query):
        words = [t for t in tokenize(run) if _CJK.match(t)]
        terms.update(w for w in words if len(w) >= 2 and w not in STOPWORDS)
        if len(run) == 1 and run not in STOPWORDS:
            terms.add(run)
    return sorted(terms, key=lambda t: (-len(t), t))


def term_pattern(terms: Sequence[str]) -> re.Pattern | None:
    """A case-insensitive pattern for ``terms``: English words whole (with -s/-es/-ed/-ing),
    so that "lo" does not light up "local" but "rank" finds "ranks"; Chinese anywhere."""
    if not terms:
        return None
    alts = []
    for t in sorted(terms, key=len, reverse=True):
        q = re.escape(t)
        alts.append(rf"(?<![A-Za-z0-9]){q}(?:s|es|ed|ing)?(?![A-Za-z0-9])" if t.isascii() else q)
    return re.compile("|".join(alts), re.IGNORECASE)


@dataclass(frozen=True)
class PassageView:
    source: str
    heading: str
    line_start: int
    line_end: int
    lines: list[tuple[int, str, bool]]  # (line number, text, inside the passage)
    terms: list[str]  # highlight_terms() found in the passage
    stale: bool = False  # the note changed (or went) since it was indexed: the indexed text is shown
    note: str | None = None  # why the view is partial, for the reader
    # Paged notes (PDF): the page the passage starts on. Then ``lines`` are whole pages,
    # numbered within their page, ``line_start``/``line_end`` count within ``page``, and
    # ``heading`` starts with "page N".
    page: int | None = None


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


def passage_view(settings: Settings, source: str, line_start: int, line_end: int, text: str, query: str,
                 heading: str = "", context: int = 3) -> PassageView:
    """A passage with ``context`` lines of its note around it, and the query words it contains.

    When the note on disk no longer has the passage at those lines (edited or deleted
    since the last index build), the indexed text is shown instead, flagged stale.
    """
    terms_all = highlight_terms(query)

    def found(passage: str) -> list[str]:
        return [t for t in terms_all if term_pattern([t]).search(passage)]

    note = None
    pages = None
    try:
        lines, pages = _note_lines(settings, source)
    except NoteError as exc:
        lines, note = None, str(exc)
    if lines is not None:
        window = "\n".join(lines[max(0, line_start - 1): line_end])
        probe = _norm(next((ln for ln in text.splitlines() if ln.strip()), ""))[:40]
        if 1 <= line_start <= line_end <= len(lines) and (not probe or probe in _norm(window)):
            if pages:
                return _page_view(source, heading, line_start, line_end, lines, pages, found(window))
            lo, hi = max(1, line_start - context), min(len(lines), line_end + context)
            shown = [(n, lines[n - 1], line_start <= n <= line_end) for n in range(lo, hi + 1)]
            return PassageView(source, heading, line_start, line_end, _trim(shown), found(window))
        note = "The note has changed since it was indexed; showing the indexed text."
    shown = [(line_start + i, ln, True) for i, ln in enumerate(text.split("\n"))]
    return PassageView(source, heading, line_start, line_end, shown, found(text), stale=True, note=note)


def _trim(shown: list[tuple[int, str, bool]]) -> list[tuple[int, str, bool]]:
    """Without the blank lines at the edges of the context: they show nothing."""
    while shown and not shown[0][2] and not shown[0][1].strip():
        shown.pop(0)
    while shown and not shown[-1][2] and not shown[-1][1].strip():
        shown.pop()
    return shown


def _page_view(source: str, heading: str, line_start: int, line_end: int, lines: list[str],
               pages: tuple[int, ...], terms: list[str]) -> PassageView:
    """A PDF passage shown as the whole text of its page(s), lines numbered within each page."""
    span = page_span(pages, line_start, line_end)
    first, last = page_lines(pages, span.page), page_lines(pages, pages[line_end - 1])
    starts = {p: page_lines(pages, p).start for p in range(span.page, pages[line_end - 1] + 1)}
    shown = [(i - starts[pages[i]] + 1, lines[i], line_start - 1 <= i <= line_end - 1)
             for i in range(first.start, last.stop)]
    where = f"page {span.page}" + (f" > {heading}" if heading else "")
    return PassageView(source, where, span.line_start, span.line_end, _trim(shown), terms, page=span.page)


# --- re-indexing in the background ---------------------------------------------------------------
class BuildCancelled(Exception):
    """Raised from ``build_index``'s progress callback to stop a build: before the new version is
    written (the store writes it beside the old one and swaps), so the previous version serves on."""


@dataclass(frozen=True)
class ReindexStatus:
    running: bool
    stage: str  # "reading notes", "embedding passages", "writing index", or "" when idle
    done: int
    total: int
    reason: str  # why the current (or last) run started
    started_at: float | None
    finished_at: float | None
    last_summary: str | None  # BuildReport.summary() of the last successful run
    last_error: str | None  # why the last run failed, if it did
    runs: int  # completed runs (successful or not): a cheap "something changed" counter
    pending: bool  # another run is queued behind the current one
    notices: tuple[tuple[float, str], ...] = ()  # recent (time, message), newest last
    detail: str = ""  # the stage with its rate and time left (rag/core/progress.py), once known

    @property
    def progress_text(self) -> str:
        if not self.running:
            return ""
        if self.detail:
            return self.detail
        if self.total:
            return f"{self.stage}: {self.done}/{self.total}"
        return self.stage or "starting"


class Reindexer:
    """Runs ``build_index`` in one background thread, so answers keep coming meanwhile.

    Requests made while a build runs are merged into one follow-up run (a watcher may
    fire many times during a copy). Builds are incremental and swap the new version in
    atomically; the retriever picks it up on its next question.
    """

    def __init__(self, settings: Settings, *, embedder=None, embedder_factory: Callable | None = None,
                 on_done: Callable[[object], None] | None = None, max_notices: int = 20) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_factory = embedder_factory
        self._on_done = on_done
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._pending: tuple[str, bool] | None = None
        self._closed = False
        self._running = False
        self._stage, self._done, self._total = "", 0, 0
        self._meter = ProgressMeter()  # rate and time left of the running stage
        self._reason = ""
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._last_summary: str | None = None
        self._last_error: str | None = None
        self._runs = 0
        self._notices: deque[tuple[float, str]] = deque(maxlen=max_notices)
        self._wake = threading.Event()  # set by close() and cancel(): a build waiting for the lock gives up
        self._cancel_reason: str | None = None  # set by cancel(): the running build stops at its next step
        self.retry_first_s = LOCKED_RETRY_FIRST_S
        self.retry_max_s = LOCKED_RETRY_MAX_S

    # --- public ---------------------------------------------------------------------------
    def request(self, reason: str = "requested", *, full: bool = False) -> bool:
        """Ask for a (re)build. Returns True if one starts now, False if queued behind a running one."""
        with self._lock:
            if self._closed:
                return False
            if self._running:
                prev = self._pending
                self._pending = (reason if prev is None else prev[0], full or bool(prev and prev[1]))
                return False
            self._start_locked(reason, full)
            return True

    def cancel(self, reason: str = "cancelled") -> bool:
        """Stop the running build at its next progress step (between notes or batches) and drop queued
        runs; the previous version keeps serving. False when nothing runs."""
        with self._lock:
            if not self._running:
                return False
            self._cancel_reason, self._pending = reason, None
        self._wake.set()
        return True

    def notice(self, message: str) -> None:
        with self._lock:
            self._notices.append((time.time(), message))

    def status(self) -> ReindexStatus:
        with self._lock:
            return ReindexStatus(self._running, self._stage, self._done, self._total, self._reason,
                                 self._started_at, self._finished_at, self._last_summary, self._last_error,
                                 self._runs, self._pending is not None, tuple(self._notices),
                                 self._meter.text(" passages/s" if "passage" in self._stage else "/s")
                                 if self._running and self._meter.stage == self._stage and self._total else "")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build runs or is queued; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._running or self._pending is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def close(self, timeout: float | None = 5.0) -> None:
        with self._lock:
            self._closed = True
            self._pending = None
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- internals ----------------------------------------------------------------------
    def _start_locked(self, reason: str, full: bool) -> None:
        self._running = True
        self._reason = reason
        self._stage, self._done, self._total = "starting", 0, 0
        self._started_at, self._finished_at = time.time(), None
        self._thread = threading.Thread(target=self._run, args=(reason, full), name="rag-reindex", daemon=True)
        self._thread.start()

    def _progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._stage, self._done, self._total = stage, done, total
            self._meter.update(stage, done, total)
            # ("writing index", 1, 1) comes once the new version is current: too late to stop.
            if self._cancel_reason is not None and not (stage == "writing index" and done >= total):
                raise BuildCancelled(self._cancel_reason)

    def _embedder_for_build(self):
        if self._embedder is None:
            if self._embedder_factory is not None:
                self._embedder = self._embedder_factory()
            else:
                from rag.index.embedders.factory import make_embedder

                self._embedder = make_embedder(self.settings)
        return self._embedder

    def _run(self, reason: str, full: bool) -> None:
        """Build until no request is left. A locked index is waited for, never a reason to drop a change."""
        from rag.core.errors import RagError
        from rag.index.builder import IndexLocked, build_index

        delay = self.retry_first_s
        while True:
            report, error, locked, cancelled = None, None, None, None
            try:
                report = build_index(self.settings, self._embedder_for_build(), progress=self._progress, full=full)
            except BuildCancelled as exc:
                cancelled = str(exc)
            except IndexLocked as exc:
                locked = exc
            except RagError as exc:  # the user's to fix (no notes folder, ...): one clear line
                log.warning("re-indexing failed: %s", exc)
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - reported in the UI, the app keeps serving
                log.exception("re-indexing failed")
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:  # cancelled while waiting for another build's lock
                if locked is not None and self._cancel_reason is not None:
                    locked, cancelled = None, self._cancel_reason
            if locked is not None:
                with self._lock:
                    if self._closed:
                        self._finish_locked()
                        return
                    if delay == self.retry_first_s:
                        self._notices.append((time.time(), f"Another build is running; re-indexing ({reason}) "
                                                           "will start when it ends."))
                    self._stage, self._done, self._total = "waiting for another build to finish", 0, 0
                    # Requests made meanwhile are covered: the retried build reads the folder afresh.
                    if self._pending is not None:
                        full = full or self._pending[1]
                        self._pending = None
                log.info("index is locked by another build; retrying in %.1fs", delay)
                if self._wake.wait(delay):
                    continue  # closed: the next turn sees it
                delay = min(delay * 2, self.retry_max_s)
                continue
            delay = self.retry_first_s
            if report is not None and self._on_done is not None:
                try:
                    self._on_done(report)
                except Exception:  # noqa: BLE001
                    log.exception("reindex callback failed")
            with self._lock:
                now = time.time()
                self._runs += 1
                self._finished_at = now
                if cancelled is not None:
                    log.info("re-indexing (%s) cancelled: %s", reason, cancelled)
                    self._notices.append((now, f"Re-indexing cancelled ({reason}): the previous index still answers."))
                elif error is None:
                    self._last_summary, self._last_error = report.summary(), None
                    self._notices.append((now, f"Index updated ({reason}): {report.summary()}"))
                else:
                    self._last_error = error
                    self._notices.append((now, f"Re-indexing failed ({reason}): {error}"))
                self._cancel_reason = None
                if not self._closed:
                    self._wake.clear()
                if self._pending is not None and not self._closed:
                    reason, full = self._pending
                    self._pending = None
                    self._reason = reason
                    self._stage, self._done, self._total = "starting", 0, 0
                    self._started_at, self._finished_at = time.time(), None
                    continue
                self._finish_locked()
                return

    def _finish_locked(self) -> None:
        self._running = False
        self._stage, self._done, self._total = "", 0, 0
        self._idle.notify_all()
