"""Whole-note questions: "总结一下《LoRA》这篇笔记", "summarize my note on RLHF".

The answer is the note's outline in the note's own words: each top-level section's heading,
then its most informative unit (the first sentence, item or row of 15+ characters: notes
state a section's point first), cited, in the note's order, within ``OUTLINE_BUDGET_CHARS``
(three times a passage answer: a note has many sections). It comes from that note alone.

The note is the one the question names: a title in 《》, 「」 or quotes, or the words left once
the asking is taken out, matched against file names and first headings; failing that, the
note that ranks first for those words (rag/search/note_finder.py).

Invariants: every cited unit is verbatim text of the passage it cites, and every passage is
from the one note; sections appear in the note's order; the answer is at most
``OUTLINE_BUDGET_CHARS`` long, markers included.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Sequence

from rag.reading.chunking import Chunk
from rag.core.text import Language
from rag.reading.units import ITEM, STATING, cut_long, split_units

__all__ = ["OutlineItem", "summary_request", "note_by_name", "outline", "outline_text", "OUTLINE_BUDGET_CHARS"]

OUTLINE_BUDGET_CHARS = 1500
# A unit shorter than this rarely states a section's point ("见下图。").
MIN_INFORMATIVE_CHARS = 15

_ASK = re.compile(
    r"(?=.*(?:笔记|这篇|文章|文档|《))(?:.*(?:总结|概括|概述|归纳|梳理|讲了什么|讲的是什么|写了什么|主要内容|大纲|要点))|"
    r"\bsummari[sz]e\b|\bsum up\b|\boutline of\b|\boverview of\b|\bwhat does my note\b",
    re.IGNORECASE,
)
_SPOKEN_QUOTE = re.compile(r"“[^”]*”|「[^」]*」|\"[^\"]*\"")
_QUOTED = re.compile(r"《([^》]+)》|「([^」]+)」|“([^”]+)”|\"([^\"]+)\"")
_FRAME = re.compile(
    r"(?:帮我|请|给我)?(?:总结|概括|概述|归纳|梳理)(?:一下)?|讲了什么|讲的是什么|写了什么|的?主要内容|的?大纲|的?要点|"
    r"我?(?:这篇|那篇)(?:讲|写|说)|"
    r"(?:我的|这篇|那篇|关于)?(?:笔记|文章|文档)|这篇|那篇|关于|是什么|[？?。，,！!：:]|"
    r"\b(?:please|summari[sz]e|sum up|give me|an?|the|outline|overview|of|my|note|notes|on|about|what|does|say|it)\b",
    re.IGNORECASE,
)
_EDGE = re.compile(r"^(?:的|了|一下|\s)+|(?:的|了|吗|呢|\s|\.)+$")


def summary_request(question: str) -> str | None:
    """The name or topic of the note a whole-note question asks about ("" when it names none);
    None for any other question. Words quoted with “…”, 「…」 or "…" are what the question talks
    about, not what it asks: "那篇笔记里，说明“靠观察归纳出来的规律未必可靠”的寓言是什么？" asks
    for a fable, not a summary (归纳 in the quote had made it one)."""
    if not _ASK.search(_SPOKEN_QUOTE.sub("", question)):
        return None
    quoted = _QUOTED.search(question)
    if quoted:
        return next(g for g in quoted.groups() if g).strip()
    return _EDGE.sub("", re.sub(r"\s+", " ", _FRAME.sub(" ", question)).strip())


def note_by_name(name: str, chunks: Sequence[Chunk]) -> str | None:
    """The note whose file name or first heading is ``name`` (or holds it), case aside."""
    wanted = name.lower().strip()
    if not wanted:
        return None
    firsts: dict[str, str] = {}
    for chunk in chunks:
        firsts.setdefault(chunk.source, (chunk.heading.split(" > ", 1)[0] or chunk.text.split("\n", 1)[0]).lower())
    stems = {source: PurePosixPath(source).stem.lower() for source in firsts}
    for exact in (True, False):
        for source in firsts:
            names = (stems[source], firsts[source].strip("# "))
            if any(n == wanted if exact else wanted in n for n in names):
                return source
    return None


@dataclass(frozen=True)
class OutlineItem:
    heading: str  # the top-level section's heading ("" before the first heading)
    text: str  # its most informative unit, verbatim
    chunk: Chunk  # the passage it is quoted from


def outline(source: str, chunks: Sequence[Chunk], sections: Sequence[tuple[str, int, int]],
            skip: set[int] = frozenset()) -> list[OutlineItem]:
    """Each top-level section of note ``source`` (``sections``: heading, first and last line,
    from ``structure.top_sections``) with its most informative unit, in note order.

    ``skip``: passages (by position in ``chunks``) that are navigation or a repeated footer.
    A unit belongs to a section when it is quoted from a passage overlapping the section's
    lines and stands under the section's heading or one below it.
    """
    mine = _note_chunks(source, chunks, skip)
    return [item for heading, first, last in sections
            if (item := _section_item(mine, heading, first, last)) is not None]


def _note_chunks(source: str, chunks: Sequence[Chunk], skip: set[int]) -> list[Chunk]:
    """The passages of note ``source`` in line order, those in ``skip`` left out."""
    return sorted((c for i, c in enumerate(chunks) if c.source == source and i not in skip),
                  key=lambda c: c.line_start)


def _section_item(mine: Sequence[Chunk], heading: str, first: int, last: int) -> OutlineItem | None:
    """The most informative unit of the section ``heading`` (lines ``first``-``last``) among the
    note's passages ``mine``; None when the section states nothing."""
    units = [(u.text, c) for c in mine if c.line_start <= last and c.line_end >= first
             for u in split_units(0, c.text) if u.kind in STATING and _under(u.title, heading, c, first)]
    if not units:
        return None
    informative = [(t, c) for t, c in units if len(t) >= MIN_INFORMATIVE_CHARS]
    text, chunk = (informative or units)[0]
    return OutlineItem(ITEM.sub("", heading, count=1).strip(), text, chunk)


