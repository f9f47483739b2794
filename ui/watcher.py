"""Watch the notes folder and report edits made outside the app, debounced.

An editor saving a file, a `git pull` or a copy of fifty notes fires many file-system
events; they are gathered until the folder has been quiet for ``debounce_s`` and then
reported once, with the notes that changed.

A change is never dropped: when the handler fails (it raised), the same names are
reported again after a back-off (doubling up to ``RETRY_MAX_S``) merged with any newer
ones. The handler used by the app (``Reindexer.request``) itself waits out a build
running in another process (``rag index`` in a terminal) and then indexes the change.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Sequence

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from rag.reading.ingest import shown_name

log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0  # after a failed handler call: first wait, doubled each failure
RETRY_MAX_S = 30.0


class CorpusWatcher(FileSystemEventHandler):
    def __init__(self, corpus_dir: Path, extensions: Sequence[str], on_change: Callable[[list[str]], None],
                 debounce_s: float = 1.5, *, retry_first_s: float = RETRY_FIRST_S,
                 retry_max_s: float = RETRY_MAX_S) -> None:
        super().__init__()
        self.root = Path(corpus_dir).resolve()
        self.extensions = tuple(e.lower() for e in extensions)
        self.on_change = on_change
        self.debounce_s = debounce_s
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._timer: threading.Timer | None = None
        self._observer = None
        self.retry_first_s, self.retry_max_s = retry_first_s, retry_max_s
        self._retry_s = retry_first_s
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> "CorpusWatcher":
        self.root.mkdir(parents=True, exist_ok=True)
        self._stopped = False
        observer = Observer()
        observer.daemon = True
        observer.schedule(self, str(self.root), recursive=True)
        observer.start()
        self._observer = observer
        log.info("watching %s for changes", self.root)
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    # --- events ------------------------------------------------------------------------
    def _relevant(self, path: str) -> str | None:
        """The corpus-relative path of a note (or folder) event, or None to ignore it."""
        try:
            rel = Path(path).resolve().relative_to(self.root) if Path(path).is_absolute() else Path(path)
        except (ValueError, OSError):
            return None
        if not rel.parts or any(part.startswith(".") for part in rel.parts):
            return None  # hidden files: upload temp files, editor swap files, .git
        suffix = rel.suffix.lower()
        if suffix and suffix not in self.extensions:
            return None
        # A name that is not UTF-8 is reported escaped: the index build skips it with a reason.
        return shown_name(rel.as_posix())

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        names = [self._relevant(p if isinstance(p, str) else p.decode()) for p in paths if p]
        names = [n for n in names if n]
        if not names:
            return
        with self._lock:
            self._changed.update(names)
            self._schedule_locked(self.debounce_s)

    def _schedule_locked(self, delay: float) -> None:
        if self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            changed, self._changed = sorted(self._changed), set()
            self._timer = None
        if not changed:
            return
        try:
            self.on_change(changed)
        except Exception:  # noqa: BLE001 - a watcher thread must not die, nor lose the change
            with self._lock:
                delay = self._retry_s
                self._retry_s = min(self._retry_s * 2, self.retry_max_s)
                self._changed.update(changed)
                self._schedule_locked(delay)
            log.exception("corpus change handler failed; trying again in %.0fs", delay)
            return
        with self._lock:
            self._retry_s = self.retry_first_s
