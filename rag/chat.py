"""Answering a question from the notes: retrieval, a grounded prompt, a streamed cited answer.

``ChatEngine.stream`` yields, in order: one ``SourcesEvent`` (the numbered passages the
answer may cite), ``TokenEvent``s (text deltas; their concatenation, restarted at each
event with ``replace=True``, is the final answer text), and one ``DoneEvent`` carrying
the ``Answer``.

Without an LLM the answer is extractive: the notes' own sentences that answer the
question, each cited (rag/extractive.py). Whatever goes wrong with the LLM (unreachable,
timeout, a loop of repeated text, an answer that cites none of the passages), the user
still gets an answer: the extractive one, with a one-line notice saying why.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Protocol, Sequence, Union

import numpy as np

from .conversation import Message, is_followup, trim_history
from .degeneration import RepetitionGuard
from .errors import InputError
from .extractive import extract_answer
from .llm import BackendChoice, ChatModel, LLMError, LLMUnavailable, select_backend, status_line
from .prompting import (
    NOT_COVERED,
    CitationFilter,
    Language,
    Prompt,
    Source,
    build_answer_prompt,
    build_rewrite_prompt,
    detect_language,
    not_in_notes_text,
    number_sources,
    parse_rewrite,
)
from .note_finder import NoteMatch, notes_list_text, which_notes_topic
from .note_outline import OutlineItem, outline_text, summary_request
from .scope import Scope
from .retrieval import Hit, IndexStatus, RetrievalResult
from .settings import Settings
from .text import CITATION

__all__ = [
    "Answer",
    "ChatEngine",
    "ChatEvent",
    "DoneEvent",
    "EngineStatus",
    "Mode",
    "PreparedAnswer",
    "QuestionError",
    "Source",
    "SourcesEvent",
    "TokenEvent",
]

log = logging.getLogger(__name__)

Mode = Literal["llm", "extractive", "not-in-notes", "which-notes", "note-summary"]
# The same modes as the machine-readable contract spells them (`rag ask --json`): "llm" and
# "extractive" answer in the notes' words, "not_covered" declines, "which_notes" lists the
# notes that talk about a topic ("哪些笔记提到了 X", with a "notes" field), "note_summary"
# outlines one note ("总结一下《X》这篇笔记", with a "note" field).
CONTRACT_MODES: dict[str, str] = {"llm": "llm", "extractive": "extractive", "not-in-notes": "not_covered",
                                  "which-notes": "which_notes", "note-summary": "note_summary"}
# A whole-note question that names no note ("这篇笔记讲了什么" at the start of a chat).
NAME_THE_NOTE: dict[str, str] = {"zh": "要总结哪篇笔记？请写出它的标题或文件名，例如：总结一下《LoRA》这篇笔记。",
                                 "en": "Which note should I summarize? Name it by its title or file name, e.g. "
                                       "“Summarize my note on LoRA”."}
# Modes whose answer is composed without any LLM, before streaming (PreparedAnswer.ready_text).
COMPOSED_MODES = ("which-notes", "note-summary")

# Rewriting a follow-up needs one short line, not an answer.
REWRITE_MAX_TOKENS = 96
# Tokens kept free between prompt and answer for the chat template's own markup.
WINDOW_MARGIN = 16


class QuestionError(InputError, ValueError):
    """The question cannot be answered as given; ``str(exc)`` is meant for the user."""


class RetrieverLike(Protocol):
    def retrieve(self, question: str, history: Sequence[Message] = (), k: int | None = None,
                 scope: Scope | None = None) -> RetrievalResult: ...

    def unit_similarity(self, result: RetrievalResult) -> Callable[[Sequence[str]], np.ndarray] | None:
        """Cosines of answer units to the result's question (None: answers go by words alone)."""

    def find_notes(self, topic: str, scope: Scope | None = None) -> tuple[bool, list[NoteMatch]]:
        """(do the notes cover the topic, the notes that talk about it, best first)."""

    def outline_note(self, request: str) -> tuple[str | None, list[OutlineItem]]:
        """(the note a whole-note question names, its outline in the note's order)."""

    def status(self) -> IndexStatus: ...


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    sources: list[Source]
    cited: list[int]  # citation numbers used in ``text``; each is one of ``sources``
    backend: str  # the model that wrote ``text`` ("openai:…", "llama.cpp:…"), or "none"
    mode: Mode
    notice: str | None = None  # why the answer is not what was asked for (LLM down, …)
    search_query: str = ""
    standalone_question: str | None = None  # the LLM's rewrite of a follow-up, when one was used
    invalid_citations: list[int] = field(default_factory=list)  # invented numbers removed from the text
    cancelled: bool = False
    relevant: bool = True  # the notes cover the question (retrieval's decision)
    notes: list[NoteMatch] = field(default_factory=list)  # for "which-notes": the notes listed, in order

    @property
    def answer_text(self) -> str:
        """The answer without the notice that may open it: what a reader or a scorer reads."""
        if self.notice and self.text.startswith(self.notice):
            return self.text[len(self.notice):].lstrip("\n")
        return self.text

    def to_contract(self, item_id=None) -> dict:
        """The stable machine-readable answer (`rag ask --json`): other tools score answers
        through it, so fields are only ever added, never renamed."""
        by_n = {s.n: s.hit for s in self.sources}
        return {
            "id": item_id,
            "mode": CONTRACT_MODES[self.mode],
            "answer": self.answer_text,
            "citations": [
                {"n": n, "source": by_n[n].source, "heading": by_n[n].heading, "line_start": by_n[n].line_start,
                 "line_end": by_n[n].line_end}
                for n in self.cited if n in by_n
            ],
            "relevant": self.relevant,
        } | ({"notes": [m.to_dict() for m in self.notes]} if self.mode == "which-notes" else {}) | (
            {"note": self.sources[0].hit.source if self.sources else None} if self.mode == "note-summary" else {})

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "text": self.text,
            "mode": self.mode,
            "backend": self.backend,
            "notice": self.notice,
            "cited": self.cited,
            "invalid_citations": self.invalid_citations,
            "cancelled": self.cancelled,
            "relevant": self.relevant,
            "search_query": self.search_query,
            "standalone_question": self.standalone_question,
            "sources": [s.to_dict() for s in self.sources],
        }


