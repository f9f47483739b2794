"""Answering a question from the notes: retrieval, a grounded prompt, a streamed cited answer.

``ChatEngine.stream`` yields, in order: one ``SourcesEvent`` (the numbered passages the
answer may cite), ``TokenEvent``s (text deltas; their concatenation, restarted at each
event with ``replace=True``, is the final answer text), and one ``DoneEvent`` carrying
the ``Answer``.

Without an LLM the answer is extractive: the notes' own sentences that answer the
question, each cited (rag/answer/extractive.py). Whatever goes wrong with the LLM (unreachable,
timeout, a loop of repeated text, an answer that cites none of the passages), the user
still gets an answer: the extractive one, with a one-line notice saying why.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from rag.search.conversation import Message, is_followup, trim_history
from rag.answer.about_notes import COMPOSED_MODES, NoteSearch, prepare_notes_list, prepare_outline
from rag.answer.degeneration import RepetitionGuard
from rag.core.errors import InputError
from rag.answer.events import (Answer, ChatEvent, DoneEvent, EngineStatus, Mode, PreparedAnswer, SourcesEvent,
                               TokenEvent)
from rag.answer.extractive import extract_answer
from rag.answer.note_summary_llm import SummaryPrepared, prepare_summary, stream_summary
from rag.answer.llm import BackendChoice, ChatModel, LLMError, LLMUnavailable, select_backend
from rag.answer.prompting import (
    NOT_COVERED,
    CitationFilter,
    Language,
    Source,
    build_answer_prompt,
    WINDOW_MARGIN,
    build_rewrite_prompt,
    cited_numbers,
    detect_language,
    not_in_notes_text,
    number_sources,
    parse_rewrite,
)
from rag.search.glossary import english_glosses, warm_glossary
from rag.search.note_finder import which_notes_topic
from rag.search.note_outline import summary_request
from rag.search.ordinals import ordinal_asked, ordinal_question
from rag.reading.scope import Scope
from rag.search.retrieval import IndexStatus, RetrievalResult
from rag.core.settings import Settings

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

# Rewriting a follow-up needs one short line, not an answer.
REWRITE_MAX_TOKENS = 96


class QuestionError(InputError, ValueError):
    """The question cannot be answered as given; ``str(exc)`` is meant for the user."""


class RetrieverLike(NoteSearch, Protocol):
    def retrieve(self, question: str, history: Sequence[Message] = (), k: int | None = None,
                 scope: Scope | None = None) -> RetrievalResult: ...

    def unit_similarity(self, result: RetrievalResult) -> Callable[[Sequence[str]], np.ndarray] | None:
        """Cosines of answer units to the result's question (None: answers go by words alone)."""

    def status(self) -> IndexStatus: ...


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
            from rag.search.retrieval import Retriever

            retriever = Retriever.from_settings(settings)
        warm_glossary(settings.glossary)
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
                standalone = rewrite_followup(self.llm, question, history, cancel)
            except LLMUnavailable as exc:
                # The server is down: asking it again for the answer would only wait twice.
                notice, llm_usable = _fallback_notice(str(exc), language), False
            except Exception as exc:  # noqa: BLE001 - rewriting is an optimisation; never fatal
                log.warning("follow-up rewrite failed: %s", exc)
        if standalone is None and history and ordinal_asked(question) and is_followup(question):
            # "那第三种呢？" names a thing by its place in a list said earlier: the name, put in its place.
            standalone = ordinal_question(question, history)

        request = summary_request(question)
        if request is not None:
            # With an LLM, a summary written section by section (rag/answer/note_summary_llm.py);
            # without one, or for a note it cannot be given, the extractive outline.
            summary = prepare_summary(self.retriever, self.llm, question, request, language, history) if llm_usable \
                else None
            return summary or prepare_outline(self.retriever, question, request, language, history)
        topic = which_notes_topic(question)
        if topic is not None and not (history and is_followup(question)):
            return prepare_notes_list(self.retriever, question, topic, language, history, scope)
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

    def extractive_text(self, prep: PreparedAnswer) -> str:
        """The answer in the notes' own words, cited; never empty when there are sources."""
        context = ""
        if prep.history and is_followup(prep.question):
            context = next((m.content for m in reversed(prep.history) if m.role == "user"), "")
        asked = prep.standalone_question or prep.question
        extracted = extract_answer(
            asked, prep.sources, budget_chars=self.settings.extractive_budget_chars,
            similarity=self.retriever.unit_similarity(prep.retrieval), context=context,
            template_lines=prep.retrieval.template_lines, glosses=english_glosses(asked, self.settings.glossary))
        if extracted.text:
            return extracted.text
        # Nothing but code, images or headings in the passages: point at the best one.
        best = prep.sources[0]
        return f"{best.label} [{best.n}]"

    # --- internals ----------------------------------------------------------------------
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
                cited = [n for n in cited_numbers(text) if 1 <= n <= len(prep.sources)]
            return DoneEvent(Answer(question, text, prep.sources, cited, backend, mode, notice,
                                    retrieval.search_query, prep.standalone_question, invalid or [], cancelled,
                                    relevant=retrieval.relevant and bool(prep.sources), notes=prep.notes))

        if prep.mode == "not-in-notes":
            text = prep.ready_text or not_in_notes_text(prep.sources, prep.language)
            yield TokenEvent(text)
            yield done(text, "not-in-notes")
            return
        if isinstance(prep, SummaryPrepared) and self.llm is not None:  # a whole-note summary by the LLM
            yield from stream_summary(self.llm, self.settings.llm_temperature, prep, cancel)
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
            yield done(full, "extractive", notice=notice, cited=cited_numbers(full), invalid=citations.invalid)
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


def rewrite_followup(llm: ChatModel, question: str, history: list[Message],
                     cancel: threading.Event | None) -> str | None:
    """A follow-up rewritten by the LLM as a question that stands alone (None: keep it as asked)."""
    out = "".join(llm.stream(build_rewrite_prompt(question, history), max_tokens=REWRITE_MAX_TOKENS,
                             temperature=0.0, cancel=cancel))
    rewritten = parse_rewrite(out, question, history)
    log.info("follow-up %r rewritten as %r (model said %r)", question, rewritten, out[:200])
    return rewritten

