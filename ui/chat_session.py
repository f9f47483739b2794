"""The chat of one browser session: asking, streaming the answer, stop, retry, new chat.

Per-session state lives in the page (Gradio ``State``: the conversation as the engine sees
it, the turn counter, each finished turn's sources) plus one server-side record per
session, the answer being written (``_Turn``), so that Stop and New chat can reach it.
Every rule about questions and answers is the library's (``ChatEngine``); this module
decides only what each component shows.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from rag.batch import parse_request, request_scope
from rag.answer.chat import DoneEvent, QuestionError, SourcesEvent, TokenEvent
from rag.core.errors import InputError
from rag.search.conversation import Message, followup_context, is_followup
from rag.notes import PassageView, passage_view
from rag.reading.scope import Scope, ScopeEmpty, ScopeError
from rag.core.settings import Settings

from . import render
from .engine import EngineProvider
from .i18n import error_text, lang_of, t
from .scope_picker import picker_scope

__all__ = ["ChatController", "ChatView", "session_id"]

log = logging.getLogger(__name__)

STREAM_EVERY_S = 0.05  # at most 20 updates a second reach the browser while an answer streams
SOURCE_TURNS_KEPT = 20  # earlier turns whose sources stay reachable in the panel
TURN_TIMEOUT_MIN_S = 300.0  # a turn older than this (or 4x the LLM timeout) is taken as lost


def session_id(request: gr.Request | None) -> str:
    """The browser session a request comes from (one per open page)."""
    return getattr(request, "session_hash", None) or "anonymous"


@dataclass
class _Turn:
    question: str
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    discarded: bool = False  # the chat it belongs to was cleared: its output goes nowhere


@dataclass
class ChatView:
    """The components (and per-session states) the chat handlers read and update."""

    question: gr.Textbox
    chatbot: gr.Chatbot
    ask_msg: gr.HTML
    sources: gr.HTML
    history: gr.State  # [{role, content}] as the engine sees it
    pending: gr.State  # the question whose answer is about to stream ("" for none)
    turn_no: gr.State  # numbers each answer's citation ids: src-<turn>-<n>
    turn_sources: gr.State  # [[turn, question, sources_html]] of finished turns, oldest first


def _bubble(role: str, markdown: str) -> dict:
    # A typed text part: Gradio passes it through as is (a bare string would be dedented).
    return {"role": role, "content": [{"type": "text", "text": markdown}]}


def view_passage(settings: Settings, hit, query: str) -> PassageView:
    """How one passage is shown in the sources panel: the one place a per-format view
    (a PDF's page, say) plugs in."""
    return passage_view(settings, hit.source, hit.line_start, hit.line_end, hit.text, query, heading=hit.heading,
                        context=settings.source_context_lines)


class ChatController:
    def __init__(self, settings: Settings, engines: EngineProvider) -> None:
        self.settings = settings
        self.engines = engines
        self.view: ChatView | None = None
        self._lock = threading.Lock()
        self._turns: dict[str, _Turn] = {}

    def bind(self, view: ChatView) -> None:
        self.view = view

    # --- session bookkeeping -------------------------------------------------------------------
    def _busy(self, sid: str) -> bool:
        """An answer is under way for this session (call with the lock held).

        A turn older than any answer can take is forgotten, so that a lost event
        (a dropped connection before the answer started) cannot lock a session out."""
        turn = self._turns.get(sid)
        if turn is None:
            return False
        if time.monotonic() - turn.started > max(TURN_TIMEOUT_MIN_S, 4 * self.settings.llm_timeout_s):
            turn.cancel.set()
            del self._turns[sid]
            return False
        return True

    def _drop_turn(self, sid: str | None) -> None:
        with self._lock:
            turn = self._turns.pop(sid, None) if sid else None
        if turn is not None:
            turn.discarded = True
            turn.cancel.set()

    def _claim(self, sid: str, question: str) -> bool:
        with self._lock:
            if self._busy(sid):
                return False
            self._turns[sid] = _Turn(question)
            return True

    # --- handlers (each returns {component: update}) ---------------------------------------------
    def on_load(self, request: gr.Request | None = None) -> dict:
        return {self.view.sources: render.sources_placeholder(lang=lang_of(request))}

    def start_turn(self, question: str, chat: list, turn_no: int, within=None, tags=None, since: str = "",
                   until: str = "", request: gr.Request | None = None) -> dict:
        """Show the question at once; the answer follows in `respond`. A refused question (or
        a scope with a date that is not one) stays in the box, with the reason under it."""
        v, lang = self.view, lang_of(request)
        if not (question or "").strip():
            return {v.pending: ""}
        engine = self.engines.ready
        try:
            text = engine.check_question(question) if engine is not None else question.strip()
            picker_scope(within, tags, since, until)
        except (QuestionError, ScopeError) as exc:
            return {v.pending: "", v.ask_msg: render.message_html(error_text(lang, exc), error=True)}
        if not self._claim(session_id(request), text):
            return {v.pending: "", v.ask_msg: render.message_html(t(lang, "busy"), error=True)}
        chat = list(chat or []) + [_bubble("user", render.user_markdown(text)), _bubble("assistant", t(lang, "thinking"))]
        return {v.question: "", v.chatbot: chat, v.pending: text, v.turn_no: turn_no + 1, v.ask_msg: ""}

    def retry_turn(self, chat: list, history: list, turn_no: int, turn_sources: list,
                   request: gr.Request | None = None) -> dict:
        v, lang = self.view, lang_of(request)
        history = list(history or [])
        if len(history) < 2 or history[-2].get("role") != "user":
            return {v.pending: "", v.ask_msg: render.message_html(t(lang, "nothing_to_retry"), error=True)}
        question = history[-2]["content"]
        if not self._claim(session_id(request), question):
            return {v.pending: "", v.ask_msg: render.message_html(t(lang, "busy"), error=True)}
        # The last exchange is asked again: drop it from the display, the history and the sources.
        chat = list(chat or [])
        if len(chat) >= 2:
            chat = chat[:-2]
        chat += [_bubble("user", render.user_markdown(question)), _bubble("assistant", t(lang, "thinking"))]
        kept = [s for s in (turn_sources or []) if s[0] != turn_no]  # the retried answer's sources go too
        return {v.chatbot: chat, v.history: history[:-2], v.pending: question, v.turn_no: turn_no + 1,
                v.turn_sources: kept, v.ask_msg: ""}

    def stop(self, request: gr.Request | None = None) -> None:
        with self._lock:
            turn = self._turns.get(session_id(request))
        if turn is not None:
            turn.cancel.set()

    def new_chat(self, request: gr.Request | None = None) -> dict:
        v = self.view
        self._drop_turn(session_id(request))
        return {v.chatbot: [], v.history: [], v.sources: render.sources_placeholder(lang=lang_of(request)),
                v.pending: "", v.question: "", v.turn_sources: [], v.ask_msg: ""}

    def forget_session(self, request: gr.Request | None = None) -> None:
        self._drop_turn(session_id(request))

    # --- answering ------------------------------------------------------------------------------
    def respond(self, pending: str, chat: list, history: list, turn_no: int, turn_sources: list, within=None,
                tags=None, since: str = "", until: str = "", request: gr.Request | None = None):
        """Stream one answer into the last chat bubble, from the notes inside the scope the
        picker holds (``within``, ``tags``, ``since``, ``until``); the sources panel follows it."""
        if not pending:
            yield gr.skip()
            return
        sid = session_id(request)
        with self._lock:
            turn = self._turns.get(sid)
            if turn is None or turn.question != pending:
                turn = self._turns[sid] = _Turn(pending)
        try:
            for update in self._answer(turn, pending, chat, history, turn_no, list(turn_sources or []),
                                       lang_of(request), (within, tags, since, until)):
                if turn.discarded:  # "New chat" was pressed meanwhile: leave the new chat alone
                    # Gradio re-sends a stream's last value when it ends: make that a no-op.
                    yield gr.skip()
                    return
                yield update
        except GeneratorExit:
            turn.cancel.set()  # the browser went away: stop the model too
            raise
        finally:
            with self._lock:
                if self._turns.get(sid) is turn:
                    del self._turns[sid]

    @staticmethod
    def _highlight_query(question: str, past: list[Message], standalone: str | None) -> str:
        """The words to mark in passages: the question, and for a follow-up the turn it leans on."""
        if standalone:
            return standalone
        if past and is_followup(question):
            return f"{question}\n{followup_context(question, past, max_chars=0)}"
        return question

    def _entries(self, sources, query: str) -> list[tuple[int, PassageView]]:
        return [(src.n, view_passage(self.settings, src.hit, query)) for src in sources]

    def _answer(self, turn: _Turn, pending: str, chat: list, history: list, turn_no: int, earlier: list,
                lang: str, fields: tuple = ()):
        v = self.view
        chat = list(chat or [])
        if not chat or chat[-1].get("role") != "assistant":
            chat.append(_bubble("assistant", t(lang, "thinking")))
        history = list(history or [])
        past = [Message(m["role"], m["content"]) for m in history if m.get("role") in ("user", "assistant")]

        def panel(current: str) -> str:
            return render.sources_panel(current, earlier, lang=lang)

        def say(text: str, sources_html: str | None = None) -> dict:
            chat[-1] = _bubble("assistant", text)
            update = {v.chatbot: chat, v.history: history, v.pending: ""}
            if sources_html is not None:
                update[v.sources] = panel(sources_html)
            return update

        scope: Scope | None = None
        try:
            scope = picker_scope(*fields)
            if turn.cancel.is_set():
                yield say(t(lang, "stopped"))
                return
            engine, error = self.engines.get(lang)
            if engine is None:
                error = error or t(lang, "cannot_search")
                yield say(render.escape_markdown(error), render.sources_placeholder(error))
                return
            answer, text, sources, query, relevant, search_query = None, "", [], pending, True, ""
            sources_html = render.sources_placeholder(t(lang, "src_searching"))
            last, sources_sent = 0.0, False
            for event in engine.stream(pending, past, turn.cancel, scope):
                if isinstance(event, SourcesEvent):
                    sources, relevant, search_query = event.sources, event.relevant, event.search_query
                    query = self._highlight_query(pending, past, event.standalone_question)
                    sources_html = render.sources_html(self._entries(sources, query), turn=turn_no, relevant=relevant,
                                                       search_query=search_query, lang=lang)
                    if engine.llm is not None:  # a model will take a while: show the sources meanwhile
                        yield {v.chatbot: chat, v.sources: panel(sources_html)}
                        sources_sent = True
                elif isinstance(event, TokenEvent):
                    # A token event may replace what was shown (a generated answer swapped for another).
                    text = event.text if getattr(event, "replace", False) else text + event.text
                    now = time.monotonic()
                    if now - last >= STREAM_EVERY_S:
                        chat[-1] = _bubble("assistant", render.answer_markdown(text, turn=turn_no, sources=sources,
                                                                               lang=lang))
                        last = now
                        update = {v.chatbot: chat}
                        if not sources_sent:
                            update[v.sources] = panel(sources_html)
                            sources_sent = True
                        yield update
                elif isinstance(event, DoneEvent):
                    answer = event.answer
            if answer is None:  # the engine always ends with DoneEvent; be safe anyway
                raise RuntimeError("the answer ended without a result")
            chat[-1] = _bubble("assistant", render.answer_markdown(
                answer.text, turn=turn_no, sources=answer.sources, cited=answer.cited, mode=answer.mode,
                notice=answer.notice, cancelled=answer.cancelled, final=True, lang=lang,
                scope_line=render.scope_html(scope, lang)))
            update = {v.chatbot: chat, v.pending: ""}
            if answer.sources:
                covered = relevant and answer.mode not in render.NOT_COVERED_MODES
                entries = self._entries(answer.sources, query)
                kw = dict(turn=turn_no, cited=answer.cited, relevant=covered, search_query=search_query, final=True,
                          lang=lang)
                update[v.sources] = panel(render.sources_html(entries, **kw))
                # Kept for later turns: this answer's citations still open its own passages.
                stored = [turn_no, pending, render.sources_html(entries, latest=False, **kw)]
                update[v.turn_sources] = (earlier + [stored])[-SOURCE_TURNS_KEPT:]
            else:
                update[v.sources] = panel(sources_html)
            history += [{"role": "user", "content": pending}, {"role": "assistant", "content": answer.text}]
            update[v.history] = history
            yield update
        except ScopeEmpty:  # one line, in the page's language; the session goes on
            yield say(render.escape_markdown(t(lang, "scope_empty", scope=render.scope_text(scope, lang))))
        except (QuestionError, ScopeError) as exc:
            yield say(render.escape_markdown(error_text(lang, exc)))
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - the user sees a message, the log the traceback
            log.exception("answering failed")
            yield say(render.escape_markdown(t(lang, "went_wrong", detail=f"{type(exc).__name__}: {exc}")))

    # --- the API ---------------------------------------------------------------------------------
    def ask(self, question: str, history: list[dict] | None = None, scope: dict | None = None) -> dict:
        """One complete answer with its sources, as JSON; ``scope`` limits it to notes
        ({"in": folders or notes, "tags": [...], "since": "YYYY-MM-DD", "until": ...})."""
        engine, error = self.engines.get()
        if engine is None:
            raise gr.Error(error or t("en", "cannot_search"), print_exception=False)
        try:
            # A client may send anything: a number for the question, a string for the history.
            # (A blank question is the engine's to refuse, in the words the page uses.)
            request = parse_request("-" if isinstance(question, str) else question, history or [])
            if scope is not None and not isinstance(scope, dict):
                raise InputError('"scope" must be an object with "in", "tags", "since" or "until"')
            answer = engine.ask(question, request.history, scope=request_scope(scope or {}))
        except (QuestionError, InputError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return answer.to_dict()