@dataclass(frozen=True)
class SourcesEvent:
    sources: list[Source]  # numbered as the answer cites them
    relevant: bool  # False: the notes do not cover the question; these are only the closest
    search_query: str  # what retrieval searched for (after follow-up resolution)
    standalone_question: str | None = None


@dataclass(frozen=True)
class TokenEvent:
    text: str
    # True: this text replaces everything streamed so far (a failed generated answer
    # replaced by the extractive one); the answer shown is what follows.
    replace: bool = False


@dataclass(frozen=True)
class DoneEvent:
    answer: Answer


ChatEvent = Union[SourcesEvent, TokenEvent, DoneEvent]


@dataclass(frozen=True)
class EngineStatus:
    backend: str  # "openai" | "llamacpp" | "none"
    model: str | None  # ChatModel.name
    reason: str  # why this backend (and, for extractive answers, why no LLM)
    llm_ok: bool  # the LLM answered a health check just now
    llm_detail: str
    index: IndexStatus | None
    index_error: str | None = None

    @property
    def mode(self) -> str:
        """"llm" or "extractive": what answers when all is well."""
        return "llm" if self.model else "extractive"

    @property
    def line(self) -> str:
        """One short line: which mode answers, and how to get generated answers when none does."""
        return status_line(self.model, down=None if self.llm_ok or not self.model else self.llm_detail)


@dataclass(frozen=True)
class PreparedAnswer:
    """Everything decided before the first token is asked of the LLM."""

    question: str
    language: Language
    history: list[Message]  # trimmed to the budgets
    retrieval: RetrievalResult
    sources: list[Source]
    prompt: Prompt | None  # None: no LLM call will be made
    mode: Mode  # what the answer will be if the LLM behaves
    notice: str | None
    standalone_question: str | None
    notes: list[NoteMatch] = field(default_factory=list)  # "which-notes": the notes to list
    ready_text: str | None = None  # the answer of a COMPOSED_MODES question, composed already


_OLD_CITATION = re.compile(r"\s?[\[【]\d{1,3}(?:\s*[,，、]\s*\d{1,3})*[\]】]")


def _fallback_notice(detail: str, language: Language) -> str:
    if language == "zh":
        return f"语言模型暂不可用（{detail}），以下为摘自笔记原文的回答。"
    return f"{detail}; showing an answer quoted from your notes."


