"""Words a question asks about an aspect with, and the words notes say it with.

"有什么兜底的办法？" is answered under "解决方案：", "有哪些特点" by a list of 特性: the aspect a
question names (办法, 特点, 缺点, 例子…) is written in the notes with one of a few near-synonyms.
``aspect_glosses`` gives, for each aspect word of a question, the other words of its group; the
extractive answer (rag/answer/extractive.py) counts a unit holding one of them as holding the
question's word, the way an English word counts through its Chinese glosses (rag/search/glossary.py).

Invariant: glossing only adds alternatives to the question's own aspect words; no group names a note,
heading or question. The groups are common Chinese usage, not read from any corpus.

Measured with bench/answer_quality.py (round 11 of bench/README.md): dev.jsonl and dev-md unchanged
(0.859 / 0.781), check two-part (sample notes) 0.781 -> 0.812, check_md_blind 0.607 -> 0.621. Groups
left out: 特征 beside 特点 (in ML notes 特征 is "feature": dev 0.859 -> 0.839, d030 0/2) and 作用/功能/用途
(every "发挥着重要作用" then answered "它的功能是什么": dev 0.846, d002 1/3) cost dev.jsonl; 原因, 步骤/流程,
区别/差异 and 原理/机制 changed no figure; 优点/优势/好处 changed no figure either but opened "那它有哪些
好处？" with "尽管…具有许多优点,但它也存在一些潜在的缺点:".
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["ASPECT_GROUPS", "aspect_glosses"]

ASPECT_GROUPS: tuple[frozenset[str], ...] = tuple(frozenset(group.split()) for group in (
    "办法 方法 方案 解决方案 解决方法 措施 策略 手段 做法 途径",
    "特点 特性",
    "缺点 不足 劣势 弊端 局限 局限性 短板",
    "例子 示例 案例 实例 举例",
))


def aspect_glosses(terms: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each of ``terms`` that names an aspect, the other words of its group."""
    out: dict[str, frozenset[str]] = {}
    for term in terms:
        for group in ASPECT_GROUPS:
            if term in group:
                out[term] = out.get(term, frozenset()) | (group - {term})
    return out
