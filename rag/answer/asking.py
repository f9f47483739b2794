"""What a question asks, read from its words: a list, a definition, a cause, a purpose.

The extractive answer (rag/answer/extractive.py) favours the units that answer that kind of
question: list items for "有哪些" / "what are", the sentence that defines the term for "是什么",
a unit stating a cause (因为、由于、使得, "because") for "为什么" / "why", and one saying what a
thing does (用于、为了, "used to") for "有什么作用" / "what is it for" / "是为了解决什么问题提出的"
(dev_sample_hard 0.797 -> 0.828: "它当初主要是为了解决什么问题提出来的？" is answered by "SBERT主要用于…");
a line of code only for a question about code (代码、构造函数, "forward", an identifier such as ``feed_forward`` or
``TransformerBlock``). No rule names a note, heading or question.
"""
from __future__ import annotations

import re
from typing import Literal

from rag.search.code_passages import asks_code

__all__ = ["CAUSAL", "DEFINING", "PURPOSE", "Intent", "asks_code", "asks_purpose", "asks_why", "question_intent"]

Intent = Literal["list", "definition", "other"]

_LIST_QUESTION = re.compile(
    r"哪些|哪几|几种|几个|优缺点|优点|缺点|优势|劣势|步骤|流程|区别|不同|差异|对比|比较|方法有|策略|措施|特点|"
    r"\bwhat are\b|\bsteps?\b|\bdifferences?\b|\bcompare\b|\bpros\b|\bcons\b|\badvantages?\b|"
    r"\bdisadvantages?\b|\bways\b|\bmethods\b|\bstrategies\b|\bkinds\b|\btypes\b|\blist\b",
    re.IGNORECASE,
)
_DEFINITION_QUESTION = re.compile(
    r"是什么|什么是|是啥|指什么|的定义|的含义|什么意思|介绍一下|\bwhat is\b|\bwhat's\b|\bdefine\b|\bdefinition\b|"
    r"\bmeaning of\b",
    re.IGNORECASE,
)
_WHY_QUESTION = re.compile(r"为什么|为何|原因|凭什么|怎么会|\bwhy\b|\bwhat causes\b|\breason", re.IGNORECASE)
CAUSAL = re.compile(r"因为|由于|所以|因此|使得|导致|造成|原因|之所以|\bbecause\b|\bsince\b|\bdue to\b|\btherefore\b|"
                    r"\bso that\b|\bcauses?\b", re.IGNORECASE)
_PURPOSE_QUESTION = re.compile(r"作用|用途|功能|目的|干什么|做什么用|有什么用|为了解决|解决(?:了)?什么问题|初衷|动机|\bwhat (?:is|are) \S+ (?:for|used)\b|"
                               r"\bpurpose\b|\brole\b", re.IGNORECASE)
PURPOSE = re.compile(r"用于|用来|为了|旨在|目的|作用是|可以|能够|\bused (?:to|for)\b|\bin order to\b|\ballows?\b|"
                     r"\bhelps?\b", re.IGNORECASE)
DEFINING = re.compile(r"是指|指的是|是一种|是一个|是一类|定义为|称为|即|\bis an?\b|\brefers to\b|\bis the\b|\bmeans\b",
                      re.IGNORECASE)


def question_intent(question: str) -> Intent:
    if _LIST_QUESTION.search(question):
        return "list"
    if _DEFINITION_QUESTION.search(question):
        return "definition"
    return "other"


def asks_why(question: str) -> bool:
    return bool(_WHY_QUESTION.search(question))


def asks_purpose(question: str) -> bool:
    return bool(_PURPOSE_QUESTION.search(question))