def _under(title: str, heading: str, chunk: Chunk, first: int) -> bool:
    """Is a unit with heading ``title`` (the nearest inside its passage) part of the section
    ``heading`` that starts at line ``first``? Yes when the passage starts inside the section,
    or when the section's heading appears in the passage at or above the unit."""
    if chunk.line_start >= first:
        return True
    return bool(heading) and (title == ITEM.sub("", heading, count=1).strip() or heading in chunk.text.split(
        title, 1)[0] if title else False)


_HEAD = {"zh": "《{note}》的要点（按笔记顺序，每节一句）：", "en": "“{note}”, section by section (one sentence each):"}


def outline_text(note: str, items: Sequence[OutlineItem], language: Language,
                 budget: int = OUTLINE_BUDGET_CHARS) -> str:
    """The outline: a heading line, then "- unit [n]" (n = the item's place, 1-based), cut to fit."""
    head = _HEAD[language].format(note=PurePosixPath(note).stem)
    if not items:
        return head
    overhead = len(head) + sum(len(i.heading) + 1 + len(f"- [{n}]") + 2 for n, i in enumerate(items, 1))
    share = max(20, (budget - overhead) // len(items))
    lines = [head]
    for n, item in enumerate(items, 1):
        if item.heading:
            lines.append(item.heading)
        lines.append(f"- {cut_long(item.text, share)} [{n}]")
    text = "\n".join(lines)
    while len(text) > budget and len(lines) > 2:  # very many sections: the last ones are left out
        lines = lines[:-2] if not lines[-2].startswith("- ") else lines[:-1]
        text = "\n".join(lines)
    return text


@dataclass(frozen=True)
class NoteSection:
    """One top-level section of a note: its passages in line order, and its extractive line."""

    heading: str  # as the note writes it, list markers removed ("" before the first heading)
    first: int  # 1-based line span of the section
    last: int
    chunks: list[Chunk]
    fallback: OutlineItem | None  # its most informative unit; None when it states nothing


def note_sections(source: str, chunks: Sequence[Chunk], sections: Sequence[tuple[str, int, int]],
                  skip: set[int] = frozenset()) -> list[NoteSection]:
    """The top-level ``sections`` of note ``source`` (from ``structure.top_sections``) with the
    passages that overlap each (navigation and repeated footers, ``skip``, left out); a
    section with no passage and no extractive line is left out."""
    mine = _note_chunks(source, chunks, skip)
    out = []
    for heading, first, last in sections:
        passages = [c for c in mine if c.line_start <= last and c.line_end >= first]
        item = _section_item(mine, heading, first, last)
        if passages or item:
            out.append(NoteSection(ITEM.sub("", heading, count=1).strip(), first, last, passages, item))
    return out
