"""Whole-note questions answered with an LLM: a summary written section by section.

"总结一下《X》这篇笔记" without an LLM is answered by the note's extractive outline
(rag/search/note_outline.py). With one, each top-level section of the note
(``note_outline.note_sections``, as the outline uses) is summarised on its own: the model gets only that section's passages,
numbered as sources, and is asked for one or two sentences with ``[n]`` citations. The
sections' lines are assembled in the note's order, under a heading line, and streamed a
section at a time (a section is shown once its reply has been checked).

A section's reply is kept when, after invented numbers are removed, it cites at least one of
its own passages, is not degenerate (``RepetitionGuard``) and says something (at least
``MIN_REPLY_CHARS`` characters besides citations, not the "not covered" line). Sentences after
its last citation are left out, so every claim is followed by a citation; a reply that copies
the instructions (``ECHO_CHARS`` running characters) or a passage's label is no summary. Otherwise the
section gets its extractive line (its most informative unit, cited). When the LLM server is
down (``LLMUnavailable``), the whole answer is the extractive outline under one warning line.

Invariants: every citation in the answer is to a passage of the one note, listed in the
answer's sources, and a section's line cites only that section's passages; sections appear
in the note's order; the answer is at most ``SummaryLimits.budget_chars`` long, markers and
the warning line aside.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterator, Sequence

from rag.answer.about_notes import NoteSearch
from rag.answer.degeneration import RepetitionGuard
from rag.answer.events import Answer, ChatEvent, DoneEvent, PreparedAnswer, TokenEvent
from rag.answer.llm import ChatModel, LLMError, LLMUnavailable
from rag.answer.prompting import (NOT_COVERED, WINDOW_MARGIN, Prompt, Source, build_answer_prompt, cited_numbers,
                                  number_sources, validate_citations)
from rag.core.text import CITATION_RUN, Language
from rag.reading.chunking import Chunk
from rag.reading.units import cut_long
from rag.search.note_outline import OUTLINE_BUDGET_CHARS, NoteSection
from rag.search.retrieval import Hit, RetrievalResult

__all__ = ["MIN_REPLY_CHARS", "SectionPlan", "SummaryLimits", "SummaryPlan", "SummaryPrepared", "extractive_summary", "plan_summary", "prepare_summary", "section_line",
           "stream_summary"]

log = logging.getLogger(__name__)

# A reply shorter than this (citations and spaces aside) says nothing about a section.
MIN_REPLY_CHARS = 8


@dataclass(frozen=True)
class SummaryLimits:
    """How much one summary may cost and show."""

    budget_chars: int = OUTLINE_BUDGET_CHARS  # the whole answer, heading line and markers included
    section_context_chars: int = 2000  # passage text shown to the model for one section
    section_max_tokens: int = 200  # one or two sentences, with room for citations


@dataclass(frozen=True)
class SectionPlan:
    section: NoteSection
    prompt: Prompt | None  # None: nothing to show the model; the extractive line is used
    numbers: dict[int, int]  # the prompt's passage number -> the answer's source number
    fallback_n: int | None  # the answer's source number of the extractive line's passage


@dataclass(frozen=True)
class SummaryPlan:
    note: str
    language: Language
    sections: list[SectionPlan]
    sources: list[Source]  # every passage any section may cite, in note order, each once
    limits: SummaryLimits = field(default_factory=SummaryLimits)


_ASK_SECTION: dict[Language, str] = {
    "zh": "用一到两句话概括笔记《{note}》中“{heading}”这一节的要点，只根据上面的段落，每句话后面用 [n] 标出依据的段落编号。",
    "en": "In one or two sentences, summarize the section “{heading}” of the note “{note}”, using only the passages "
          "above; end every sentence with the [n] of the passage it comes from.",
}
_HEAD: dict[Language, str] = {"zh": "《{note}》的要点（按笔记顺序，每节一到两句）：",
                              "en": "“{note}”, section by section (one or two sentences each):"}
_DOWN: dict[Language, str] = {"zh": "语言模型暂不可用（{detail}），以下为摘自笔记原文的大纲。",
                              "en": "{detail}; showing an outline quoted from your note."}


def plan_summary(note: str, sections: Sequence[NoteSection], language: Language, llm: ChatModel,
                 limits: SummaryLimits = SummaryLimits()) -> SummaryPlan:
    """One prompt per section (its own passages only, renumbered from 1), and the answer's
    sources: every passage a prompt shows or an extractive line quotes, numbered once."""
    stem = PurePosixPath(note).stem
    global_n: dict[tuple[str, int, int, str], int] = {}
    hits: list[Hit] = []

    def number(chunk: Chunk) -> int:
        key = (chunk.source, chunk.line_start, chunk.line_end, chunk.text[:64])
        if key not in global_n:
            hits.append(Hit(rank=len(hits) + 1, score=1.0, chunk=chunk))
            global_n[key] = len(hits)
        return global_n[key]

    max_answer = min(limits.section_max_tokens, llm.context_tokens // 2)
    plans = []
    for section in sections:
        prompt, numbers = None, {}
        if section.chunks:
            ask = _ASK_SECTION[language].format(note=stem, heading=section.heading or stem)
            prompt = build_answer_prompt(ask, number_sources(Hit(i, 1.0, c) for i, c in enumerate(section.chunks, 1)),
                                         context_chars=limits.section_context_chars,
                                         max_prompt_tokens=llm.context_tokens - max_answer - WINDOW_MARGIN,
                                         count_tokens=llm.count_tokens)
            numbers = {s.n: number(s.hit.chunk) for s in prompt.sources}
        fallback_n = number(section.fallback.chunk) if section.fallback else None
        plans.append(SectionPlan(section, prompt, numbers, fallback_n))
    # Numbered as met; shown to the user in the note's order with the numbers kept.
    return SummaryPlan(note, language, plans, number_sources(hits), limits)


# A run of this many characters (whitespace aside) copied from the instructions is an echo
# of the prompt, not a summary (SmolLM2 repeats its system prompt and the "[n]" rule).
ECHO_CHARS = 12
_LABEL_ECHO = re.compile(r"\(lines \d+\s*[–-]\s*\d+\)")


def _echoes(reply: str, instructions: Sequence[str]) -> bool:
    """Does ``reply`` copy ``ECHO_CHARS`` characters running from the instructions, or a
    passage's label ("file › heading (lines a–b)")?"""
    if _LABEL_ECHO.search(reply):
        return True
    said = _windows(reply)
    return any(not said.isdisjoint(_windows(text)) for text in instructions)


