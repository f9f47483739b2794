"""The Notes tab: add (upload), delete and list notes, ask for a rebuild.

The rules (safe names, content checks, all-or-nothing writes) are ``rag.notes``'s; this
module turns its outcomes into component updates, and keeps Gradio's temporary folder
clean: an uploaded file is removed from it once it was copied into the notes folder or
refused, so that no refused upload lingers on the server's disk.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import NamedString
from gradio_client import utils as client_utils

from rag.index.file_status import FileState, file_states
from rag.notes import (NoteError, NoteInfo, Reindexer, UploadError, add_notes, delete_note, list_notes, read_upload,
                       refused_uploads)
from rag.core.settings import Settings
from rag.index.store import IndexStore
from rag.index.version_files import IndexNotFound

from . import render
from .i18n import error_text, lang_of, t

__all__ = ["NotesPanel", "NotesView", "discard_uploads", "notes_upload"]

log = logging.getLogger(__name__)

NOTES_CACHE_S = 1.8  # the notes list is re-read at most this often (the page polls every 2 s)
OWN_CHANGE_S = 30.0  # a file the app itself wrote or deleted this recently is not an "outside" edit


def notes_upload(**kwargs) -> gr.File:
    """A ``gr.File(type="filepath")`` that hands over the uploaded files' paths and creates nothing.

    Gradio 6.31's ``File`` opens a ``NamedTemporaryFile(delete=False)`` in its cache for every
    file it hands to a handler, and never uses or removes it: 28 uploads left 28 empty ``tmp*``
    files in /tmp/gradio. This instance checks the type the same way and skips that file. (Not
    a subclass: Gradio writes a ``.pyi`` stub beside the module of every Component subclass.)"""
    upload = gr.File(type="filepath", **kwargs)

    def process_single_file(f: FileData) -> NamedString:
        if upload.file_types and not client_utils.is_valid_file(f.path, upload.file_types):
            raise gr.Error(f"Invalid file type. Please upload a file that is one of these formats: {upload.file_types}")
        return NamedString(f.path)

    upload._process_single_file = process_single_file
    return upload


@dataclass
class NotesView:
    """The components of the Notes tab that handlers update."""

    upload: gr.File
    upload_names: gr.Textbox
    replace: gr.Checkbox
    message: gr.HTML
    note_pick: gr.Dropdown
    reindex: gr.HTML
    notes_list: gr.HTML
    search: gr.Textbox
    cancel: gr.Button


def _upload_root() -> Path | None:
    try:
        from gradio.utils import get_upload_folder

        return Path(get_upload_folder()).resolve()
    except Exception:  # noqa: BLE001 - without it nothing is removed
        return None


def discard_uploads(paths: Iterable[str | Path]) -> list[Path]:
    """Remove uploaded temp files (and their per-upload folder once empty) from Gradio's upload
    folder; paths outside it are never touched. Returns what was removed."""
    root = _upload_root()
    removed: list[Path] = []
    if root is None:
        return removed
    for raw in paths:
        path = Path(raw).resolve()
        try:
            path.relative_to(root)
        except ValueError:
            continue
        if path == root or not path.is_file():
            continue
        try:
            path.unlink()
            removed.append(path)
            if path.parent != root and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError as exc:  # another upload of the same content may share the folder
            log.debug("could not remove upload %s: %s", path, exc)
    return removed


class NotesPanel:
    def __init__(self, settings: Settings, reindexer: Reindexer) -> None:
        self.settings = settings
        self.reindexer = reindexer
        self.view: NotesView | None = None
        self._lock = threading.Lock()
        self._own_changes: dict[str, float] = {}
        self._cache: tuple[float, list[NoteInfo]] = (0.0, [])
        self._manifest_cache: tuple[str | None, object] = (None, None)
        self._states_cache: tuple[object, list[FileState]] = (None, [])

    def bind(self, view: NotesView) -> None:
        self.view = view

    # --- the list ------------------------------------------------------------------------
    def invalidate(self) -> None:
        self._cache = (0.0, [])
        self._states_cache = (None, [])

    def _manifest(self):
        store = IndexStore(self.settings.index_dir)
        version = store.current_version()
        cached_version, manifest = self._manifest_cache
        if version != cached_version:
            try:
                manifest = store.read_manifest(version) if version else None
            except IndexNotFound as exc:  # a damaged version: the retriever serves an intact one
                log.warning("%s", exc)
                manifest = None
            self._manifest_cache = (version, manifest)
        return manifest

    def notes(self) -> list[NoteInfo]:
        stamp, notes = self._cache
        if not stamp or time.time() - stamp > NOTES_CACHE_S:
            manifest = self._manifest()
            notes = list_notes(self.settings, manifest.files if manifest else None,
                               manifest.built_at if manifest else None)
            self._cache = (time.time(), notes)
        return notes

    def states(self) -> list[FileState]:
        """Every note's state (``rag.index.file_status``), recomputed only when a note's size or time, or
        the index version, changed: ``file_states`` hashes every note, and the page polls every 2 s."""
        key = (IndexStore(self.settings.index_dir).current_version(),
               tuple((n.source, n.size, n.modified) for n in self.notes()))
        cached_key, states = self._states_cache
        if key != cached_key:
            states = file_states(self.settings)
            self._states_cache = (key, states)
        return states

    def notes_html(self, lang: str = "en", query: str = "") -> str:
        return render.notes_html(self.states(), {n.source: n.size for n in self.notes()}, query=query or "",
                                 lang=lang, extensions=self.settings.extensions)

    def choices(self) -> list[str]:
        return [n.source for n in self.notes()]

    # --- changes on disk -----------------------------------------------------------------
    def _mark_own(self, names: Iterable[str]) -> None:
        now = time.time()
        with self._lock:
            for name in names:
                self._own_changes[name] = now

    def on_corpus_change(self, changed: list[str]) -> None:
        """The watcher's callback: edits made outside the app get a notice and a rebuild."""
        now = time.time()
        with self._lock:
            self._own_changes = {n: t_ for n, t_ in self._own_changes.items() if now - t_ < OWN_CHANGE_S}
            own = set(self._own_changes)
        outside = [c for c in changed if c not in own]
        self.invalidate()
        if not outside:
            return  # the app's own upload or delete: it already asked for a rebuild
        shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        self.reindexer.notice(f"Notes changed outside the app ({shown}): re-indexing.")
        self.reindexer.request(f"notes changed on disk: {shown}")

    # --- handlers (each returns {component: update}) -------------------------------------
    def clear_message(self) -> dict:
        """A new upload starts: the previous file's outcome must not stand beside it."""
        return {self.view.message: ""}

    def search(self, query: str, request: gr.Request | None = None) -> dict:
        """The search box: the tree of notes whose path contains ``query``."""
        return {self.view.notes_list: self.notes_html(lang_of(request), query)}

    def upload(self, files, names_json: str, replace: bool, query: str = "", request: gr.Request | None = None) -> dict:
        """Add uploaded files to the notes folder (all or nothing), then re-index."""
        v, lang = self.view, lang_of(request)
        paths = [str(f) for f in (files or [])]
        if not paths:
            return gr.skip()
        try:
            names = json.loads(names_json) if names_json else []
        except ValueError:
            names = []
        try:
            uploads, errors = [], []
            for i, path in enumerate(paths):
                name = names[i] if i < len(names) and isinstance(names[i], str) and names[i] else Path(path).name
                try:
                    uploads.append(read_upload(path, name, self.settings.max_upload_bytes))
                except UploadError as exc:
                    errors.append(exc)
            if errors:
                raise refused_uploads(errors, nothing_added=len(paths) > 1)
            report = add_notes(self.settings, uploads, replace=bool(replace))
        except UploadError as exc:
            text = error_text(lang, exc)
            gr.Warning(text, title=t(lang, "upload_refused"))
            return {v.upload: None, v.message: render.message_html(text, error=True)}
        finally:
            discard_uploads(paths)  # copied into the notes folder, or refused: not needed any more
        if report.added:
            self._mark_own(a.source for a in report.added)
            self.reindexer.request(f"added {', '.join(a.source for a in report.added)}")
        self.invalidate()
        message = report.summary() + (" " + t(lang, "reindexing_bg") if report.added else "")
        return {v.upload: None, v.message: render.message_html(message), **self._progress(lang),
                v.notes_list: self.notes_html(lang, query)}

    def delete(self, source: str | None, query: str = "", request: gr.Request | None = None) -> dict:
        v, lang = self.view, lang_of(request)
        if not source:  # nothing chosen, or the confirmation was declined
            return {v.message: render.message_html(t(lang, "no_delete"), error=True)}
        try:
            deleted = delete_note(self.settings, source)
        except NoteError as exc:
            return {v.message: render.message_html(error_text(lang, exc), error=True)}
        self._mark_own([deleted])
        self.reindexer.request(f"deleted {deleted}")
        self.invalidate()
        return {v.message: render.message_html(t(lang, "deleted", name=deleted)), **self._progress(lang),
                v.notes_list: self.notes_html(lang, query),
                v.note_pick: gr.Dropdown(choices=self.choices(), value=None)}

    def rebuild(self, request: gr.Request | None = None) -> dict:
        v, lang = self.view, lang_of(request)
        started = self.reindexer.request("“Rebuild index” pressed")
        return {v.message: render.message_html(t(lang, "rebuilding" if started else "rebuild_queued")),
                **self._progress(lang)}

    def cancel(self, request: gr.Request | None = None) -> dict:
        """The Cancel button: stop the running rebuild; the previous index keeps answering."""
        v, lang = self.view, lang_of(request)
        cancelled = self.reindexer.cancel("“Cancel re-indexing” pressed")
        return {v.message: render.message_html(t(lang, "cancelling" if cancelled else "nothing_to_cancel")),
                **self._progress(lang)}

    def _progress(self, lang: str) -> dict:
        """The re-indexing line and its Cancel button, shown only while a rebuild runs."""
        job = self.reindexer.status()
        return {self.view.reindex: render.reindex_html(job, lang=lang),
                self.view.cancel: gr.Button(visible=job.running)}
