"""`rag serve`: a chat over your notes in the browser, with cited sources.

A thin Gradio shell: answers come from ``rag.chat.ChatEngine``, note files are managed by
``rag.notes``, rebuilds run in ``rag.notes.Reindexer``'s background thread and edits made
outside the app are noticed by ``ui.watcher.CorpusWatcher``. This module only wires them
to components, keeps per-browser-session state, and renders through ``ui.render``.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import json  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from rag.chat import ChatEngine, DoneEvent, QuestionError, SourcesEvent, TokenEvent  # noqa: E402
from rag.conversation import Message, is_followup  # noqa: E402
from rag.notes import (  # noqa: E402
    NoteError,
    Reindexer,
    UploadError,
    add_notes,
    human_size,
    delete_note,
    list_notes,
    passage_view,
    read_upload,
)
from rag.settings import Settings  # noqa: E402
from rag.store import IndexNotFound, IndexStore  # noqa: E402

from . import render  # noqa: E402
from .assets import CSS, HEAD  # noqa: E402
from .bind import ServeError, check_bind  # noqa: E402
from .watcher import CorpusWatcher  # noqa: E402

__all__ = ["NotesChatApp", "ServeError", "check_bind", "serve", "start"]

log = logging.getLogger(__name__)

TITLE = "Notes chat"
POLL_S = 2.0
NOTICE_S = 60.0  # how long a re-indexing notice stays in the status line


# --- per-session conversation --------------------------------------------------------------
@dataclass
class _Turn:
    question: str
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    discarded: bool = False  # the chat it belongs to was cleared: its output goes nowhere


def _text_of(message: dict) -> str:
    """The text of a chatbot message as Gradio hands it to a function (content may be a list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    return "".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


def _bubble(role: str, markdown: str) -> dict:
    # A typed text part: Gradio passes it through as is (a bare string would be dedented).
    return {"role": role, "content": [{"type": "text", "text": markdown}]}


THINKING = "*Searching your notes…*"


class NotesChatApp:
    """The state shared by all browser sessions: engine, index jobs, watcher, notes cache."""

    def __init__(self, settings: Settings, *, engine: ChatEngine | None = None, watch: bool | None = None,
                 index_embedder=None) -> None:
        self.settings = settings
        Path(settings.corpus_dir).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._engine = engine
        self._engine_error: str | None = None
        self._query_embedder = None
        self._choice = None
        self._turns: dict[str, _Turn] = {}
        self._own_changes: dict[str, float] = {}
        self._notes_cache: tuple[float, list] = (0.0, [])
        self._manifest_cache: tuple[str | None, Any] = (None, None)
        self._llm_status: tuple[float, Any] = (0.0, None)
        self._health_busy = False
        # Rebuilds get their own embedder instance: a query never waits behind a batch of passages.
        self.reindexer = Reindexer(settings, embedder=index_embedder, on_done=self._on_reindexed)
        self.watcher: CorpusWatcher | None = None
        if watch if watch is not None else settings.watch_corpus:
            self.watcher = CorpusWatcher(settings.corpus_dir, settings.extensions, self._on_corpus_change,
                                         settings.watch_debounce_s)

    # --- engine ----------------------------------------------------------------------------
    def _backend(self):
        if self._choice is None:
            from rag.llm import select_backend

            self._choice = select_backend(self.settings)
            log.info("LLM backend: %s (%s)", self._choice.backend, self._choice.reason)
        return self._choice

    def engine(self) -> tuple[ChatEngine | None, str | None]:
        """The chat engine, created once an index exists; else (None, why not)."""
        if self._engine is not None:
            return self._engine, None
        with self._lock:
            if self._engine is not None:
                return self._engine, None
            from rag.embeddings import make_embedder
            from rag.retrieval import IndexMismatch, IndexNotFound, Retriever

            try:
                if self._query_embedder is None:
                    self._query_embedder = make_embedder(self.settings)
                retriever = Retriever.from_settings(self.settings, self._query_embedder)
            except IndexNotFound:
                self._engine_error = ("There is no index of your notes yet: add notes in the Notes tab "
                                      "and press “Rebuild index”.")
                return None, self._engine_error
            except IndexMismatch as exc:
                self._engine_error = f"The index must be rebuilt: {exc}"
                return None, self._engine_error
            choice = self._backend()
            self._engine = ChatEngine(self.settings, retriever, choice.model, backend_reason=choice.reason)
            self._engine_error = None
            return self._engine, None

    def warm_up(self) -> None:
        """Load the embedder and the word segmenter now, not on the first question."""
        engine, _ = self.engine()
        if engine is not None:
            try:
                engine.retriever.retrieve("warm up 预热", [], k=1)
            except Exception:  # noqa: BLE001 - only a warm-up
                log.debug("warm-up failed", exc_info=True)

    # --- background work ---------------------------------------------------------------------
    def start_background(self) -> None:
        if self.watcher is not None:
            self.watcher.start()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.reindexer.close()

    def _on_reindexed(self, report) -> None:
        self._notes_cache = (0.0, [])
        if self._engine is None:
            self.engine()

    def _mark_own(self, names) -> None:
        now = time.time()
        with self._lock:
            for name in names:
                self._own_changes[name] = now

    def _on_corpus_change(self, changed: list[str]) -> None:
        now = time.time()
        with self._lock:
            own = {n for n, t in self._own_changes.items() if now - t < 30}
            self._own_changes = {n: t for n, t in self._own_changes.items() if now - t < 30}
        outside = [c for c in changed if c not in own]
        self._notes_cache = (0.0, [])
        if not outside:
            return  # the app's own upload or delete: it already asked for a rebuild
        shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        self.reindexer.notice(f"Notes changed outside the app ({shown}): re-indexing.")
        self.reindexer.request(f"notes changed on disk: {shown}")

    # --- status ---------------------------------------------------------------------------
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

    def notes(self) -> list:
        stamp, notes = self._notes_cache
        if time.time() - stamp > POLL_S * 0.9 or not stamp:
            manifest = self._manifest()
            notes = list_notes(self.settings, manifest.files if manifest else None,
                               manifest.built_at if manifest else None)
            self._notes_cache = (time.time(), notes)
        return notes

    def _index_status(self):
        engine, error = self.engine()
        if engine is not None:
            try:
                return engine.retriever.status(), None
            except Exception as exc:  # noqa: BLE001 - shown in the status line
                return None, str(exc)
        return None, error

    def _answering(self):
        """(model or None, why this backend, last health check or None) of what answers now."""
        engine = self._engine
        if engine is not None:
            llm, reason = engine.llm, engine.backend_reason
        else:
            choice = self._backend()
            llm, reason = choice.model, choice.reason
        return llm, reason, (self._health(llm) if llm is not None else None)

    def _health(self, llm):
        """The model's last health check; re-checked in the background every 30 s (never blocks)."""
        stamp, health = self._llm_status
        if time.time() - stamp > 30 and not self._health_busy:
            self._health_busy = True

            def check() -> None:
                try:
                    result = llm.health(timeout_s=2.0)
                except Exception as exc:  # noqa: BLE001 - shown in the status line
                    from rag.llm import Health

                    result = Health(False, f"{type(exc).__name__}: {exc}")
                self._llm_status = (time.time(), result)
                self._health_busy = False

            threading.Thread(target=check, name="rag-llm-health", daemon=True).start()
        return health

    def status_html(self) -> str:
        index, error = self._index_status()
        llm, reason, health = self._answering()
        job = self.reindexer.status()
        line = render.status_html(index=index, index_error=error, model=llm.name if llm else None, reason=reason,
                                  llm_down=None if health is None or health.ok else health.detail,
                                  reindex=job, notice=self._fresh_notice(job))
        return f'<div class="topbar"><div class="brand">{TITLE}</div>{line}</div>'

    @staticmethod
    def _fresh_notice(job) -> str | None:
        """The latest re-indexing notice while it is news (a minute), for the status line."""
        if job.notices and time.time() - job.notices[-1][0] < NOTICE_S:
            return job.notices[-1][1]
        return None

    def status_dict(self) -> dict:
        index, error = self._index_status()
        llm, reason, health = self._answering()
        job = self.reindexer.status()
        return {
            "index": None if index is None else {
                "version": index.version, "files": index.files, "chunks": index.chunks,
                "built_at": index.built_at, "embedder": index.embedder, "skipped": index.skipped,
                "warning": index.warning,
            },
            "index_error": error,
            "llm_backend": llm.backend if llm is not None else "none",
            "llm_model": llm.name if llm is not None else None,
            "llm_reason": reason,
            "llm_ok": None if health is None else health.ok,
            "llm_detail": None if health is None else health.detail,
            "retrieval_only": llm is None,
            "reindexing": job.running,
            "reindex_progress": job.progress_text,
            "last_reindex": job.last_summary,
            "last_reindex_error": job.last_error,
        }

    def _signature(self) -> tuple:
        job = self.reindexer.status()
        notes = self.notes()
        health = self._llm_status[1]
        return (IndexStore(self.settings.index_dir).current_version(), job.running, job.progress_text, job.runs,
                len(job.notices), tuple((n.source, n.size, n.modified, n.indexed) for n in notes),
                self._engine is None, None if health is None else (health.ok, health.detail),
                self._fresh_notice(job) is not None)

    def poll(self, last_sig):
        """Timer tick: new status, progress and notes list, or nothing when nothing changed."""
        sig = repr(self._signature())
        if sig == last_sig:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        notes = self.notes()
        choices = [n.source for n in notes]
        return (self.status_html(), render.reindex_html(self.reindexer.status()), render.notes_html(notes),
                gr.Dropdown(choices=choices), sig)

    # --- chat ---------------------------------------------------------------------------------
    def _busy(self, sid: str) -> bool:
        """An answer is under way for this session (call with the lock held).

        A turn older than any answer can take is forgotten, so that a lost event
        (a dropped connection before the answer started) cannot lock a session out."""
        turn = self._turns.get(sid)
        if turn is None:
            return False
        if time.monotonic() - turn.started > max(300.0, 4 * self.settings.llm_timeout_s):
            turn.cancel.set()
            del self._turns[sid]
            return False
        return True

    def start_turn(self, question: str, chat: list, turn_no: int, request: gr.Request):
        sid = getattr(request, "session_hash", None) or "anonymous"
        text = (question or "").strip()
        if not text:
            return gr.skip(), gr.skip(), "", gr.skip()
        limit = self.settings.max_question_chars
        if len(text) > limit:
            gr.Warning(f"The question is too long ({len(text)} characters; the limit is {limit}). Please shorten it.")
            return gr.skip(), gr.skip(), "", gr.skip()
        with self._lock:
            if self._busy(sid):
                gr.Warning("An answer is still being written: wait for it, or press Stop.")
                return gr.skip(), gr.skip(), "", gr.skip()
            self._turns[sid] = _Turn(text)
        chat = list(chat or []) + [_bubble("user", render.user_markdown(text)), _bubble("assistant", THINKING)]
        return "", chat, text, turn_no + 1

    def retry_turn(self, chat: list, history: list, turn_no: int, request: gr.Request):
        sid = getattr(request, "session_hash", None) or "anonymous"
        history = list(history or [])
        if len(history) < 2 or history[-2].get("role") != "user":
            gr.Info("Nothing to retry yet.")
            return gr.skip(), gr.skip(), "", gr.skip()
        with self._lock:
            if self._busy(sid):
                gr.Warning("An answer is still being written: wait for it, or press Stop.")
                return gr.skip(), gr.skip(), "", gr.skip()
            question = history[-2]["content"]
            self._turns[sid] = _Turn(question)
        chat = list(chat or [])
        if len(chat) >= 2:
            chat = chat[:-2]
        chat += [_bubble("user", render.user_markdown(question)), _bubble("assistant", THINKING)]
        return chat, history[:-2], question, turn_no + 1

    def stop(self, request: gr.Request) -> None:
        sid = getattr(request, "session_hash", None) or "anonymous"
        with self._lock:
            turn = self._turns.get(sid)
        if turn is not None:
            turn.cancel.set()

    def _drop_turn(self, sid: str | None) -> None:
        with self._lock:
            turn = self._turns.pop(sid, None) if sid else None
        if turn is not None:
            turn.discarded = True
            turn.cancel.set()

    def new_chat(self, request: gr.Request):
        self._drop_turn(getattr(request, "session_hash", None) or "anonymous")
        return [], [], render.sources_placeholder(), "", ""

    def forget_session(self, request: gr.Request) -> None:
        self._drop_turn(getattr(request, "session_hash", None))

    def _highlight_query(self, question: str, history: list[Message], standalone: str | None) -> str:
        if standalone:
            return standalone
        if history and is_followup(question):
            last_user = next((m.content for m in reversed(history) if m.role == "user"), "")
            return f"{question}\n{last_user}"
        return question

    def _sources(self, sources, query: str, *, turn: int, cited=(), relevant=True, search_query="",
                 final: bool = False) -> str:
        entries = []
        for src in sources:
            hit = src.hit
            view = passage_view(self.settings, hit.source, hit.line_start, hit.line_end, hit.text, query,
                                heading=hit.heading, context=self.settings.source_context_lines)
            entries.append((src.n, view))
        return render.sources_html(entries, turn=turn, cited=cited, relevant=relevant, search_query=search_query,
                                   final=final)

    def respond(self, pending: str, chat: list, history: list, turn_no: int, request: gr.Request):
        """Stream one answer into the last chat bubble; the sources panel follows it."""
        if not pending:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        sid = getattr(request, "session_hash", None) or "anonymous"
        with self._lock:
            turn = self._turns.get(sid)
            if turn is None or turn.question != pending:
                turn = self._turns[sid] = _Turn(pending)
        try:
            for outputs in self._answer(turn, pending, chat, history, turn_no):
                if turn.discarded:  # "New chat" was pressed meanwhile: leave the new chat alone
                    # Gradio re-sends a stream's last value when it ends: make that a no-op.
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                    return
                yield outputs
        except GeneratorExit:
            turn.cancel.set()  # the browser went away: stop the model too
            raise
        finally:
            with self._lock:
                if self._turns.get(sid) is turn:
                    del self._turns[sid]

    def _answer(self, turn: _Turn, pending: str, chat: list, history: list, turn_no: int):
        chat = list(chat or [])
        if not chat or chat[-1].get("role") != "assistant":
            chat.append(_bubble("assistant", THINKING))
        history = list(history or [])
        past = [Message(m["role"], m["content"]) for m in history if m.get("role") in ("user", "assistant")]
        sources_html = render.sources_placeholder("Searching your notes…")
        try:
            if turn.cancel.is_set():
                chat[-1] = _bubble("assistant", "*(stopped)*")
                yield chat, history, gr.skip(), ""
                return
            engine, error = self.engine()
            if engine is None:
                chat[-1] = _bubble("assistant", render.escape_markdown(error or "The notes cannot be searched."))
                yield chat, history, render.sources_placeholder(error or ""), ""
                return
            answer, text, sources, query, relevant, search_query = None, "", [], pending, True, ""
            last, sources_sent = 0.0, False
            for event in engine.stream(pending, past, turn.cancel):
                if isinstance(event, SourcesEvent):
                    sources, relevant, search_query = event.sources, event.relevant, event.search_query
                    query = self._highlight_query(pending, past, event.standalone_question)
                    sources_html = self._sources(sources, query, turn=turn_no, relevant=relevant,
                                                 search_query=search_query)
                    if engine.llm is not None:  # a model will take a while: show the sources meanwhile
                        yield chat, gr.skip(), sources_html, gr.skip()
                        sources_sent = True
                elif isinstance(event, TokenEvent):
                    text += event.text
                    now = time.monotonic()
                    if now - last >= 0.05:
                        chat[-1] = _bubble("assistant", render.answer_markdown(text, turn=turn_no, sources=sources))
                        last = now
                        yield chat, gr.skip(), gr.skip() if sources_sent else sources_html, gr.skip()
                        sources_sent = True
                elif isinstance(event, DoneEvent):
                    answer = event.answer
            if answer is None:  # the engine always ends with DoneEvent; be safe anyway
                raise RuntimeError("the answer ended without a result")
            chat[-1] = _bubble("assistant", render.answer_markdown(
                answer.text, turn=turn_no, sources=answer.sources, cited=answer.cited, mode=answer.mode,
                notice=answer.notice, cancelled=answer.cancelled, final=True))
            if answer.sources:
                sources_html = self._sources(answer.sources, query, turn=turn_no, cited=answer.cited,
                                             relevant=answer.mode != "not-in-notes", search_query=search_query,
                                             final=True)
            history += [{"role": "user", "content": pending}, {"role": "assistant", "content": answer.text}]
            yield chat, history, sources_html, ""
        except QuestionError as exc:
            chat[-1] = _bubble("assistant", render.escape_markdown(str(exc)))
            yield chat, history, gr.skip(), ""
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - the user sees a message, the log the traceback
            log.exception("answering failed")
            chat[-1] = _bubble("assistant", render.escape_markdown(f"Something went wrong: {type(exc).__name__}: {exc}"))
            yield chat, history, gr.skip(), ""

    def ask(self, question: str, history: list[dict] | None = None) -> dict:
        """For the API: one complete answer with its sources, as JSON."""
        engine, error = self.engine()
        if engine is None:
            raise gr.Error(error or "The notes cannot be searched.", print_exception=False)
        try:
            past = [Message.from_dict(m) for m in (history or [])]
            answer = engine.ask(question, past)
        except (QuestionError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return answer.to_dict()

    # --- notes -----------------------------------------------------------------------------
    def upload(self, files, names_json: str, replace: bool):
        """Add uploaded files to the notes folder (all or nothing), then re-index."""
        paths = [str(f) for f in (files or [])]
        if not paths:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            names = json.loads(names_json) if names_json else []
        except ValueError:
            names = []
        uploads = []
        errors = []
        for i, path in enumerate(paths):
            name = names[i] if i < len(names) and isinstance(names[i], str) and names[i] else Path(path).name
            try:
                uploads.append(read_upload(path, name, self.settings.max_upload_bytes))
            except UploadError as exc:
                errors.append(str(exc))
        try:
            if errors:
                raise UploadError(" ".join(errors) + (" Nothing was added." if len(paths) > 1 else ""))
            report = add_notes(self.settings, uploads, replace=bool(replace))
        except UploadError as exc:
            gr.Warning(str(exc), title="Upload refused")
            return None, render_message(str(exc), error=True), gr.skip(), gr.skip()
        if report.added:
            self._mark_own(a.source for a in report.added)
            self.reindexer.request(f"added {', '.join(a.source for a in report.added)}")
        self._notes_cache = (0.0, [])
        message = report.summary() + (" Re-indexing in the background…" if report.added else "")
        return None, render_message(message), render.reindex_html(self.reindexer.status()), \
            render.notes_html(self.notes())

    def delete(self, source: str | None):
        if not source:  # nothing chosen, or the confirmation was declined
            return render_message("No note was deleted (choose one, then confirm).", error=True), \
                gr.skip(), gr.skip(), gr.skip()
        try:
            deleted = delete_note(self.settings, source)
        except NoteError as exc:
            return render_message(str(exc), error=True), gr.skip(), gr.skip(), gr.skip()
        self._mark_own([deleted])
        self.reindexer.request(f"deleted {deleted}")
        self._notes_cache = (0.0, [])
        notes = self.notes()
        return (render_message(f"Deleted “{deleted}”. Re-indexing in the background…"),
                render.reindex_html(self.reindexer.status()), render.notes_html(notes),
                gr.Dropdown(choices=[n.source for n in notes], value=None))

    def rebuild(self):
        started = self.reindexer.request("“Rebuild index” pressed")
        msg = "Rebuilding the index in the background…" if started else "A rebuild is running; another will follow it."
        return render_message(msg), render.reindex_html(self.reindexer.status())

    # --- the page -------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        s = self.settings
        notes = self.notes()
        with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
            history = gr.State([])  # [{role, content}] as the engine sees it: this browser session's own
            pending = gr.State("")
            turn_no = gr.State(0)
            sig = gr.State("")
            status = gr.HTML(self.status_html(), elem_id="topbar", js_on_load=None)
            with gr.Row(equal_height=False, elem_id="main"):
                with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
                    chatbot = gr.Chatbot(
                        elem_id="chat", show_label=False, height=560, min_height=320, sanitize_html=True,
                        allow_tags=False, render_markdown=True, line_breaks=True, feedback_options=None,
                        buttons=["copy"], layout="bubble",
                        placeholder="**Ask anything your notes cover** — in English or 中文.<br>"
                                    "Answers cite passages like [1]; click one to see it in the note.",
                    )
                    with gr.Row(elem_id="ask-row", equal_height=True):
                        question = gr.Textbox(
                            show_label=False, placeholder="Ask about your notes…  例如：LoRA 的原理是什么？",
                            lines=1, max_lines=6, scale=6, min_width=150, elem_id="question", autofocus=True,
                            submit_btn=False, container=False,
                        )
                        send = gr.Button("Send", variant="primary", scale=0, min_width=64, size="md", elem_id="send")
                        stop = gr.Button("Stop", variant="secondary", scale=0, min_width=56, size="md", elem_id="stop")
                    with gr.Row(elem_id="chat-actions"):
                        new_chat = gr.Button("New chat", size="sm", scale=0, min_width=90, elem_id="new-chat")
                        retry = gr.Button("Retry", size="sm", scale=0, min_width=70, elem_id="retry")
                with gr.Column(scale=2, min_width=300, elem_id="side-col"):
                    with gr.Tabs(elem_id="side"):
                        with gr.Tab("Sources", id="sources", elem_id="tab-sources"):
                            sources = gr.HTML(render.sources_placeholder(), elem_id="sources", js_on_load=None)
                        with gr.Tab("Notes", id="notes", elem_id="tab-notes"):
                            upload = gr.File(
                                label=f"Add notes: drop .md / .txt files (up to "
                                      f"{human_size(s.max_upload_bytes)} each)",
                                file_count="multiple", file_types=list(s.extensions), type="filepath",
                                height=150, elem_id="upload",
                            )
                            upload_names = gr.Textbox(visible=False, elem_id="upload-names")
                            replace = gr.Checkbox(label="Replace notes that have the same name", value=False,
                                                  elem_id="replace")
                            notes_msg = gr.HTML("", elem_id="notes-msg", js_on_load=None)
                            with gr.Row(equal_height=False, elem_id="delete-row"):
                                note_pick = gr.Dropdown(choices=[n.source for n in notes], value=None,
                                                        label="Note", scale=3, min_width=160, elem_id="note-pick")
                                delete = gr.Button("Delete note", variant="stop", size="sm", scale=1,
                                                   min_width=100, elem_id="delete")
                            rebuild = gr.Button("Rebuild index", variant="primary", elem_id="rebuild")
                            reindex_box = gr.HTML(render.reindex_html(self.reindexer.status()),
                                                  elem_id="reindex", js_on_load=None)
                            notes_list = gr.HTML(render.notes_html(notes), elem_id="notes-list", js_on_load=None)
            timer = gr.Timer(POLL_S)

            # Asking: show the question at once (no queue), then stream the answer (queued:
            # settings.concurrency_limit answers run at a time across all users).
            answer_kw = dict(concurrency_id="answer", concurrency_limit=s.concurrency_limit,
                             show_progress="hidden", api_visibility="private")
            for trigger in (question.submit, send.click):
                trigger(self.start_turn, [question, chatbot, turn_no], [question, chatbot, pending, turn_no],
                        queue=False, show_progress="hidden", api_visibility="private").then(
                    self.respond, [pending, chatbot, history, turn_no], [chatbot, history, sources, pending],
                    **answer_kw)
            retry.click(self.retry_turn, [chatbot, history, turn_no], [chatbot, history, pending, turn_no],
                        queue=False, show_progress="hidden", api_visibility="private").then(
                self.respond, [pending, chatbot, history, turn_no], [chatbot, history, sources, pending],
                **answer_kw)
            stop.click(self.stop, None, None, queue=False, show_progress="hidden", api_visibility="private")
            new_chat.click(self.new_chat, None, [chatbot, history, sources, pending, question], queue=False,
                           show_progress="hidden", api_visibility="private")
            # The chat's own trash button empties the display: forget the conversation too.
            chatbot.clear(self.new_chat, None, [chatbot, history, sources, pending, question], queue=False,
                          show_progress="hidden", api_visibility="private")

            # Notes. The browser knows each file's own name; Gradio's server keeps only its base
            # name, so the name is sent along and checked by rag.notes.
            upload.upload(
                self.upload, [upload, upload_names, replace], [upload, notes_msg, reindex_box, notes_list],
                js="(files, names, replace) => [files, JSON.stringify((Array.isArray(files) ? files : "
                   "(files ? [files] : [])).map(f => (f && (f.orig_name || f.name)) || '')), replace]",
                show_progress="minimal", show_progress_on=[upload], api_visibility="private",
            )
            delete.click(
                self.delete, [note_pick], [notes_msg, reindex_box, notes_list, note_pick],
                js="(note) => (note && window.confirm('Delete the note “' + note + '” from your notes folder?')) "
                   "? note : null",
                api_visibility="private",
            )
            rebuild.click(self.rebuild, None, [notes_msg, reindex_box], api_visibility="private")

            outputs = [status, reindex_box, notes_list, note_pick, sig]
            timer.tick(self.poll, [sig], outputs, show_progress="hidden", concurrency_limit=None,
                       concurrency_id="poll", api_visibility="private")
            demo.load(self.poll, [sig], outputs, show_progress="hidden", concurrency_limit=None,
                      concurrency_id="poll", api_visibility="private")
            demo.unload(self.forget_session)

            # The API: `Client(url).predict("question", api_name="/ask")` -> answer and sources.
            def ask(question: str, history: list[dict] | None = None) -> dict:
                """Answer a question from the notes. history: earlier turns as [{role, content}].

                Returns {text, mode, backend, notice, cited, sources: [{n, label, source, heading,
                line_start, line_end, text, score}], ...}."""
                return self.ask(question, history)

            def index_status() -> dict:
                """The index (files, passages, when built, embedder) and the active LLM backend."""
                return self.status_dict()

            gr.api(ask, api_name="ask", concurrency_id="answer", concurrency_limit=s.concurrency_limit)
            gr.api(index_status, api_name="status", concurrency_limit=None, concurrency_id="poll")
        demo.queue(default_concurrency_limit=4)
        return demo


def render_message(text: str, *, error: bool = False) -> str:
    import html

    cls = "msg err" if error else "msg ok"
    return f'<div class="{cls}" role="status">{html.escape(text)}</div>'


# --- launching -------------------------------------------------------------------------------
def _launch_kwargs(settings: Settings) -> dict:
    auth = (settings.username, settings.password) if settings.username and settings.password else None
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=auth,
        auth_message="Log in to your notes." if auth else None,
        max_file_size=max(2 * settings.max_upload_bytes, settings.max_upload_bytes + 1024 * 1024),
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        show_error=False,
        css=CSS,
        head=HEAD,
        theme=gr.themes.Default(primary_hue="indigo", neutral_hue="slate"),
        footer_links=["api"],
    )


def start(settings: Settings, *, watch: bool | None = None, quiet: bool = True, engine: ChatEngine | None = None,
          index_embedder=None):
    """Start the server without blocking (tests, benchmarks); returns (app, demo, url).

    Stop it with ``demo.close(); app.close()``."""
    check_bind(settings)
    app = NotesChatApp(settings, engine=engine, watch=watch, index_embedder=index_embedder)
    app.warm_up()
    demo = app.build()
    app.start_background()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=quiet, inbrowser=False, **_launch_kwargs(settings))
    return app, demo, (url or f"http://{settings.host}:{settings.port}/").rstrip("/") + "/"


def serve(settings: Settings, *, watch: bool | None = None, log_fn=print) -> int:
    """Run the server until Ctrl-C. Returns an exit status (2: refused to start)."""
    import sys

    try:
        check_bind(settings)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = NotesChatApp(settings, watch=watch)
    choice = app._backend()
    print(f"answers: {choice.model.name if choice.model else 'retrieval-only'} ({choice.reason})", file=sys.stderr)
    app.warm_up()
    engine, error = app.engine()
    if error:
        print(f"note: {error}", file=sys.stderr)
    elif engine is not None and (warning := engine.retriever.status().warning):
        print(f"note: {warning}", file=sys.stderr)
    demo = app.build()
    app.start_background()
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    print(f"Notes chat on http://{host}:{settings.port}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        demo.launch(quiet=True, inbrowser=False, **_launch_kwargs(settings))
    except OSError as exc:  # port in use, cannot bind
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0
