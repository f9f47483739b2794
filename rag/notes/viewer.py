"""Showing a passage in its note: the note's lines (or page), the passage's span marked and the
question's words highlighted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from rag.reading.ingest import Document, IngestError, decode
from rag.reading.loaders import loader_for, page_lines, page_span
from rag.core.settings import Settings
from rag.core.text import HAN, HAN_CHAR
from rag.notes.folder import NoteError, note_path



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
