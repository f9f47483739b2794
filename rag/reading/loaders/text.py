"""Markdown and plain-text notes: the file's own lines.

Decoding (UTF-8, GB18030, detected legacy encodings) and page-clutter cleaning live in
``rag.reading.ingest`` and are called from here. Cleaning blanks lines instead of removing them,
so line ``n`` of the Document is line ``n`` of the file on disk.
"""
from __future__ import annotations

from rag.reading import ingest
from rag.reading.ingest import Document, IngestError
from rag.core.text import looks_like_text
from rag.reading.loaders.base import Loader


class TextLoader(Loader):
    name = "text"
    suffixes = (".md", ".markdown", ".txt")

    def load_bytes(self, data: bytes, source: str) -> Document:
        decoded = ingest.decode_note(data)
        lines = decoded.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        cleaned = ingest.clean_lines(lines)
        lost = sum(1 for before, after in zip(lines, cleaned) if before.strip() and not after.strip())
        return Document(source, tuple(cleaned), ingest.file_hash(data), decoded.encoding, clutter_lines=lost,
                        warnings=decoded.warnings)

    def check(self, data: bytes) -> None:
        text, _ = ingest.decode(data)
        if not looks_like_text(text):
            raise IngestError("it looks like binary data")
