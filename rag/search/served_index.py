"""The index version a retriever answers from: loaded once, followed when a rebuild swaps in a
new one, with what search derives from it (sections, boilerplate, hub scores) computed once per
version. A damaged current version falls back to the newest intact one (``load_serving``) or
keeps what is loaded, with ``status().warning`` saying so; a question never fails while an
index is loaded.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rag.core.errors import IndexUnavailable
from rag.core.settings import Settings
from rag.index.hubness import loaded_hub_scores
from rag.index.store import IndexStore
from rag.index.version_files import IndexNotFound, LoadedIndex
from rag.reading.sections import SectionMap, boilerplate_mask, template_lines
from rag.search.code_passages import code_heavy_mask

log = logging.getLogger(__name__)


class IndexMismatch(IndexUnavailable, RuntimeError):
    """The index was built with another embedder than the configured one."""


@dataclass(frozen=True)
class IndexStatus:
    version: str
    files: int
    chunks: int
    built_at: float
    embedder: str
    dense_kind: str
    skipped: dict[str, str]
    # Set when what serves is not the current version as built (a damaged index fell back).
    warning: str | None = None


@dataclass
class IndexView:
    """What retrieval derives from one loaded index version, computed once per version."""

    index: LoadedIndex
    sections: SectionMap
    boilerplate: np.ndarray  # True: navigation or text repeated across notes
    template_lines: frozenset[str]  # lines many notes repeat word for word (rag/reading/sections.py)
    hubs: np.ndarray  # each passage's mean similarity to its nearest others (rag/index/hubness.py)
    sources: list[str]  # each passage's note, in passage order: what a scope is matched against
    # True: mostly lines of code (rag/search/code_passages.py); 0.1 s per 1,000 passages at load.
    code_heavy: np.ndarray


class ServedIndex:
    """The loaded version and its ``IndexView``; ``identity()`` names the configured embedder,
    which must be the one that built the version (IndexMismatch otherwise)."""

    def __init__(self, settings: Settings, identity: Callable[[], str]) -> None:
        self.settings = settings
        self.store = IndexStore(settings.index_dir, settings)
        self._identity = identity
        self._index: LoadedIndex | None = None
        self._view: IndexView | None = None
        self._seen_current: str | None = None  # the CURRENT name the loaded index answers for
        self._warning: str | None = None
        self._reload_lock = threading.Lock()
        self.refresh()

    def refresh(self) -> LoadedIndex:
        """Load the current version if it is not the one in memory (cheap when nothing changed).

        A damaged version falls back to the newest intact one (IndexStore.load_serving), or
        keeps what is in memory, with ``status().warning`` saying so; it never fails a question
        while an index is loaded.
        """
        version = self.store.current_version()
        index = self._index
        if index is not None and version == self._seen_current:
            return index
        with self._reload_lock:
            if self._index is not None and version == self._seen_current:
                return self._index
            try:
                loaded, self._warning = self.store.load_serving(ef_search=self.settings.hnsw_ef_search)
            except IndexNotFound as exc:
                if self._index is None:
                    raise
                self._warning = f"{exc} (still serving {self._index.manifest.version}, loaded earlier)"
                log.warning("%s", self._warning)
                self._seen_current = version
                return self._index
            if loaded.manifest.embedder != self._identity():
                raise IndexMismatch(
                    f"the index was built with {loaded.manifest.embedder} but the configured embedder is "
                    f"{self._identity()}: run `rag index` to rebuild"
                )
            template = template_lines(loaded.chunks)
            view = IndexView(loaded, SectionMap(loaded.chunks, self.settings.expand_max_chars),
                              boilerplate_mask(loaded.chunks, template), template,
                              loaded_hub_scores(loaded) if self.settings.hub_weight else np.zeros(0),
                              [c.source for c in loaded.chunks], code_heavy_mask(loaded.chunks))
            self._seen_current = version
            # Two reference swaps: a query in flight keeps the objects it started with.
            self._view = view
            self._index = loaded
            log.info("serving index %s (%d chunks)", version, len(loaded.chunks))
            return loaded

    def view(self) -> IndexView:
        """The loaded version with what retrieval derives from it (one consistent object)."""
        self.refresh()
        view = self._view
        assert view is not None
        return view

    def status(self) -> IndexStatus:
        m = self.refresh().manifest
        return IndexStatus(m.version, len(m.files), m.chunk_count, m.built_at, m.embedder, m.dense_kind,
                           dict(m.skipped), self._warning)