def _windows(text: str) -> set[str]:
    """Every run of ``ECHO_CHARS`` characters of ``text``, white space removed."""
    squashed = re.sub(r"\s+", "", text)
    return {squashed[i:i + ECHO_CHARS] for i in range(len(squashed) - ECHO_CHARS + 1)}


def section_line(reply: str, numbers: dict[int, int], language: Language,
                 instructions: Sequence[str] = ()) -> str | None:
    """A section's reply made into its line, citations renumbered to the answer's sources;
    None when the reply cannot stand (cites none of the section's passages, degenerate, an
    echo of the ``instructions`` it was given, empty, or the "not covered" line). Sentences
    after the last citation are dropped."""
    guard = RepetitionGuard()
    guard.feed(reply)
    guard.flush()
    if guard.stopped or _echoes(reply, instructions):
        return None
    check = validate_citations(reply.strip(), numbers.keys())
    text = check.text.strip()
    if not check.cited or text.startswith(NOT_COVERED[language]):
        return None
    last = None
    for last in CITATION_RUN.finditer(text):
        pass
    if last:  # up to the last citation and the sentence end right after it
        text = text[: last.end() + len(re.match(r"[。.!！?？；;]*", text[last.end():]).group())]
    text = re.sub(r"\s*\n\s*", " ", text).strip().lstrip("-*• ").strip()
    if len(re.sub(r"\s+", "", CITATION_RUN.sub("", text))) < MIN_REPLY_CHARS:
        return None
    return CITATION_RUN.sub(lambda m: m.group("ws") + "".join(
        f"[{numbers[int(n)]}]" for n in re.findall(r"\d+", m.group("run")) if int(n) in numbers), text)


def _instructions(prompt: Prompt) -> list[str]:
    """What the model was told, not given to summarise: the system turn and the request that
    ends the user turn (after the passages)."""
    system = [m.content for m in prompt.messages if m.role == "system"]
    user = prompt.messages[-1].content
    return system + [user[user.rfind("\n") + 1:]]


def _extractive_line(plan: SectionPlan, share: int) -> str | None:
    item = plan.section.fallback
    return None if item is None else f"{cut_long(item.text, share)} [{plan.fallback_n}]"


