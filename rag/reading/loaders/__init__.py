"""Note formats: one loader per format, chosen by the file's suffix.

    loader_for("notes/paper.pdf").load(path, source) -> Document

Built in: Markdown and plain text (``text.TextLoader``), PDF (``pdf.PdfLoader``, needs
pypdfium2) and HTML (``html.HtmlLoader``, needs lxml). To add a format, write a
``Loader`` subclass in a new module here and ``register`` it; then add its suffix to
``Settings.extensions`` so that indexing and uploads pick such files up. A format whose
library is missing fails when a file of it is read, with ``MissingDependency`` naming
the package to install; the other formats keep working.
"""
from __future__ import annotations

from pathlib import Path, PurePath
from typing import Callable

from rag.reading.ingest import Document, IngestError
from rag.reading.loaders.base import Loader, MissingDependency, PageSpan, page_lines, page_span

__all__ = ["Loader", "MissingDependency", "PageSpan", "load_document", "loader_for", "page_lines", "page_span",
           "register", "registered_suffixes", "unregister"]

_FACTORIES: dict[str, Callable[[], Loader]] = {}
_INSTANCES: dict[str, Loader] = {}


def register(suffixes: tuple[str, ...], factory: Callable[[], Loader]) -> None:
    """Read files with these suffixes (".pdf", case-insensitive) with ``factory()``'s loader."""
    for suffix in suffixes:
        _FACTORIES[suffix.lower()] = factory
        _INSTANCES.pop(suffix.lower(), None)


def unregister(suffixes: tuple[str, ...]) -> None:
    """Forget the loaders of these suffixes (files of them are then refused)."""
    for suffix in suffixes:
        _FACTORIES.pop(suffix.lower(), None)
        _INSTANCES.pop(suffix.lower(), None)


def registered_suffixes() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def loader_for(path: str | PurePath) -> Loader:
    """The loader for a file name or path, by its suffix; IngestError for an unknown one."""
    suffix = PurePath(str(path)).suffix.lower()
    if suffix not in _FACTORIES:
        raise IngestError(f"no loader for {suffix or 'files without a suffix'} files "
                          f"(known: {', '.join(sorted(_FACTORIES))})")
    if suffix not in _INSTANCES:
        _INSTANCES[suffix] = _FACTORIES[suffix]()
    return _INSTANCES[suffix]


def _text() -> Loader:
    from rag.reading.loaders.text import TextLoader

    return TextLoader()


def _pdf() -> Loader:
    from rag.reading.loaders.pdf import PdfLoader

    return PdfLoader()


def _html() -> Loader:
    from rag.reading.loaders.html import HtmlLoader

    return HtmlLoader()


register((".md", ".markdown", ".txt"), _text)
register((".pdf",), _pdf)
register((".html", ".htm"), _html)


def load_document(path: Path, source: str, max_bytes: int) -> Document:
    """The note at ``path`` as lines, read by the loader its suffix names (rag/reading/loaders)."""
    loader = loader_for(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise IngestError(f"file is {size} bytes, over the {max_bytes}-byte limit")
    return loader.load(path, source)
