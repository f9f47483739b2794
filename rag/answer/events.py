"""What the chat engine returns and streams: the ``Answer`` (and its `rag ask --json` contract),
the events of a stream, the engine's status, and the ``PreparedAnswer`` decided before any token.

``ChatEngine.stream`` (rag/answer/chat.py) yields one ``SourcesEvent``, then ``TokenEvent``s, then
one ``DoneEvent`` carrying the ``Answer``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from rag.answer.llm import status_line
from rag.answer.prompting import Language, Prompt, Source
from rag.search.conversation import Message
from rag.search.note_finder import NoteMatch
from rag.search.retrieval import IndexStatus, RetrievalResult

Mode = Literal["llm", "extractive", "not-in-notes", "which-notes", "note-summary"]
# The same modes as the machine-readable contract spells them (`rag ask --json`): "llm" and
# "extractive" answer in the notes' words, "not_covered" declines, "which_notes" lists the
# notes that talk about a topic ("哪些笔记提到了 X", with a "notes" field), "note_summary"
# outlines one note ("总结一下《X》这篇笔记", with a "note" field).
CONTRACT_MODES: dict[str, str] = {"llm": "llm", "extractive": "extractive", "not-in-notes": "not_covered",
                                  "which-notes": "which_notes", "note-summary": "note_summary"}


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
    # The follow-up rewritten whole: by the LLM, or with the name a place in an earlier list points at.
    standalone_question: str | None = None
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
