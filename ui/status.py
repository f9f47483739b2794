"""What the app is doing, for the status line, the Notes tab and the ``/status`` API: the
index, which model answers and whether it is up, and the re-indexing job with its notices.

The LLM's health is checked in a background thread at most every ``HEALTH_EVERY_S``: a
status request never waits on a slow server.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from rag.notes import Reindexer, ReindexStatus
from rag.core.settings import Settings
from rag.index.store import IndexStore

from . import render
from .engine import EngineProvider
from .i18n import lang_of, t
from .notes_panel import NotesPanel

__all__ = ["StatusService", "StatusView"]

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 30.0
HEALTH_TIMEOUT_S = 2.0
NOTICE_S = 60.0  # how long a re-indexing notice stays in the status line


@dataclass
class StatusView:
    """The components the poll refreshes."""

    status: gr.HTML
    reindex: gr.HTML
    notes_list: gr.HTML
    note_pick: gr.Dropdown
    sig: gr.State
    cancel: gr.Button


class StatusService:
    def __init__(self, settings: Settings, engines: EngineProvider, reindexer: Reindexer, notes: NotesPanel) -> None:
        self.settings = settings
        self.engines = engines
        self.reindexer = reindexer
        self.notes = notes
        self.view: StatusView | None = None
        self._health: tuple[float, Any] = (0.0, None)
        self._health_busy = False

    def bind(self, view: StatusView) -> None:
        self.view = view

    # --- facts ------------------------------------------------------------------------------
    def index_status(self, lang: str = "en"):
        """(IndexStatus, None), or (None, why there is none)."""
        engine, error = self.engines.get(lang)
        if engine is not None:
            try:
                return engine.retriever.status(), None
            except Exception as exc:  # noqa: BLE001 - shown in the status line
                return None, str(exc)
        return None, error

    def answering(self):
        """(model or None, why this backend, its last health check or None) of what answers now."""
        engine = self.engines.ready
        if engine is not None:
            llm, reason = engine.llm, engine.backend_reason
        else:
            choice = self.engines.backend()
            llm, reason = choice.model, choice.reason
        return llm, reason, (self.health(llm) if llm is not None else None)

    def health(self, llm):
        """The model's last health check; re-checked in the background (never blocks)."""
        stamp, health = self._health
        if time.time() - stamp > HEALTH_EVERY_S and not self._health_busy:
            self._health_busy = True

            def check() -> None:
                try:
                    result = llm.health(timeout_s=HEALTH_TIMEOUT_S)
                except Exception as exc:  # noqa: BLE001 - shown in the status line
                    from rag.answer.llm import Health

                    result = Health(False, f"{type(exc).__name__}: {exc}")
                self._health = (time.time(), result)
                self._health_busy = False

            threading.Thread(target=check, name="rag-llm-health", daemon=True).start()
        return health

    @staticmethod
    def fresh_notice(job: ReindexStatus) -> str | None:
        """The latest re-indexing notice while it is news (a minute), for the status line."""
        if job.notices and time.time() - job.notices[-1][0] < NOTICE_S:
            return job.notices[-1][1]
        return None

    # --- views ------------------------------------------------------------------------------
    def status_html(self, lang: str = "en") -> str:
        index, error = self.index_status(lang)
        llm, reason, health = self.answering()
        job = self.reindexer.status()
        # A damaged index that fell back to an older version says so until it is rebuilt.
        notice = self.fresh_notice(job) or (getattr(index, "warning", None) if index is not None else None)
        line = render.status_html(index=index, index_error=error, model=llm.name if llm else None, reason=reason,
                                  llm_down=None if health is None or health.ok else health.detail,
                                  reindex=job, notice=notice, lang=lang)
        return f'<div class="topbar"><div class="brand">{render.e(t(lang, "title"))}</div>{line}</div>'

    def status_dict(self) -> dict:
        index, error = self.index_status()
        llm, reason, health = self.answering()
        job = self.reindexer.status()
        return {
            "index": None if index is None else {
                "version": index.version, "files": index.files, "chunks": index.chunks,
                "built_at": index.built_at, "embedder": index.embedder, "skipped": index.skipped,
                "warning": getattr(index, "warning", None),
            },
            "index_error": error,
            "llm_backend": llm.backend if llm is not None else "none",
            "llm_model": llm.name if llm is not None else None,
            "llm_reason": reason,
            "llm_ok": None if health is None else health.ok,
            "llm_detail": None if health is None else health.detail,
            "extractive": llm is None,
            "reindexing": job.running,
            "reindex_progress": job.progress_text,
            "last_reindex": job.last_summary,
            "last_reindex_error": job.last_error,
        }

    def signature(self, lang: str, query: str = "") -> str:
        """Changes whenever anything the poll shows would change."""
        job = self.reindexer.status()
        health = self._health[1]
        return repr((lang, query, IndexStore(self.settings.index_dir).current_version(), job.running, job.progress_text,
                     job.runs, len(job.notices),
                     tuple((n.source, n.size, n.modified, n.indexed) for n in self.notes.notes()),
                     self.engines.ready is None, None if health is None else (health.ok, health.detail),
                     self.fresh_notice(job) is not None))

    def poll(self, last_sig: str, query: str = "", request: gr.Request | None = None):
        """Timer tick: new status, progress, Cancel button and notes list (filtered by the search
        box's ``query``), or nothing when nothing changed."""
        v, lang = self.view, lang_of(request)
        sig = self.signature(lang, query)
        if sig == last_sig:
            return gr.skip()
        job = self.reindexer.status()
        return {v.status: self.status_html(lang), v.reindex: render.reindex_html(job, lang=lang),
                v.cancel: gr.Button(visible=job.running),
                v.notes_list: self.notes.notes_html(lang, query),
                v.note_pick: gr.Dropdown(choices=self.notes.choices()),
                v.sig: sig}