def _fit(line: str, share: int) -> str:
    """A section's line within ``share`` characters: whole sentences while they fit, else the
    first one cut, its citations kept."""
    if len(line) <= share:
        return line
    cites = "".join(dict.fromkeys(m.group("run") for m in CITATION_RUN.finditer(line)))
    bare = CITATION_RUN.sub("", line)
    return cut_long(bare, max(10, share - len(cites) - 1)).rstrip() + " " + cites


def _shares(plan: SummaryPlan, head: str) -> int:
    overhead = len(head) + sum(len(p.section.heading) + 1 + 4 for p in plan.sections)
    return max(30, (plan.limits.budget_chars - overhead) // max(1, len(plan.sections)))


def _block(heading: str, line: str) -> str:
    return (f"\n{heading}" if heading else "") + f"\n- {line}"


def extractive_summary(plan: SummaryPlan) -> str:
    """The outline of the plan's note in its extractive lines, numbered as the plan's sources."""
    head = _HEAD[plan.language].format(note=PurePosixPath(plan.note).stem)
    share = _shares(plan, head)
    text = head
    for p in plan.sections:
        line = _extractive_line(p, share)
        if line is not None:
            block = _block(p.section.heading, line)
            if len(text) + len(block) > plan.limits.budget_chars:
                break
            text += block
    return text


@dataclass(frozen=True)
class SummaryPrepared(PreparedAnswer):
    """A whole-note question to be answered by the LLM, section by section."""

    plan: SummaryPlan | None = None


def stream_summary(llm: ChatModel, temperature: float, prep: SummaryPrepared,
                   cancel: threading.Event | None = None) -> Iterator[ChatEvent]:
    """Token events, a section at a time, then the DoneEvent; for ``ChatEngine._stream``."""
    plan = prep.plan
    assert plan is not None
    head = _HEAD[plan.language].format(note=PurePosixPath(plan.note).stem)
    share = _shares(plan, head)
    text, used_llm, invalid, cancelled = head, False, [], False
    notice: str | None = None
    yield TokenEvent(head)
    for p in plan.sections:
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        line = None
        if p.prompt is not None:
            try:
                reply = "".join(llm.stream(p.prompt.messages, max_tokens=plan.limits.section_max_tokens,
                                           temperature=temperature, cancel=cancel))
            except LLMUnavailable as exc:
                notice = _DOWN[plan.language].format(detail=str(exc))
                break
            except LLMError as exc:  # this section only: its extractive line stands in
                log.warning("section %r: %s", p.section.heading, exc)
                reply = ""
            invalid += validate_citations(reply, p.numbers.keys()).invalid
            line = section_line(reply, p.numbers, plan.language, _instructions(p.prompt))
            if line is None:
                log.info("section %r: reply replaced by its extractive line: %r", p.section.heading, reply[:200])
            else:
                used_llm = True
        line = _fit(line, share) if line is not None else _extractive_line(p, share)
        if line is None:
            continue
        block = _block(p.section.heading, line)
        if len(text) + len(block) > plan.limits.budget_chars:
            break  # very many sections: the last ones are left out
        text += block
        yield TokenEvent(block)
    if notice is not None:
        text = notice + "\n\n" + extractive_summary(plan)
        used_llm = False
        yield TokenEvent(text, replace=True)
    cited = [n for n in cited_numbers(text) if 1 <= n <= len(plan.sources)]
    yield DoneEvent(Answer(prep.question, text, plan.sources, cited, llm.name if used_llm else "none",
                           "note-summary", notice, prep.retrieval.search_query, None,
                           list(dict.fromkeys(invalid)), cancelled, relevant=True))


def prepare_summary(retriever: NoteSearch, llm: ChatModel, question: str, request: str, language: Language,
                    history: list) -> SummaryPrepared | None:
    """The prepared answer and plan for an LLM summary of the note ``request`` names; None when
    no note is named or found, or it has nothing to summarise (the extractive outline then
    answers as before)."""
    if not request:
        return None
    source, sections = retriever.note_sections(request)
    if source is None or not sections:
        return None
    plan = plan_summary(source, sections, language, llm)
    if not plan.sources:
        return None
    retrieval = RetrievalResult(question, request, True, [s.hit for s in plan.sources])
    return SummaryPrepared(question, language, history, retrieval, plan.sources, None, "note-summary", None,
                           None, plan=plan)