_REPLACED: dict[str, dict[Language, str]] = {
    "repeat": {"zh": "语言模型开始重复同一句话，已停止；以下为摘自笔记原文的回答。",
               "en": "The model started repeating itself and was stopped; showing an answer quoted from your notes "
                     "instead."},
    "no_progress": {"zh": "语言模型不再产生新内容，已停止；以下为摘自笔记原文的回答。",
                    "en": "The model stopped adding anything new and was stopped; showing an answer quoted from your "
                          "notes instead."},
    "uncited": {"zh": "语言模型的回答没有引用任何笔记段落；以下为摘自笔记原文的回答。",
                "en": "The model's answer cited none of your notes; showing an answer quoted from your notes instead."},
}


def _replaced_notice(why: str, language: Language) -> str:
    """The one line shown above an extractive answer that replaced a generated one."""
    return _REPLACED[why][language]


class ChatEngine:
    def __init__(
        self,
        settings: Settings,
        retriever: RetrieverLike,
        llm: ChatModel | None,
        *,
        backend_reason: str = "",
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.llm = llm
        self.backend_reason = backend_reason or ("LLM: " + llm.name if llm else "extractive")

    @classmethod
    def from_settings(cls, settings: Settings, *, retriever: RetrieverLike | None = None) -> "ChatEngine":
        """Loads the index (raises IndexNotFound when there is none) and picks the LLM backend."""
        if retriever is None:
            from .retrieval import Retriever

            retriever = Retriever.from_settings(settings)
        choice: BackendChoice = select_backend(settings)
        log.info("LLM backend: %s (%s)", choice.backend, choice.reason)
        return cls(settings, retriever, choice.model, backend_reason=choice.reason)

    # --- public API ---------------------------------------------------------------------
    def check_question(self, question: str) -> str:
        text = (question or "").strip()
        if not text:
            raise QuestionError("Please type a question.", key="q_empty")
        if len(text) > self.settings.max_question_chars:
            limit = self.settings.max_question_chars
            raise QuestionError(f"The question is too long ({len(text)} characters; the limit is {limit}). "
                                "Please shorten it.", key="q_too_long", n=len(text), limit=limit)
        return text

    def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        cancel: threading.Event | None = None,
        scope: Scope | None = None,
    ) -> Iterator[ChatEvent]:
        """Events for one answer, from the notes inside ``scope`` (all notes without one).
        Raises QuestionError at once for an empty or too long question; ScopeEmpty when the
        first event is asked for, if no note is inside the scope."""
        text = self.check_question(question)
        return self._stream(text, list(history), cancel, scope)

    def ask(self, question: str, history: Sequence[Message] = (), cancel: threading.Event | None = None,
            scope: Scope | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history, cancel, scope):
            if isinstance(event, DoneEvent):
                answer = event.answer
        assert answer is not None  # _stream always ends with a DoneEvent
        return answer

    def status(self) -> EngineStatus:
        index, index_error = None, None
        try:
            index = self.retriever.status()
        except Exception as exc:  # noqa: BLE001 - a status line must not fail
            index_error = str(exc)
        if self.llm is None:
            return EngineStatus("none", None, self.backend_reason, False, "no LLM", index, index_error)
        health = self.llm.health(timeout_s=1.0)
        return EngineStatus(self.llm.backend, self.llm.name, self.backend_reason, health.ok, health.detail,
                            index, index_error)

    def prepare(
        self,
        question: str,
        history: Sequence[Message] = (),
        *,
        rewrite: bool = True,
        cancel: threading.Event | None = None,
        scope: Scope | None = None,
    ) -> PreparedAnswer:
        """Retrieval and prompt assembly: every step before the LLM is asked to answer."""
        question = self.check_question(question)
        s = self.settings
        language = detect_language(question)
        history = trim_history(list(history), s.history_turns, s.history_chars)
        notice: str | None = None
        llm_usable = self.llm is not None

        standalone: str | None = None
        rewrite_here = s.rewrite_followups == "always" or (
            s.rewrite_followups == "auto" and llm_usable and self.llm.backend == "openai")
        if rewrite and rewrite_here and llm_usable and history and is_followup(question):
            try:
                standalone = self._rewrite(question, history, cancel)
            except LLMUnavailable as exc:
                # The server is down: asking it again for the answer would only wait twice.
                notice, llm_usable = _fallback_notice(str(exc), language), False
            except Exception as exc:  # noqa: BLE001 - rewriting is an optimisation; never fatal
                log.warning("follow-up rewrite failed: %s", exc)

        request = summary_request(question)
        if request is not None:
            return self._prepare_outline(question, request, language, history)
        topic = which_notes_topic(question)
        if topic is not None and not (history and is_followup(question)):
            return self._prepare_notes_list(question, topic, language, history, scope)
        retrieval = self.retriever.retrieve(standalone or question, history, k=s.top_k, scope=scope)
        sources = number_sources(retrieval.hits)
        if not retrieval.relevant or not sources:
            return PreparedAnswer(question, language, history, retrieval, sources, None, "not-in-notes", None,
                                  standalone)
        if not llm_usable:
            # "auto" without a model answers extractively by design (the status line says so);
            # a backend asked for by name that cannot answer is worth a notice on every answer.
            if self.llm is None and s.llm_backend not in ("none", "auto"):
                notice = _fallback_notice(self.backend_reason, language)
            return PreparedAnswer(question, language, history, retrieval, sources, None, "extractive",
                                  notice, standalone)

        assert self.llm is not None
        max_answer = min(s.llm_max_tokens, self.llm.context_tokens // 2)
        prompt = build_answer_prompt(
            question,
            sources,
            # Old answers' "[2]" pointed at other passages; left in, they invite wrong numbers.
            [Message(m.role, _OLD_CITATION.sub("", m.content)) for m in history],
            context_chars=s.context_chars,
            max_prompt_tokens=self.llm.context_tokens - max_answer - WINDOW_MARGIN,
            count_tokens=self.llm.count_tokens,
        )
        return PreparedAnswer(question, language, history, retrieval, prompt.sources, prompt, "llm", None,
                              standalone)

    def _prepare_notes_list(self, question: str, topic: str, language: Language,
                            history: list[Message], scope: Scope | None = None) -> PreparedAnswer:
        """"哪些笔记提到了 X": the notes about X, each cited by its best passage (no LLM needed)."""
        relevant, matches = self.retriever.find_notes(topic, scope=scope)
        hits = [Hit(rank=i, score=m.score, chunk=m.best) for i, m in enumerate(matches, 1)]
        retrieval = RetrievalResult(question, topic, relevant and bool(hits), hits)
        mode: Mode = "which-notes" if retrieval.relevant else "not-in-notes"
        return PreparedAnswer(question, language, history, retrieval, number_sources(hits), None, mode, None, None,
                              matches if retrieval.relevant else [], notes_list_text(topic, matches, language))

    def _prepare_outline(self, question: str, request: str, language: Language,
                         history: list[Message]) -> PreparedAnswer:
        """"总结一下《X》这篇笔记": the note's outline, each section's point cited (no LLM needed);
        with an LLM, a summary written section by section (rag/note_summary_llm.py)."""
        if self.llm is not None:
            from .note_summary_llm import prepare_summary
            if (prepared := prepare_summary(self, question, request, language, history)) is not None:
                return prepared
        source, items = self.retriever.outline_note(request)
        hits = [Hit(rank=i, score=1.0, chunk=item.chunk) for i, item in enumerate(items, 1)]
        retrieval = RetrievalResult(question, request, bool(hits), hits)
        mode: Mode = "note-summary" if hits else "not-in-notes"
        text = outline_text(source, items, language) if source else NAME_THE_NOTE[language] if not request else None
        return PreparedAnswer(question, language, history, retrieval, number_sources(hits), None, mode, None, None,
                              ready_text=text)

    def extractive_text(self, prep: PreparedAnswer) -> str:
        """The answer in the notes' own words, cited; never empty when there are sources."""
        context = ""
        if prep.history and is_followup(prep.question):
            context = next((m.content for m in reversed(prep.history) if m.role == "user"), "")
        extracted = extract_answer(
            prep.standalone_question or prep.question,
            prep.sources,
            budget_chars=self.settings.extractive_budget_chars,
            similarity=self.retriever.unit_similarity(prep.retrieval),
            context=context,
        )
        if extracted.text:
            return extracted.text
        # Nothing but code, images or headings in the passages: point at the best one.
        best = prep.sources[0]
        return f"{best.label} [{best.n}]"

    # --- internals ----------------------------------------------------------------------
    def _rewrite(self, question: str, history: list[Message], cancel: threading.Event | None) -> str | None:
        assert self.llm is not None
        out = "".join(
            self.llm.stream(build_rewrite_prompt(question, history), max_tokens=REWRITE_MAX_TOKENS,
                            temperature=0.0, cancel=cancel)
        )
        rewritten = parse_rewrite(out, question, history)
        log.info("follow-up %r rewritten as %r (model said %r)", question, rewritten, out[:200])
        return rewritten

    def _stream(self, question: str, history: list[Message], cancel: threading.Event | None,
                scope: Scope | None = None) -> Iterator[ChatEvent]:
        prep = self.prepare(question, history, cancel=cancel, scope=scope)
        retrieval = prep.retrieval
        yield SourcesEvent(prep.sources, retrieval.relevant and bool(prep.sources), retrieval.search_query,
                           prep.standalone_question)

        def done(text: str, mode: Mode, backend: str = "none", notice: str | None = prep.notice,
                 cited: list[int] | None = None, invalid: list[int] | None = None,
                 cancelled: bool = False) -> DoneEvent:
            if cited is None:
                cited = [n for n in _cited_numbers(text) if 1 <= n <= len(prep.sources)]
            return DoneEvent(Answer(question, text, prep.sources, cited, backend, mode, notice,
                                    retrieval.search_query, prep.standalone_question, invalid or [], cancelled,
                                    relevant=retrieval.relevant and bool(prep.sources), notes=prep.notes))

        if prep.mode == "not-in-notes":
            text = prep.ready_text or not_in_notes_text(prep.sources, prep.language)
            yield TokenEvent(text)
            yield done(text, "not-in-notes")
            return
        if getattr(prep, "plan", None) is not None:  # a whole-note summary by the LLM
            from .note_summary_llm import stream_summary
            yield from stream_summary(self, prep, cancel)
            return
        if prep.mode in COMPOSED_MODES and prep.ready_text is not None:
            yield TokenEvent(prep.ready_text)
            yield done(prep.ready_text, prep.mode)
            return
        if prep.prompt is None or self.llm is None:
            text = (prep.notice + "\n\n" if prep.notice else "") + self.extractive_text(prep)
            yield TokenEvent(text)
            yield done(text, "extractive")
            return

        llm = self.llm
        prompt = prep.prompt
        max_tokens = max(16, min(self.settings.llm_max_tokens, llm.context_tokens - prompt.tokens - WINDOW_MARGIN))
        citations = CitationFilter(range(1, len(prep.sources) + 1))
        guard = RepetitionGuard()  # a loop is cut before the user sees it twice
        shown: list[str] = []
        failure: str | None = None
        tokens = llm.stream(prompt.messages, max_tokens=max_tokens, temperature=self.settings.llm_temperature,
                            cancel=cancel)
        try:
            for delta in tokens:
                safe = guard.feed(citations.feed(delta))
                if safe:
                    shown.append(safe)
                    yield TokenEvent(safe)
                if guard.stopped:
                    break  # closing the stream below stops the generation itself
        except LLMError as exc:
            failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - the user gets an answer, not a traceback
            log.exception("LLM generation failed")
            failure = f"the language model failed ({type(exc).__name__}: {exc})"
        finally:
            tokens.close()
        if not guard.stopped:
            tail = guard.feed(citations.flush()) + guard.flush()
            if tail:
                shown.append(tail)
                yield TokenEvent(tail)
        text = "".join(shown)
        cited = [n for n in citations.cited if f"[{n}]" in text]
        cancelled = cancel is not None and cancel.is_set()

        if failure is None and not text.strip() and not cancelled and not guard.stopped:
            failure = f"{llm.name} returned an empty answer"
        if failure is not None:
            # What the model said before it failed stays: every citation in it was checked.
            notice = _fallback_notice(failure, prep.language)
            fallback = ("\n\n" if text.strip() else "") + notice + "\n\n" + self.extractive_text(prep)
            yield TokenEvent(fallback)
            full = text + fallback
            yield done(full, "extractive", notice=notice, cited=_cited_numbers(full), invalid=citations.invalid)
            return
        not_covered = text.strip().startswith(NOT_COVERED[prep.language])
        replace_why: str | None = None
        if guard.stopped:
            replace_why = guard.kind
        elif not cited and not not_covered and not cancelled:
            replace_why = "uncited"
        if replace_why is not None:
            log.warning("generated answer replaced (%s): %r", guard.stopped or replace_why, text[:300])
            notice = _replaced_notice(replace_why, prep.language)
            full = notice + "\n\n" + self.extractive_text(prep)
            yield TokenEvent(full, replace=True)
            yield done(full, "extractive", notice=notice, invalid=citations.invalid)
            return
        mode: Mode = "not-in-notes" if not_covered else "llm"
        yield done(text, mode, backend=llm.name, notice=None, cited=cited, invalid=citations.invalid,
                   cancelled=cancelled)


def _cited_numbers(text: str) -> list[int]:
    return list(dict.fromkeys(int(n) for n in CITATION.findall(text)))
