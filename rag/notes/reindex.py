"""Re-indexing in the background: one rebuild at a time, queued changes, progress, cancel.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from rag.core.progress import ProgressMeter
from rag.core.settings import Settings

log = logging.getLogger(__name__)

# When another process (a `rag index` in a terminal) holds the index lock, a background
# rebuild waits and tries again, doubling the wait up to the cap: its change must get in.
# A small corpus builds in seconds, a 2 MB one in minutes (bench/README.md), so the cap
# keeps the delay after a long build short without polling a lock file many times a second.
LOCKED_RETRY_FIRST_S = 0.5
LOCKED_RETRY_MAX_S = 8.0


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
