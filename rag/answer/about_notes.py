"""Answers about the notes rather than in them, composed without any LLM before streaming:
"哪些笔记提到了 X" lists the notes (rag/search/note_finder.py), "总结一下《X》这篇笔记" outlines one
note (rag/search/note_outline.py). Each returns a ``PreparedAnswer`` whose ``ready_text`` is the
answer, every line cited to the passages in its ``sources``.
"""
from __future__ import annotations

from typing import Protocol

from rag.answer.events import Mode, PreparedAnswer
from rag.answer.prompting import Language, number_sources
from rag.reading.scope import Scope
from rag.search.conversation import Message
from rag.search.note_finder import NoteMatch, notes_list_text
from rag.search.note_outline import NoteSection, OutlineItem, outline_text
from rag.search.retrieval import Hit, RetrievalResult

# A whole-note question that names no note ("这篇笔记讲了什么" at the start of a chat).
NAME_THE_NOTE: dict[str, str] = {"zh": "要总结哪篇笔记？请写出它的标题或文件名，例如：总结一下《LoRA》这篇笔记。",
                                 "en": "Which note should I summarize? Name it by its title or file name, e.g. "
                                       "“Summarize my note on LoRA”."}
# Modes whose answer is composed without any LLM, before streaming (PreparedAnswer.ready_text).
COMPOSED_MODES = ("which-notes", "note-summary")


class NoteSearch(Protocol):
    """What answers about notes ask of the retriever (rag/search/retrieval.py implements it)."""

    def find_notes(self, topic: str, scope: Scope | None = None) -> tuple[bool, list[NoteMatch]]:
        """(do the notes cover the topic, the notes that talk about it, best first)."""

    def outline_note(self, request: str) -> tuple[str | None, list[OutlineItem]]:
        """(the note a whole-note question names, its outline in the note's order)."""

    def note_sections(self, request: str) -> tuple[str | None, list[NoteSection]]:
        """(the note a whole-note question names, its top-level sections with their passages)."""


def prepare_notes_list(retriever: NoteSearch, question: str, topic: str, language: Language,
                       history: list[Message], scope: Scope | None = None) -> PreparedAnswer:
    """"哪些笔记提到了 X": the notes about X, each cited by its best passage (no LLM needed)."""
    relevant, matches = retriever.find_notes(topic, scope=scope)
    hits = [Hit(rank=i, score=m.score, chunk=m.best) for i, m in enumerate(matches, 1)]
    retrieval = RetrievalResult(question, topic, relevant and bool(hits), hits)
    mode: Mode = "which-notes" if retrieval.relevant else "not-in-notes"
    return PreparedAnswer(question, language, history, retrieval, number_sources(hits), None, mode, None, None,
                          matches if retrieval.relevant else [], notes_list_text(topic, matches, language))


def prepare_outline(retriever: NoteSearch, question: str, request: str, language: Language,
                    history: list[Message]) -> PreparedAnswer:
    """"总结一下《X》这篇笔记": the note's outline, each section's point cited (no LLM needed)."""
    source, items = retriever.outline_note(request)
    hits = [Hit(rank=i, score=1.0, chunk=item.chunk) for i, item in enumerate(items, 1)]
    retrieval = RetrievalResult(question, request, bool(hits), hits)
    mode: Mode = "note-summary" if hits else "not-in-notes"
    text = outline_text(source, items, language) if source else NAME_THE_NOTE[language] if not request else None
    return PreparedAnswer(question, language, history, retrieval, number_sources(hits), None, mode, None, None,
                          ready_text=text)
