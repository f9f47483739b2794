"""Follow-ups that name a thing by its place beside the earlier one: "那另一类呢？", "那下一步呢？".

After "绝对位置编码是怎么做的？", "那另一类呢？" asks about 相对位置编码, a name the follow-up never
says. The notes say which thing stands beside the earlier one where they set the two side by
side: "位置编码通常分为两种类型：绝对位置编码和相对位置编码。". ``other_thing`` reads such a pairing
from the passages: one side of "和/与/及/或/以及" (or "and"/"or") that the earlier question
names, the other side the thing asked about. The extractive answer (rag/answer/extractive.py)
then scores units by that name, as if the follow-up had said it. "那再往上一个层级呢？" after "智能体的
level 2“路由”是什么意思？" asks about the name numbered next, "level 3 - 使用工具" (``next_thing``).

Invariant: the name returned is a verbatim piece of one of the texts given, and the earlier
question does not hold it; "" when no pairing names the earlier thing (the follow-up is then
answered as before). No rule names a note, heading or question.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from rag.core.text import CN_NUMBERS, small_number, word_chars
from rag.reading.units import STATING, Unit

__all__ = ["asks_other", "named_at", "next_thing", "other_thing", "step_asked", "strip_pointers", "thing_asked"]

# "另一类", "另一种", "另外一个", "其他那种", "the other one", "another kind".
_OTHER = re.compile(r"另(?:一|外(?:一|的)?)(?:类|种|个|部分|半|边|方面|方法|方式)|其他(?:的|那)?(?:类|种)|"
                    r"\bthe other (?:one|kind|type|approach|method)\b|\banother (?:one|kind|type)\b", re.IGNORECASE)
# Two things set side by side, each a run of name characters between punctuation.
_SIDE = r"[\w\-+.\u4e00-\u9fff]"
_PAIR = re.compile(rf"({_SIDE}{{2,16}}?)\s*(?:和|与|及|或|以及|\band\b|\bor\b)\s*({_SIDE}{{2,16}})(?=[\s，,。.；;：:、）)]|$)")
# The two names share their head ("绝对位置编码" / "相对位置编码", "MQA" / "GQA" share none): at least
# this many characters of the shorter one end both, or both are short Latin names.
_MIN_SHARED_TAIL = 2


# A follow-up naming the next or the one before by its place: "那再往上一个层级呢？", "那下一步呢？",
# "上一个阶段呢？". "往上一个" is up (next), though it holds "上一个" (the one before); checked first.
_STEPS = ((re.compile(r"往上|更高一"), 1), (re.compile(r"往下|更低一"), -1),
          (re.compile(r"下一|后一|\bnext\b|\bthe one after\b", re.IGNORECASE), 1),
          (re.compile(r"上一|前一|\bprevious\b|\bthe one before\b", re.IGNORECASE), -1))
# A numbered name: "level 2", "Stage 3", "第二步", "GPT-3", "2. 路由" (its words before and after the number).
_NUMBERED = re.compile(rf"(?:(?P<pre>[A-Za-z]+[\s\-]?|第)(?P<num>\d{{1,2}}|[{CN_NUMBERS}])|"
                       rf"(?P<lone>\d{{1,2}}|[{CN_NUMBERS}])(?=[.、．]))(?P<post>步|阶段|层|级|代|版|期)?")


def step_asked(question: str) -> int:
    """+1 when the follow-up asks about the next one ("那再往上一个层级呢？"), -1 the one before, else 0."""
    for pattern, step in _STEPS:
        if pattern.search(question):
            return step
    return 0


def _numbered(text: str) -> tuple[str, int, str] | None:
    """(the words before the number, the number, the word after it) of ``text``'s first numbered name."""
    m = _NUMBERED.search(text)
    if not m:
        return None
    digits = m.group("num") or m.group("lone")
    number = small_number(digits)
    return (m.group("pre") or "").strip(" -").lower(), number, m.group("post") or ""


