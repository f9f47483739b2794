"""Passages that are mostly code, and questions that ask about code.

A question that is not about code is seldom answered by a passage of code, yet such passages
match its words (an English question's "attention", "softmax" are the identifiers of an
attention class) and its meaning (a class named after the concept). Retrieval ranks a passage
whose units are mostly code (``CODE_HEAVY_SHARE`` of its characters, rag/reading/units.py) lower
for such a question, as it ranks boilerplate lower; the extractive answer leaves code lines out
of it (rag/answer/extractive.py). ``asks_code`` decides, for both.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from rag.core.text import FENCE
from rag.reading.chunking import Chunk
from rag.reading.units import STATING, split_units

__all__ = ["asks_code", "code_heavy_mask", "CODE_HEAVY_SHARE"]

# Words that ask about code, and identifiers as code spells them (snake_case, CamelCase, a call).
# Generous on purpose: a question wrongly read as about code is answered as before round 4 (lines
# of code ranked like any unit); one wrongly read as not about code loses its code.
_CODE_QUESTION = re.compile(r"代码|源码|构造函数|函数签名|怎么写|写法|实现|示例|例子|程序|编程|语法|接口|命令|脚本|"
                            r"(?i:\bcode\b|\bforward\b|\bclass\b|\bdef\b|\bfunction\b|\bmethod\b|\bimplement\w*|"
                            r"\bwrite\b|\bexample\b|\bsnippet\b|\bsyntax\b|\bscript\b|\bcommand\b|\bapi\b|\bsql\b)|"
                            r"\b[a-z]+_[a-z_]+\b|\b[A-Z][a-z]+[A-Z][a-z]+\w*\b|\w\.\w+\(")
# A passage is code when this share of its answer units' characters is code lines: a class or a
# function with a comment or two, not prose with a snippet.
CODE_HEAVY_SHARE = 0.6


def asks_code(question: str) -> bool:
    """Does ``question`` (with a follow-up's earlier question) ask about code? Model names spelt in
    CamelCase ("AdapterDrop") count too: such a question is answered as before, lines of code included."""
    return bool(_CODE_QUESTION.search(question))


def _fenced_chars(text: str) -> int:
    """Characters of the lines inside fenced code blocks (```, ~~~), which are not answer units."""
    inside, chars = False, 0
    for line in text.split("\n"):
        if FENCE.match(line):
            inside = not inside
        elif inside:
            chars += len(line.strip())
    return chars


def code_heavy_mask(chunks: Sequence[Chunk]) -> np.ndarray:
    """True for passages that are mostly code: fenced blocks and the lines the unit reader takes
    for code, against its sentences, items and rows."""
    mask = np.zeros(len(chunks), dtype=bool)
    for i, chunk in enumerate(chunks):
        units = [u for u in split_units(0, chunk.text) if u.kind in STATING]
        code = _fenced_chars(chunk.text) + sum(len(u.text) for u in units if u.kind == "code")
        total = code + sum(len(u.text) for u in units if u.kind != "code")
        mask[i] = total > 0 and code >= CODE_HEAVY_SHARE * total
    return mask
