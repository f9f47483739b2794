"""Follow-ups that name a thing by its place in a list said earlier: "那第三种呢？", "其中第二项…".

After "吴恩达提到的 Agent 设计范式有哪几种？" answered "有四种：Reflection、Tool use、Planning 和
Multi-agent collaboration。", "那第三种呢，具体是怎么回事？" asks about Planning, a name the
follow-up never says. Without a language model to rewrite the follow-up, ``ordinal_question``
reads the list from the earlier turn (the last answer first, then the last question) and puts the
name in place of the words that count ("那Planning呢，具体是怎么回事？"), so retrieval searches
for it and the extractive answer scores units by it.

A list is a run of names after a colon (or the whole sentence), separated by 、，, ; the last two
joined by 和/与/及/以及/或/and/or; or consecutive list lines ("- Agent范式一: Reflection [1]",
"1. 冻结层"), each named by its words before a colon.

Invariant: the name put in is a verbatim piece of an earlier turn; the follow-up comes back
unchanged (``None``) when it names no place, or no earlier list is that long. No rule names a
note, heading or question.
"""
from __future__ import annotations

import re
from typing import Sequence

from rag.core.text import CN_NUMBERS, small_number
from rag.reading.units import ITEM
from rag.search.conversation import Message

__all__ = ["listed", "ordinal_asked", "ordinal_question"]

_EN_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_COUNTER = r"(?:种|个|项|点|类|条|部分|方面|方法|阶段|步|层|级|类型|范式|模式)"
# "第三种", "第 2 个", "最后一项", "the second one", "the last approach". "第三" alone counts only with
# a counter word after it, or before 呢/？ ("那第三呢"): "第三方库" names no place.
_ORDINAL = re.compile(
    rf"第\s*(?P<num>\d{{1,2}}|[{CN_NUMBERS}])\s*(?:{_COUNTER}|(?=\s*(?:呢|吗|？|\?|$)))|"
    rf"(?P<last>最后(?:一)?{_COUNTER})|"
    rf"\bthe\s+(?P<en>{'|'.join(_EN_ORDINALS)}|last)(?:\s+(?:one|kind|type|item|point|step|approach|method|option|stage))?\b",
    re.IGNORECASE)
LAST = -1
# A list item longer than this is a clause, not a name.
MAX_NAME_CHARS = 40
_CITATION = re.compile(r"\s*\[\d+\]")
_SEPARATORS = re.compile(r"\s*[、，,；;]\s*")
_CLAUSE = re.compile(r"[，,。；;！!？?]")
# Where a sentence's run of names starts and ends, without a colon to say so.
_BEFORE_NAMES = re.compile(r"^.*(?:包括|包含|比如|例如|分为|有|是)")
_AFTER_NAMES = re.compile(r"\s*(?:分别|各自|都|是|有|的|等|这|几|两|三|四|五|六).*$")
_ENUMERATION_COMMA = re.compile(r"\s*、\s*")
_LAST_JOIN = re.compile(r"\s*(?:以及|和|与|及|或|\band\b|\bor\b)\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[。！？!?\n]|\.(?:\s|$)")


def ordinal_asked(question: str) -> tuple[int, re.Match] | None:
    """(the place asked, 1-based or ``LAST``, the words naming it) of a follow-up, or None."""
    m = _ORDINAL.search(question)
    if m is None:
        return None
    if m.group("last") or (m.group("en") or "").lower() == "last":
        return LAST, m
    if m.group("en"):
        return _EN_ORDINALS.index(m.group("en").lower()) + 1, m
    return small_number(m.group("num")), m


def _name(text: str) -> str:
    """A list line's name: its words before a colon that starts an explanation ("学习率调整:可以使用较小
    的学习率…" names 学习率调整), the whole line where what follows the colon is a name too
    ("Agent范式一: Reflection"), or no name for a line that is a sentence."""
    text = _CITATION.sub("", text).strip().strip("*").strip()
    head, _, rest = text.replace("：", ":").partition(":")
    head, rest = head.strip().strip("*").strip(), rest.strip()
    if rest and len(text) <= MAX_NAME_CHARS and not _CLAUSE.search(rest):
        return text
    return head if head and len(head) <= MAX_NAME_CHARS and not _CLAUSE.search(head) else ""


def _inline(sentence: str) -> list[str]:
    """The names a sentence lists after its colon ("有四种：A、B、C 和 D", commas count there), or
    anywhere in it between 、 (a sentence's commas part clauses, not names)."""
    pieces = re.split(r"[:：]", sentence)
    body = re.sub(r"(?:等等|等)?\s*$", "", pieces[-1].strip(" 。.！!？?"))
    parts = (_SEPARATORS if len(pieces) > 1 else _ENUMERATION_COMMA).split(body)
    if len(parts) >= 2 or _LAST_JOIN.search(body):
        joined = _LAST_JOIN.split(parts[-1])
        if len(joined) == 2:
            parts = parts[:-1] + joined
    if len(pieces) == 1 and len(parts) > 1:
        # Only the run of names between 、: the words around them are none ("常用的有A、B和C三种").
        parts[0] = _BEFORE_NAMES.sub("", parts[0])
        parts[-1] = _AFTER_NAMES.sub("", parts[-1])
    names = [p.strip() for p in parts if p.strip()]
    return names if len(names) >= 2 and all(len(n) <= MAX_NAME_CHARS for n in names) else []


def listed(text: str) -> list[list[str]]:
    """Every list ``text`` holds: runs of list lines, then the names each sentence lists."""
    lists: list[list[str]] = []
    run: list[str] = []
    for line in text.splitlines() + [""]:
        m = ITEM.match(line)
        name = _name(line[m.end():]) if m and line[m.end():].strip() else ""
        if name:
            run.append(name)
            continue
        if len(run) >= 2:
            lists.append(run)
        run = []
    for sentence in _SENTENCE_END.split(_CITATION.sub("", text)):
        if not ITEM.match(sentence):
            names = _inline(sentence)
            if names:
                lists.append(names)
    return lists


def ordinal_question(question: str, history: Sequence[Message]) -> str | None:
    """The follow-up with the name its place points at ("那第三种呢" -> "那Planning呢"), or None."""
    asked = ordinal_asked(question)
    if asked is None:
        return None
    place, words = asked
    for role in ("assistant", "user"):
        said = next((m.content for m in reversed(history) if m.role == role), "")
        fitting = [names for names in listed(said) if place == LAST or len(names) >= place]
        if fitting:
            names = max(fitting, key=len)
            name = names[-1] if place == LAST else names[place - 1]
            return f"{question[:words.start()]}{name}{question[words.end():]}"
    return None
