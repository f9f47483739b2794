"""`rag serve`: a chat over your notes in the browser, with cited sources.

This module is the page's layout and its wiring; the work is elsewhere:

- ``ui.engine``: the shared ``ChatEngine`` (built by ``ChatEngine.from_settings`` once an index exists);
- ``ui.chat_session``: one browser session's chat (ask, stream, stop, retry, new chat; the ``/ask`` API);
- ``ui.notes_panel``: the Notes tab (upload, delete, list, rebuild) and edits seen by the watcher;
- ``ui.scope_picker``: the scope above the chat (folders and notes, tags, dates) every question is asked in;
- ``ui.status``: the status line, re-indexing progress and the ``/status`` API;
- ``ui.render``: every piece of HTML and Markdown, escaped; ``ui.i18n``: the words, English or Chinese;
- ``ui.security``: the login back-off and the heartbeat gate.

Handlers return ``{component: update}`` dicts; a component a handler leaves out keeps its value.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import logging  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from rag.answer.chat import ChatEngine  # noqa: E402
from rag.notes import Reindexer, human_size  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

from . import render  # noqa: E402
from .assets import CSS, HEAD  # noqa: E402
from .bind import ServeError, check_bind, check_listen  # noqa: E402
from .chat_session import ChatController, ChatView  # noqa: E402
from .engine import EngineProvider  # noqa: E402
from .i18n import make_i18n, t  # noqa: E402
from .notes_panel import NotesPanel, NotesView, notes_upload  # noqa: E402
from .scope_picker import ScopePicker, ScopeView  # noqa: E402
from .security import AuthGuard  # noqa: E402
from .status import StatusService, StatusView  # noqa: E402
from .watcher import CorpusWatcher  # noqa: E402

__all__ = ["NotesChatApp", "ServeError", "check_bind", "serve", "start"]

log = logging.getLogger(__name__)

POLL_S = 2.0  # the page asks for status, progress and the notes list this often
UPLOAD_CACHE_S = 3600  # an upload no handler took is deleted after an hour (checked as often)

# The browser knows each uploaded file's own name; Gradio's server keeps only its base name,
# so the names are sent along (and checked by rag.notes).
UPLOAD_NAMES_JS = ("(files, names, replace, query) => [files, JSON.stringify((Array.isArray(files) ? files : "
                   "(files ? [files] : [])).map(f => (f && (f.orig_name || f.name)) || '')), replace, query]")
CONFIRM_DELETE_JS = ("(note, query) => [(note && window.confirm((navigator.language || '').toLowerCase().startsWith('zh') "
                     "? '从笔记文件夹中删除“' + note + '”？' : 'Delete the note “' + note + '” from your notes folder?')) "
                     "? note : null, query]")


class NotesChatApp:
    """What all browser sessions share: the engine, the notes, the rebuild job, the watcher."""

    def __init__(self, settings: Settings, *, engine: ChatEngine | None = None, watch: bool | None = None,
                 index_embedder=None) -> None:
        self.settings = settings
        Path(settings.corpus_dir).mkdir(parents=True, exist_ok=True)
        self.engines = EngineProvider(settings, engine)
        # Rebuilds get their own embedder instance: a query never waits behind a batch of passages.
        self.reindexer = Reindexer(settings, embedder=index_embedder, on_done=self._on_reindexed)
        self.notes = NotesPanel(settings, self.reindexer)
        self.scope = ScopePicker(self.notes)
        self.status = StatusService(settings, self.engines, self.reindexer, self.notes)
        self.chat = ChatController(settings, self.engines)
        self.i18n = make_i18n(types=" / ".join(settings.extensions), size=human_size(settings.max_upload_bytes))
        self.watcher: CorpusWatcher | None = None
        if watch if watch is not None else settings.watch_corpus:
            self.watcher = CorpusWatcher(settings.corpus_dir, settings.extensions, self.notes.on_corpus_change,
                                         settings.watch_debounce_s)

    def warm_up(self) -> None:
        self.engines.warm_up()

    def start_background(self) -> None:
        if self.watcher is not None:
            self.watcher.start()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.reindexer.close()

    def _on_reindexed(self, report) -> None:
        self.notes.invalidate()
        if self.engines.ready is None:
            self.engines.get()

    def ask(self, question: str, history: list[dict] | None = None, scope: dict | None = None) -> dict:
        return self.chat.ask(question, history, scope)

    def status_dict(self) -> dict:
        return self.status.status_dict()

    def build(self) -> gr.Blocks:
        return build_page(self)


# --- the page ---------------------------------------------------------------------------------
@dataclass
class _Page:
    chat: ChatView
    scope: ScopeView
    notes: NotesView
    status: StatusView
    send: gr.Button
    stop: gr.Button
    new_chat: gr.Button
    retry: gr.Button
    rebuild: gr.Button
    delete: gr.Button
    cancel: gr.Button


def _layout(app: NotesChatApp, i18n: gr.I18n) -> _Page:
    s = app.settings
    history = gr.State([])  # this browser session's own conversation
    pending = gr.State("")
    turn_no = gr.State(0)
    turn_sources = gr.State([])
    sig = gr.State("")
    status = gr.HTML(app.status.status_html(), elem_id="topbar", js_on_load=None)
    with gr.Row(equal_height=False, elem_id="main"):
        with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
            scope = app.scope.layout(i18n)
            chatbot = gr.Chatbot(
                elem_id="chat", show_label=False, height=560, min_height=320, sanitize_html=True,
                allow_tags=False, render_markdown=True, line_breaks=True, feedback_options=None,
                buttons=["copy"], layout="bubble", placeholder=i18n("chat_placeholder"),
            )
            with gr.Row(elem_id="ask-row", equal_height=True):
                question = gr.Textbox(
                    show_label=False, placeholder=i18n("question_placeholder"), lines=1, max_lines=6, scale=6,
                    min_width=150, elem_id="question", autofocus=True, submit_btn=False, container=False,
                )
                send = gr.Button(i18n("send"), variant="primary", scale=0, min_width=64, size="md", elem_id="send")
                stop = gr.Button(i18n("stop"), variant="secondary", scale=0, min_width=56, size="md", elem_id="stop")
            ask_msg = gr.HTML("", elem_id="ask-msg", js_on_load=None)
            with gr.Row(elem_id="chat-actions"):
                new_chat = gr.Button(i18n("new_chat"), size="sm", scale=0, min_width=90, elem_id="new-chat")
                retry = gr.Button(i18n("retry"), size="sm", scale=0, min_width=70, elem_id="retry")
        with gr.Column(scale=2, min_width=300, elem_id="side-col"):
            with gr.Tabs(elem_id="side"):
                with gr.Tab(i18n("tab_sources"), id="sources", elem_id="tab-sources"):
                    sources = gr.HTML(render.sources_placeholder(), elem_id="sources", js_on_load=None)
                with gr.Tab(i18n("tab_notes"), id="notes", elem_id="tab-notes"):
                    upload = notes_upload(label=i18n("upload_label"), file_count="multiple",
                                          file_types=list(s.extensions), height=150, elem_id="upload")
                    upload_names = gr.Textbox(visible=False, elem_id="upload-names")
                    replace = gr.Checkbox(label=i18n("replace"), value=False, elem_id="replace")
                    notes_msg = gr.HTML("", elem_id="notes-msg", js_on_load=None)
                    with gr.Row(equal_height=False, elem_id="delete-row"):
                        note_pick = gr.Dropdown(choices=app.notes.choices(), value=None, label=i18n("note"), scale=3,
                                                min_width=160, elem_id="note-pick")
                        delete = gr.Button(i18n("delete"), variant="stop", size="sm", scale=1, min_width=100,
                                           elem_id="delete")
                    rebuild = gr.Button(i18n("rebuild"), variant="primary", elem_id="rebuild")
                    with gr.Row(equal_height=False, elem_id="reindex-row"):
                        reindex_box = gr.HTML(render.reindex_html(app.reindexer.status()), elem_id="reindex",
                                              js_on_load=None, scale=4)
                        cancel = gr.Button(i18n("cancel_reindex"), variant="stop", size="sm", scale=1, min_width=90,
                                           visible=app.reindexer.status().running, elem_id="cancel-reindex")
                    search = gr.Textbox(show_label=False, placeholder=i18n("notes_search"), lines=1, max_lines=1,
                                        container=False, elem_id="notes-search")
                    notes_list = gr.HTML(app.notes.notes_html(), elem_id="notes-list", js_on_load=None)
    return _Page(
        chat=ChatView(question, chatbot, ask_msg, sources, history, pending, turn_no, turn_sources),
        scope=scope,
        notes=NotesView(upload, upload_names, replace, notes_msg, note_pick, reindex_box, notes_list, search, cancel),
        status=StatusView(status, reindex_box, notes_list, note_pick, sig, cancel),
        send=send, stop=stop, new_chat=new_chat, retry=retry, rebuild=rebuild, delete=delete, cancel=cancel,
    )


def build_page(app: NotesChatApp) -> gr.Blocks:
    s = app.settings
    # Files sent to Gradio's upload route and never used by a handler (a raw API upload) are
    # deleted by Gradio after UPLOAD_CACHE_S; the Notes tab removes the ones it handled at once.
    with gr.Blocks(title=t("en", "title"), analytics_enabled=False, fill_width=True,
                   delete_cache=(UPLOAD_CACHE_S, UPLOAD_CACHE_S)) as demo:
        page = _layout(app, app.i18n)
        c, n, st, sc = page.chat, page.notes, page.status, page.scope
        app.chat.bind(c)
        app.scope.bind(sc)
        app.notes.bind(n)
        app.status.bind(st)
        quiet = dict(show_progress="hidden", api_visibility="private")

        # Asking: show the question at once (no queue), then stream the answer (queued:
        # settings.concurrency_limit answers run at a time across all users).
        # Every question is asked in the scope the picker holds when it is sent.
        answer_in = [c.pending, c.chatbot, c.history, c.turn_no, c.turn_sources, *sc.fields]
        answer_out = [c.chatbot, c.history, c.sources, c.pending, c.turn_sources]
        answer_kw = dict(concurrency_id="answer", concurrency_limit=s.concurrency_limit, **quiet)
        start_out = [c.question, c.chatbot, c.pending, c.turn_no, c.ask_msg]
        for trigger in (c.question.submit, page.send.click):
            trigger(app.chat.start_turn, [c.question, c.chatbot, c.turn_no, *sc.fields], start_out, queue=False,
                    **quiet).then(
                app.chat.respond, answer_in, answer_out, **answer_kw)
        page.retry.click(app.chat.retry_turn, [c.chatbot, c.history, c.turn_no, c.turn_sources],
                         [c.chatbot, c.history, c.pending, c.turn_no, c.turn_sources, c.ask_msg],
                         queue=False, **quiet).then(app.chat.respond, answer_in, answer_out, **answer_kw)
        page.stop.click(app.chat.stop, None, None, queue=False, **quiet)
        clear_out = [c.chatbot, c.history, c.sources, c.pending, c.question, c.turn_sources, c.ask_msg]
        page.new_chat.click(app.chat.new_chat, None, clear_out, queue=False, **quiet)
        # The chat's own trash button empties the display: forget the conversation too.
        c.chatbot.clear(app.chat.new_chat, None, clear_out, queue=False, **quiet)

        # The scope picker: the line under it names the active scope; its choices follow the notes.
        for field in (sc.within, sc.tags):
            field.change(app.scope.describe, sc.fields, [sc.active], queue=False, **quiet)
        for field in (sc.since, sc.until):
            for trigger in (field.blur, field.submit):
                trigger(app.scope.describe, sc.fields, [sc.active], queue=False, **quiet)
        sc.clear.click(app.scope.clear, None, [*sc.fields, sc.active], queue=False, **quiet)
        st.sig.change(app.scope.refresh, None, [sc.within, sc.tags], queue=False, **quiet)

        # Notes. A new upload first clears the previous outcome, then is checked and added.
        n.upload.upload(app.notes.clear_message, None, [n.message], queue=False, **quiet).then(
            app.notes.upload, [n.upload, n.upload_names, n.replace, n.search],
            [n.upload, n.message, n.reindex, n.cancel, n.notes_list],
            js=UPLOAD_NAMES_JS, show_progress="minimal", show_progress_on=[n.upload], api_visibility="private")
        page.delete.click(app.notes.delete, [n.note_pick, n.search],
                          [n.message, n.reindex, n.cancel, n.notes_list, n.note_pick],
                          js=CONFIRM_DELETE_JS, api_visibility="private")
        page.rebuild.click(app.notes.rebuild, None, [n.message, n.reindex, n.cancel], api_visibility="private")
        page.cancel.click(app.notes.cancel, None, [n.message, n.reindex, n.cancel], api_visibility="private")
        n.search.input(app.notes.search, [n.search], [n.notes_list], trigger_mode="always_last", **quiet)

        poll_out = [st.status, st.reindex, st.notes_list, st.note_pick, st.sig, st.cancel]
        poll_kw = dict(show_progress="hidden", concurrency_limit=None, concurrency_id="poll", api_visibility="private")
        gr.Timer(POLL_S).tick(app.status.poll, [st.sig, n.search], poll_out, **poll_kw)
        demo.load(app.status.poll, [st.sig, n.search], poll_out, **poll_kw)
        demo.load(app.chat.on_load, None, [c.sources], queue=False, **quiet)
        demo.unload(app.chat.forget_session)

        # The API: `Client(url).predict("question", api_name="/ask")` -> answer and sources.
        def ask(question: str, history: list[dict] | None = None, scope: dict | None = None) -> dict:
            """Answer a question from the notes. history: earlier turns as [{role, content}];
            scope: only some notes, {"in": [folder or note, ...], "tags": [...], "since":
            "YYYY-MM-DD", "until": "YYYY-MM-DD"} (any of them).

            Returns {text, mode, backend, notice, cited, sources: [{n, label, source, heading,
            line_start, line_end, text, score}], ...}."""
            return app.chat.ask(question, history, scope)

        def index_status() -> dict:
            """The index (files, passages, when built, embedder) and the active LLM backend."""
            return app.status.status_dict()

        gr.api(ask, api_name="ask", concurrency_id="answer", concurrency_limit=s.concurrency_limit)
        gr.api(index_status, api_name="status", concurrency_limit=None, concurrency_id="poll")
    demo.queue(default_concurrency_limit=4)
    return demo


# --- launching -------------------------------------------------------------------------------
def _launch_kwargs(settings: Settings) -> dict:
    auth = (settings.username, settings.password) if settings.username and settings.password else None
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=auth,
        auth_message="Log in to your notes." if auth else None,
        # The limit the upload label states and rag.notes checks: Gradio's browser client refuses a
        # larger file before sending it ("File(s) exceed the maximum allowed size of 5.0 Mb"), the
        # same number as the label's "up to 5.0 MB" (both count 1024-byte KB and MB).
        max_file_size=settings.max_upload_bytes,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        show_error=False,
        css=CSS,
        head=HEAD,
        theme=gr.themes.Default(primary_hue="indigo", neutral_hue="slate"),
        footer_links=["api"],
        # FastAPI's own schema lists every route of the server: not needed, and open without login.
        app_kwargs={"openapi_url": None, "middleware": [Middleware(AuthGuard)]},
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
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=quiet, inbrowser=False, i18n=app.i18n,
                            **_launch_kwargs(settings))
    return app, demo, (url or f"http://{settings.host}:{settings.port}/").rstrip("/") + "/"


def serve(settings: Settings, *, watch: bool | None = None, log_fn=print) -> int:
    """Run the server until Ctrl-C. Returns an exit status (2: refused to start)."""
    import sys

    try:
        check_listen(settings)  # the login rule and the port, before anything says "Notes chat on"
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = NotesChatApp(settings, watch=watch)
    choice = app.engines.backend()
    print(f"{choice.status_line} ({choice.reason})", file=sys.stderr)
    app.warm_up()
    engine, error = app.engines.get()
    if error:
        print(f"note: {error}", file=sys.stderr)
    elif engine is not None and (warning := engine.retriever.status().warning):
        print(f"note: {warning}", file=sys.stderr)
    demo = app.build()
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    try:
        # Bound first, announced after: check_listen's probe leaves a moment in which another
        # program can take the port, and "Notes chat on" must never precede that error.
        demo.launch(prevent_thread_lock=True, quiet=True, inbrowser=False, i18n=app.i18n, **_launch_kwargs(settings))
    except OSError as exc:  # port in use, cannot bind
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        app.close()
        return 2
    try:
        app.start_background()
        print(f"Notes chat on http://{host}:{settings.port}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
        app.close()
    return 0
