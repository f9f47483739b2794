"""Two-part questions: the things a question asks, and the units that answer each of them.

A question can ask two things: two clauses ("X 是什么，有什么作用？", "为什么…？怎么…？"), or one
question about two things ("A 和 B 的区别", "优点和缺点分别是什么", "A vs B"). The extractive answer
(rag/answer/extractive.py) takes the best units of each part the passages cover before the rest, the
parts in turn, so that one part does not take the whole budget.

A part is told from the others by the words only it has: the thing it names ("AdapterDrop"), or,
where a part names no thing of its own, the aspect it asks about ("缺点" in "它有什么缺点"). No rule names a note, heading or question.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

import numpy as np

from rag.reading.rhetorical import ASKING
from rag.reading.units import Unit
from rag.search.conversation import ASPECT_WORDS

__all__ = ["comparison_terms", "goes_on_from", "part_picks", "part_terms", "points_back", "question_parts",
           "side_by_side", "with_continuations"]

# Where a question asking two things divides: between clauses, or between the two things
# it names ("A 和 B 的区别", "A vs B"). Parts shorter than two characters are not parts.
_CLAUSES = re.compile(r"[，,；;？?！!]+|\s+(?:and|also)\s+(?=(?:what|how|why|which|when|where|who|is|are|does|do)\b)",
                      re.IGNORECASE)
# A clause asks something when it holds a word that asks (``rhetorical.ASKING``, or one naming what a
# comparison asks for: "和Y的区别？"); one that asks nothing ("做企业级 RAG 时", "NVIDIA 有张卡不拼训练速度")
# sets the scene for the next clause that asks and is part of it: "跟 AI 聊天聊得太久，前面的内容塞不进去了，
# 一般有什么办法让它还能接着聊？" asks one thing.
_ASKS = re.compile(rf"{ASKING.pattern}|区别|不同|多大|几|怎|\b(?:was|were)\b", re.IGNORECASE)
_BETWEEN_THINGS = re.compile(r"和|与|跟|以及|及|、|\s+(?:and|vs\.?|versus)\s+|\s*/\s*", re.IGNORECASE)
_MIN_PART_CHARS = 2
_MAX_PARTS = 4
# A question that sets the things it names side by side ("A 和 B 有什么区别", "TTFT 和 TPOT 分别指什么",
# "How do A and B differ"): each thing is answered by what is said of it alone. Not one that asks
# how they relate ("批处理大小、GPU 显存和速度之间是什么关系"): there a unit naming several answers.
_SIDE_BY_SIDE = re.compile(r"区别|不同|差异|异同|对比|比较|相比|分别|各自|\bvs\.?|\bversus\b|\bdiffer|\bcompar|"
                           r"\bcontrast|\brespectively\b", re.IGNORECASE)
# A sentence that opens by pointing back ("它只需要更新一小部分参数…", "This means …") goes on with the
# sentence before it (其 only as a word of its own: not 其实、其他、其中、其次).
_POINTS_BACK = re.compile(r"^\s*(?:它|其(?![实他中次])|这|该|此|(?i:it|this|these|they)\b)")


def points_back(text: str) -> bool:
    """Does ``text`` open by pointing at what came before it ("它…", "这种方法…", "This…")?"""
    return _POINTS_BACK.match(text) is not None


def question_parts(question: str) -> list[str]:
    """The things a question asks about, when it asks about more than one; else [].

    "数据并行和模型并行的主要区别是什么？" → ["数据并行", "模型并行的主要区别是什么"];
    "triplet loss 是什么，有什么作用？" → ["triplet loss 是什么", "有什么作用"]. A part only
    has to carry the words that tell it from the others: the question's shared words
    ("区别") still count for every unit.
    """
    return _split(question)[0]


def _split(question: str) -> tuple[list[str], bool]:
    """The parts, and whether they divide between the things the question names (not its clauses)."""
    parts = [p.strip() for p in _CLAUSES.split(question) if len(p.strip()) >= _MIN_PART_CHARS]
    if len(parts) >= 2:
        parts = _asking(parts)
        if len(parts) < 2:  # clauses that ask one thing: no two-part question, nor two things named
            return [], False
    things = len(parts) < 2
    if things:
        parts = [p.strip() for p in _BETWEEN_THINGS.split(question) if len(p.strip()) >= _MIN_PART_CHARS]
    return (parts[:_MAX_PARTS], things) if len(parts) >= 2 else ([], False)


def _asking(clauses: Sequence[str]) -> list[str]:
    """The clauses that ask, each with the clauses before it that ask nothing (the last ones,
    asking nothing, go with the clause before them)."""
    asking: list[str] = []
    scene: list[str] = []
    for clause in clauses:
        scene.append(clause)
        if _ASKS.search(clause):
            asking.append(" ".join(scene))
            scene = []
    if scene and asking:
        asking[-1] = " ".join([asking[-1], *scene])
    return asking or [" ".join(scene)]


def side_by_side(question: str) -> bool:
    """Does ``question`` name things and ask what each is, or how they differ ("A 和 B 的区别")?"""
    parts, things = _split(question)
    return things and bool(_SIDE_BY_SIDE.search(question))


def comparison_terms(question: str, terms: Iterable[str]) -> set[str]:
    """Of ``terms`` (the question's), the words asking to set its things side by side ("区别", "不同",
    "differ"), for a question that does: they say what kind of answer is wanted, not what it is
    about ("AdapterFusion 和 AdapterDrop 的思路有什么不同": a unit saying "适应不同任务" is no closer)."""
    return {t for t in terms if _SIDE_BY_SIDE.fullmatch(t)} if side_by_side(question) else set()


def part_terms(question: str, terms_of: Callable[[str], set[str]]) -> list[set[str]]:
    """For each part of ``question``, the words that tell it from the other parts ([] for a
    question that asks one thing; a part with no such word is left out).

    What tells two things apart is the thing each names, not an aspect word the parts share in
    meaning ("AdapterFusion 和 AdapterDrop 的思路有什么不同": "思路" is asked of both, though only the
    second part holds it). Where a part names no thing of its own, the aspect it asks about is
    what tells it ("朴素模型并行是怎么切分的，它有什么缺点": "缺点")."""
    parts = [terms_of(p) for p in question_parts(question)]
    found: list[set[str]] = []
    for k, own in enumerate(parts):
        distinct = own - set().union(*(p for j, p in enumerate(parts) if j != k))
        things = distinct - ASPECT_WORDS
        if distinct:
            found.append(things or distinct)
    return found


def part_picks(question: str, scored: Sequence[Unit], terms: Sequence[set[str]], said: Sequence[set[str]],
               order: Sequence[int], score: np.ndarray, *, terms_of: Callable[[str], set[str]], floor: float,
               per_part: int) -> list[int]:
    """For a question that asks two things, the best ``per_part`` units of each part the units cover:
    the best-scored units (``order``) at or above ``floor`` holding a word that tells that part from
    the others (``terms``: each unit's words, with its heading's and its list lead's; those saying it
    in their own words or their lead's, ``said``, first; for things set side by side, those naming
    no other part's thing before them). Each part in turn: its best unit, then its second best, …
    (one part does not take the room)."""
    ranked = []
    parts = part_terms(question, terms_of)
    alone = side_by_side(question)
    for k, distinct in enumerate(parts):
        others = set().union(*(p for j, p in enumerate(parts) if j != k))

        def tier(i: int) -> int:
            # A unit that says the part's word itself (or under a list lead that does) before one
            # that only sits under a heading saying it: a note's heading that repeats a two-part
            # question ("是否了解triple loss,以及它的功能是什么") puts "功能" over every unit of the
            # section. For things set side by side, what is said of this thing alone comes first:
            # "TPOT 指的是第二个token开始的吐出速度", not the formula naming TTFT and TPOT together.
            if not distinct & said[i]:
                return 2
            return 1 if alone and others & said[i] else 0

        holding = [i for i in order if distinct & terms[i] and score[i] >= floor]
        ranked.append(sorted(holding, key=tier)[:per_part])  # stable: by score inside a tier
    # A part's sentence comes with the next one when that one points back: "Prefix Tuning的一个关键
    #优势是它的参数效率。" says what the advantage is only with "它只需要更新一小部分参数…".
    return with_continuations([r[k] for k in range(per_part) for r in ranked if k < len(r)], scored)


def with_continuations(picks: Sequence[int], scored: Sequence[Unit]) -> list[int]:
    """``picks``, each sentence followed by the next one of its passage when that one points back."""
    at = {(u.n, u.order): i for i, u in enumerate(scored)}
    out: list[int] = []
    for i in picks:
        out.append(i)
        u = scored[i]
        j = at.get((u.n, u.order + 1))
        if j is not None and goes_on_from(scored[j], u):
            out.append(j)
    return out


def goes_on_from(unit: Unit, before: Unit) -> bool:
    """Is ``unit`` the sentence right after sentence ``before`` in its passage, pointing back at it
    ("Prefix Tuning的一个关键优势是它的参数效率。" then "它只需要更新一小部分参数…")?"""
    return (unit.kind == before.kind == "sentence" and unit.n == before.n and unit.order == before.order + 1
            and points_back(unit.text))