def next_thing(earlier: str, step: int, names: Iterable[str]) -> tuple[str, str]:
    """(the name numbered ``step`` after the one the earlier question names, that one), among
    ``names`` (the passages' headings and the lines naming what follows them): "level 3 - 使用工具"
    after "智能体的 level 2“路由”是什么意思？". ("", "") when the earlier question names no numbered
    thing or no name carries the number asked."""
    asked = _numbered(earlier)
    if asked is None or not step:
        return "", ""
    pre, number, post = asked
    found: dict[int, str] = {}
    for name in names:
        own = _numbered(name)
        if own is not None and own[0] == pre and own[2] == post and own[1] in (number, number + step):
            found.setdefault(own[1], name)
    return (found[number + step], found.get(number, "")) if number + step in found else ("", "")


def asks_other(question: str) -> bool:
    """Does the follow-up ask about the thing beside the earlier one ("那另一类呢？")?"""
    return _OTHER.search(question) is not None


def named_at(units: Sequence[Unit], at: Mapping[tuple[int, int], Unit], thing: str) -> list[int]:
    """Indexes of ``units`` that stand under a line naming ``thing`` alone ("相对位置编码：" above its
    paragraph, or the heading "相对位置编码"): the units before them up to that line say something too."""
    name = word_chars(thing)
    found = []
    for i, u in enumerate(units):
        j = u.order - 1
        while (u.n, j) in at and at[(u.n, j)].kind in STATING and at[(u.n, j)].title == u.title:
            j -= 1
        above = at.get((u.n, j))
        if word_chars(u.title) == name or (above is not None and above.kind in ("lead", "label")
                                           and above.title == u.title and word_chars(above.text) == name):
            found.append(i)
    return found


def strip_pointers(question: str) -> str:
    """The follow-up without the words pointing at the other or the next thing ("那另一类呢？" -> "那呢？")."""
    question = _OTHER.sub(" ", question)
    for pattern, _ in _STEPS:
        question = pattern.sub(" ", question)
    return question


def thing_asked(question: str, earlier: str, texts: Sequence[str], names: Sequence[str]) -> tuple[str, str]:
    """(the thing a follow-up names by its place, the earlier thing it stands beside), or ("", ""):
    the other one (``other_thing`` over ``texts``, the passages' units and headings) or the next or
    the one before (``next_thing`` over ``names``, their headings and the lines naming what follows)."""
    if asks_other(question):
        return other_thing(earlier, texts)
    step = step_asked(question)
    return next_thing(earlier, step, names) if step else ("", "")


def _longest(text: str, said: str, from_end: bool) -> str:
    """The longest suffix (``from_end``) or prefix of ``text``, at least two characters, that ``said`` holds."""
    for size in range(len(text), 1, -1):
        piece = text[-size:] if from_end else text[:size]
        if piece.lower() in said:
            return piece
    return ""


def _beside(named: str, side: str, left: bool) -> str:
    """The name on ``side`` (the left of the pairing when ``left``) that matches ``named``'s form: it
    ends with ``named``'s head (its last characters that ``side`` also holds), "绝对位置编码" ->
    "相对位置编码"; a short Latin name beside another ("MQA" and "GQA") is that whole side."""
    if _latin_name(named) and _latin_name(side):
        return side
    for size in range(len(named) - 1, _MIN_SHARED_TAIL - 1, -1):
        head = named[-size:]
        at = side.rfind(head) if left else side.find(head)
        if at >= 0:
            end = at + len(head)
            return side[max(0, end - len(named)):end] if left else side[:end]
    return ""


def _latin_name(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z][\w\-+.]{1,15}", text) is not None


def other_thing(earlier: str, texts: Iterable[str]) -> tuple[str, str]:
    """(the name set side by side with one the earlier question names, that name), from the first
    of ``texts`` that pairs them; ("", "") when none does."""
    said = re.sub(r"\s+", "", earlier).lower()
    for text in texts:
        for m in _PAIR.finditer(text):
            left, right = m.group(1), m.group(2)
            for named, other in ((_longest(left, said, True), lambda n: _beside(n, right, False)),
                                 (_longest(right, said, False), lambda n: _beside(n, left, True))):
                thing = other(named) if named else ""
                if len(thing) >= 2 and thing.lower() not in said:
                    return thing, named
    return "", ""
