"""Which unit an extractive answer opens with: the most direct answer to the question.

``first_unit`` takes the best unit by its own score (rag/answer/extractive.py), unless:

* a definition question (是什么, "what is") has a sentence that defines ("…是一种…", "…是指…") scoring
  ``DEFINING_SHARE`` of the best: that one (a lower one defines something else);
* a question asking for a list (有哪些, "what are") has a list item scoring ``LIST_FIRST_SHARE`` of the best
  unit that is no item: that item, shown under its lead;
* the best unit opens by pointing back or going on ("它提醒我们，…", "因此,…", "我们看看…") and one that
  stands alone scores ``FIRST_LINE_SHARE`` of it: that one.

Invariant: the unit returned is one of ``scored``; no rule names a note, heading or question.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from rag.answer.asking import DEFINING, Intent
from rag.answer.two_part import points_back
from rag.reading.units import Unit

__all__ = ["DEFINING_SHARE", "FIRST_LINE_SHARE", "LIST_FIRST_SHARE", "first_unit"]

# A definition question opens with a defining sentence ("…是一种…") only when it scores at least this
# share of the best unit: one lower defines something else ("GQA-G是指…" beside GQA; "GGUF…是一种…文件
# 格式" for "文件名里的Q4_K_M是什么意思"). Chosen on dev-md (0.45 / 0.6 / 0.7 / 0.8: 0.769 / 0.774 / 0.774 /
# 0.774), checked on dev (0.859 at all) and the check sets (unchanged). Round 13, by the share of
# answers whose first claim holds a gold phrase (coverage the same on every set from 0.6 to 0.9): dev-md
# 0.400 at 0.6 and 0.7, 0.414 at 0.75, 0.8 and 0.9 ("作者给普通开发者的建议是什么？" no longer opens with
# "…将是一个几乎没有开发成本的工作"); dev 0.460 at all; 0.8 is inside the plateau.
DEFINING_SHARE = 0.8
# The first line may not open by pointing back ("它提醒我们，…") when a unit that stands alone scores
# at least this share of it. dev-md answers opening so: 11 of 70 without, 6 at 0.9 and 0.8, 5 at 0.7
# (the rest are leads of the best item: "它通常涉及到以下几个方面："); coverage unchanged on every set.
FIRST_LINE_SHARE = 0.9
# A question asking for a list ("Adam算法有哪些主要特点？") opens with the best list item, under its lead,
# when that item scores at least this share of the best unit (a sentence praising Adam scored higher).
# First claim holding a gold phrase, dev / dev-md (bench/answer_quality.py; 0.440 / 0.371 without): 0.460 /
# 0.400 at 0.7, 0.8 and 0.85, 0.440 / 0.386 at 0.9, 0.440 / 0.386 at 0.95; coverage unchanged on every
# set from 0.85 up, while 0.7 and 0.8 cost check_md_blind 0.665 -> 0.637. Round 13 of bench/README.md.
LIST_FIRST_SHARE = 0.85

# A sentence that goes on from the one before ("因此,…", "但是…") or announces what comes next ("我们看看
# deepseek v2中是怎么解这个问题的。") says nothing standing first.
_CONTINUES = re.compile(r"^\s*(?:因此|所以|于是|而且|此外|另外|同时|也就是说|换句话说|"
                        r"(?:我们|下面|接下来|让我们)(?:再|就|来)?(?:看看|看一下|来看|介绍|讨论|聊聊))")


def _leans_on_before(text: str) -> bool:
    return points_back(text) or _CONTINUES.match(text) is not None


def first_unit(scored: Sequence[Unit], score: np.ndarray, intent: Intent) -> int:
    """The unit the answer opens with: the best by its own score (the passage gap only orders the
    rest: the section retrieval ranked first, under the asked heading "Drawbacks", may share fewer
    of the question's words than the note's introduction, yet it holds the answer)."""
    first = int(np.argmax(score))
    if intent == "definition":
        # A sentence that defines something else ("GQA-G是指…" in a neighbouring passage) is no
        # definition of what is asked: it must score DEFINING_SHARE of the best.
        defining = [i for i, u in enumerate(scored) if u.kind == "sentence" and DEFINING.search(u.text)
                    and score[i] >= DEFINING_SHARE * float(score.max())]
        if defining:
            first = max(defining, key=lambda i: score[i])
    elif intent == "list" and LIST_FIRST_SHARE and scored[first].kind not in ("item", "row"):
        items = [i for i, u in enumerate(scored) if u.kind == "item" and score[i] >= LIST_FIRST_SHARE * score[first]]
        if items:
            first = max(items, key=lambda i: score[i])
    elif FIRST_LINE_SHARE and _leans_on_before(scored[first].text):
        # "它提醒我们，…", "因此,可以…", "我们看看…是怎么解这个问题的。" open an answer pointing at
        # nothing: a unit that stands on its own comes first when it scores nearly as well.
        standing = [i for i, u in enumerate(scored) if not _leans_on_before(u.text)
                    and score[i] >= FIRST_LINE_SHARE * score[first]]
        if standing:
            first = max(standing, key=lambda i: score[i])
    return first
