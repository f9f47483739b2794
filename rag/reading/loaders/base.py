"""The loader interface: a note file's bytes -> a ``Document`` of lines.

Every later stage (chunking, the index, citations) works on a Document's lines, so a
new format only has to say how its content becomes lines. Invariants every loader keeps:

- ``Document.lines`` is what is indexed and what the source view shows; line ``i`` of a
  passage (1-based) is ``doc.lines[i - 1]``, whatever the format.
- ``Document.content_hash`` is the sha256 of the file's raw bytes (what incremental
  rebuilds compare), for every format.
- A paged format (PDF) sets ``Document.pages``: the 1-based page of each line, in
  order and never decreasing, one entry per line. Unpaged formats leave it ``None``.
- Failures are ``IngestError`` with a message for the user (a missing optional library
  names the package to install).
"""
from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from rag.reading.ingest import Document, IngestError


class Loader(ABC):
    """Reads one note format. Subclasses set ``name`` and ``suffixes`` and implement ``load_bytes``."""

    name: str = ""
    suffixes: tuple[str, ...] = ()

    @abstractmethod
    def load_bytes(self, data: bytes, source: str) -> Document:
        """The note as a Document; raises IngestError when ``data`` is not this format."""

    def load(self, path: Path, source: str) -> Document:
        return self.load_bytes(Path(path).read_bytes(), source)

    def check(self, data: bytes) -> None:
        """Raise IngestError unless ``data`` is a readable note of this format (upload checks).

        The default reads it completely, so what passes here also indexes.
        """
        doc = self.load_bytes(data, "upload")
        if not any(line.strip() for line in doc.lines):
            raise IngestError("no text could be read from it")


class MissingDependency(IngestError):
    """A format's optional library is not installed; the message says what to install."""

    def __init__(self, what: str, package: str) -> None:
        super().__init__(f"reading {what} needs the Python package {package!r}: pip install {package}")
        self.package = package


@dataclass(frozen=True)
class PageSpan:
    """Where lines of a paged Document are: the page of the first line, and the line
    numbers within that page (1-based, inclusive; ``line_end`` may run onto later pages,
    then it counts on from the first page's first line)."""

    page: int
    line_start: int
    line_end: int


def page_span(pages: tuple[int, ...], line_start: int, line_end: int) -> PageSpan:
    """Page-relative position of document lines ``line_start..line_end`` (1-based)."""
    if not pages or not 1 <= line_start <= len(pages):
        raise ValueError(f"line {line_start} is outside the document's {len(pages)} lines")
    page = pages[line_start - 1]
    first = bisect.bisect_left(pages, page)  # pages never decrease
    return PageSpan(page, line_start - first, line_end - first)


def page_lines(pages: tuple[int, ...], page: int) -> range:
    """0-based Document line indexes of ``page`` (empty when the page has no lines)."""
    return range(bisect.bisect_left(pages, page), bisect.bisect_right(pages, page))
