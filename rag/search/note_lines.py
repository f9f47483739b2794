"""A note's lines as the build read them, read again from the notes folder when retrieval needs
them: the exact line span of a window (rag/search/windows.py) and a note's own sections for a
whole-note question (rag/search/note_outline.py).

Invariant: the lines are those of the file as it is now, read by the same loader as the build;
a note gone or unreadable since the build gives None, and callers fall back to the passages.
"""
from __future__ import annotations

from pathlib import Path

from rag.reading.ingest import Document, IngestError
from rag.reading.loaders import load_document

__all__ = ["NoteLines", "NOTES_KEPT"]

# Notes kept while their file is unchanged: a question windows at most a few hits, and reading a
# note again each time it is windowed cost ~4 ms a question on the sample notes.
NOTES_KEPT = 8


class NoteLines:
    """``document(source)``: the note as the build read it (``lines(source)``: its lines), the last
    ``NOTES_KEPT`` read kept by size and mtime."""

    def __init__(self, corpus_dir: Path, max_file_bytes: int) -> None:
        self.corpus_dir = Path(corpus_dir)
        self.max_file_bytes = max_file_bytes
        self._kept: dict[tuple[str, int, int], Document] = {}  # oldest first

    def lines(self, source: str) -> tuple[str, ...] | None:
        doc = self.document(source)
        return doc.lines if doc is not None else None

    def document(self, source: str) -> Document | None:
        path = self.corpus_dir / source
        try:
            stat = path.stat()
            key = (source, stat.st_mtime_ns, stat.st_size)
            if key not in self._kept:
                self._kept[key] = load_document(path, source, self.max_file_bytes)
                while len(self._kept) > NOTES_KEPT:
                    self._kept.pop(next(iter(self._kept)))
            return self._kept[key]
        except (OSError, IngestError):
            return None
