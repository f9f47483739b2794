"""The one chat engine the app's sessions share, created once an index exists.

``ChatEngine.from_settings`` builds it (retriever + LLM backend); this module only keeps
it, remembers why there is none yet, and reuses one query embedder across attempts so a
failed first try (no index yet) does not load the model twice.
"""
from __future__ import annotations

import logging
import threading

from rag.answer.chat import ChatEngine
from rag.core.settings import Settings

from .i18n import t

__all__ = ["EngineProvider"]

log = logging.getLogger(__name__)


class EngineProvider:
    """``get()`` -> (engine, None) once the notes can be searched, else (None, why not).

    Thread-safe: sessions ask concurrently; the engine is built at most once."""

    def __init__(self, settings: Settings, engine: ChatEngine | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._lock = threading.Lock()
        self._query_embedder = None
        self._choice = None

    @property
    def ready(self) -> ChatEngine | None:
        """The engine if it exists already; never builds one."""
        return self._engine

    def backend(self):
        """The LLM backend choice (for the status line before any index exists)."""
        if self._choice is None:
            from rag.answer.llm import select_backend

            self._choice = select_backend(self.settings)
            log.info("LLM backend: %s (%s)", self._choice.backend, self._choice.reason)
        return self._choice

    def get(self, lang: str = "en") -> tuple[ChatEngine | None, str | None]:
        if self._engine is not None:
            return self._engine, None
        with self._lock:
            if self._engine is not None:
                return self._engine, None
            from rag.index.embedders.factory import make_embedder
            from rag.core.errors import RagError
            from rag.search.retrieval import IndexMismatch, IndexNotFound, Retriever

            try:
                if self._query_embedder is None:
                    self._query_embedder = make_embedder(self.settings)
                retriever = Retriever.from_settings(self.settings, self._query_embedder)  # loads the index
            except IndexNotFound:
                return None, t(lang, "no_index")
            except IndexMismatch as exc:
                return None, t(lang, "must_rebuild", detail=exc)
            except RagError as exc:  # a damaged index, a bad setting: its one line reaches the page
                return None, str(exc)
            self._engine = ChatEngine.from_settings(self.settings, retriever=retriever)
            return self._engine, None

    def warm_up(self) -> None:
        """Load the embedder and the word segmenter now, not on the first question."""
        engine, _ = self.get()
        if engine is not None:
            try:
                engine.retriever.retrieve("warm up 预热", [], k=1)
            except Exception:  # noqa: BLE001 - only a warm-up
                log.debug("warm-up failed", exc_info=True)
