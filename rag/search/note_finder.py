"""Questions about the notes rather than in them: "哪些笔记提到了 LoRA？", "which notes mention RLHF?".

The answer is a list of notes, one line each, ranked by note: a note's rank is its best
passage's place in the hybrid ranking (dense + keyword + heading signals, fused as for any
question, over ``NOTE_CANDIDATES`` passages rather than a top-k), and it is listed with
that passage's section and how many of its passages matched. Each line cites the best
passage, so the sources below the answer open on it.

Invariants: a note is listed at most once; at most ``limit`` notes; a note is listed only
when one of its passages matches (names the topic; or, when no passage does, ranks near
the best passage), and its count is the number of its passages that match.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from rag.reading.chunking import Chunk
from rag.core.text import Language

__all__ = ["NoteMatch", "which_notes_topic", "naming_passages", "rank_notes", "notes_list_text", "NOTES_LISTED",
           "NOTE_CANDIDATES"]

# Notes listed at most: a list longer than a screen is a search result, not an answer.
NOTES_LISTED = 10
# Passages ranked before they are grouped by note: enough for every note of a few hundred
# that talks about the topic to have its passages in, at ~1 ms of fusion per 100.
NOTE_CANDIDATES = 300
# When no passage names the topic, a passage matches when its fused score reaches this share
# of the best passage's (a paraphrase, an English topic over Chinese notes).
MATCH_SHARE = 0.5

# "哪些笔记/哪几篇笔记/哪篇笔记 … X", "我的笔记里哪些提到 X", "which notes …", "list my notes about X".
_ASK = re.compile(
    r"(?:哪些|哪几篇|哪篇|哪个|什么)(?:笔记|文章|文档|文件|note)|笔记(?:里|中)?(?:有)?哪些|列出.{0,6}笔记|"
    r"\bwhich (?:of my )?(?:notes|files|documents)\b|\bwhat notes\b|\blist (?:all )?(?:of )?my notes\b|"
    r"\bfind (?:all )?(?:of )?my notes\b",
    re.IGNORECASE,
)
# Words around the topic that only ask: removed whole (never single characters inside the
# topic: "中文分词" keeps its "中"), leaving what the notes must be about.
_FRAME = re.compile(
    r"在?(?:我的?)?(?:哪些|哪几篇|哪篇|哪个|什么)(?:笔记|文章|文档|文件)(?:里|中)?|(?:我的?)?笔记(?:里|中)?(?:有)?哪些|"
    r"列出.{0,6}笔记|(?:都|曾经?)?(?:提到了?|提及了?|讲到了?|谈到了?|说到了?|涉及到?|关于|包含了?|讲了|写了|介绍了?|"
    r"[讲写说提谈记]过|出现过|出现了)|(?:的|相关的?)内容(?=[\s？?。，,！!]*$)|"
    r"[？?。，,！!：:]|"
    r"\b(?:which|what|of|my|notes?|files?|documents?|list|find|all|mention(?:s|ed)?|talk|talks|about|discuss"
    r"(?:es)?|cover(?:s)?|contain(?:s)?|do|does|that|the|me|show|please)\b",
    re.IGNORECASE,
)
# Particles left at either end of the topic ("有 LoRA 吗" -> "LoRA").
_EDGE = re.compile(r"^(?:有|是|的|了|\s)+|(?:的|了|吗|呢|\s)+$")


@dataclass(frozen=True)
class NoteMatch:
    """One note that talks about the topic: its best passage, and how many of its passages matched."""

    best: Chunk
    passages: int
    score: float  # the best passage's fused score, relative to the first note's (1.0)

    @property
    def source(self) -> str:
        return self.best.source

    def to_dict(self) -> dict:
        return {"source": self.best.source, "heading": self.best.heading, "line_start": self.best.line_start,
                "line_end": self.best.line_end, "passages": self.passages}


def which_notes_topic(question: str) -> str | None:
    """The topic of a question that asks which notes talk about it; None for any other question."""
    if not _ASK.search(question):
        return None
    topic = _EDGE.sub("", re.sub(r"\s+", " ", _FRAME.sub(" ", question)).strip())
    return topic or None


def naming_passages(candidates: Iterable[int], chunks: Sequence[Chunk], tokens: Sequence[Sequence[str]],
                    terms: set[str], glosses: Mapping[str, frozenset[str]]) -> set[int]:
    """The candidates that name the topic: their keyword terms hold every term of it, an English
    term also in Chinese (``glosses``, rag/search/glossary.py: "quantization" named as 量化)."""
    if not terms:
        return set()

    def names(i: int) -> bool:
        own = set(tokens[i])
        return all(t in own or any(z in chunks[i].text for z in glosses.get(t, ())) for t in terms)

    return {i for i in candidates if names(i)}


def rank_notes(fused: dict[int, float], chunks: list[Chunk], names: set[int],
               limit: int = NOTES_LISTED) -> list[NoteMatch]:
    """Group ranked passages (``fused``: passage id → score) by note, best note first.

    A passage matches when it names the topic (``names``: its keyword terms hold all of the
    topic's); when none does (a paraphrase, an English topic over Chinese notes), when it
    ranks within ``MATCH_SHARE`` of the best passage. A note is listed when one of its
    passages matches.
    """
    if not fused:
        return []
    top = max(fused.values())
    matching = set(names) & set(fused) or {i for i, score in fused.items() if score >= MATCH_SHARE * top}
    best: dict[str, int] = {}
    counts: dict[str, int] = {}
    for idx in sorted(matching, key=fused.__getitem__, reverse=True):
        source = chunks[idx].source
        best.setdefault(source, idx)
        counts[source] = counts.get(source, 0) + 1
    ordered = sorted(best, key=lambda source: fused[best[source]], reverse=True)[:limit]
    return [NoteMatch(chunks[best[s]], counts[s], fused[best[s]] / top) for s in ordered]


_HEAD = {"zh": "{n} 篇笔记谈到了“{topic}”（按相关程度排列）：", "en": "{n} notes talk about “{topic}” (most relevant first):"}
_LINE = {"zh": "- {source} › {heading}（第 {a}–{b} 行，{k} 段相关）[{i}]",
         "en": "- {source} › {heading} (lines {a}–{b}, {k} matching passages) [{i}]"}


def notes_list_text(topic: str, matches: list[NoteMatch], language: Language) -> str:
    """The answer: one cited line per note, best first."""
    lines = [_HEAD[language].format(n=len(matches), topic=topic)]
    for i, m in enumerate(matches, 1):
        heading = m.best.heading.replace(" > ", " › ") or m.best.source
        lines.append(_LINE[language].format(source=m.best.source, heading=heading, a=m.best.line_start,
                                            b=m.best.line_end, k=m.passages, i=i))
    return "\n".join(lines)
