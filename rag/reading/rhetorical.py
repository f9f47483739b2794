"""The statement a rhetorical question makes before it asks.

Notes often reason in questions (and a question that asserts by denying the opposite, "…不就变小了吗？",
states all of it): "如果想进一步降低KV缓存的占用，从数量上思考已经不行了，那就势必得从KV
本身思考，有没有可能每个缓存的KV都比之前小？" ends in a question mark, yet its clauses before the last
state the point. ``stated_part`` gives those clauses (verbatim, up to the last clause break) when
none of them asks; a question that asks from its first words ("为什么有了MHA，还需要MQA？") gives
nothing, and so does a short one ("5.2.2 适配器微调思路?").

Measured with bench/answer_quality.py (dev.jsonl on the sample notes, dev-md.jsonl on
LLMForEverybody): such statements as answer units raise dev-md follow-ups 0.60 -> 0.65 (overall
0.740 -> 0.748); dev.jsonl 0.851 unchanged (the sample notes hold no such sentence);
rag eval MRR unchanged (0.829 dev-md, 0.932 dev, topic switch equal to asking alone).
"""
from __future__ import annotations

import re

# Words that ask: a clause holding one is part of the question, not a statement before it
# (rag/answer/two_part.py reads the clauses of a user's question with them too).
ASKING = re.compile(
    r"什么|为何|怎么|怎样|如何|哪|吗|呢|么|是否|能否|可否|是不是|有没有|难道|多少|几[个种类次]|"
    r"\b(?:why|how|what|which|who|whom|whose|where|when|whether|is|are|do|does|did|can|could|should|would|will)\b",
    re.IGNORECASE,
)
# A question that asserts by denying the opposite ("不就…吗？", "岂不…吗？", "难道不…吗？") asks nothing: its
# last clause is the point ("那如果我把一个K/或者V矩阵拆成两个小矩阵的乘积，缓存的时候显存占用不就变小了吗？").
# 5 such sentences in both corpora; dev-md 0.774 -> 0.781 (m070), every other set unchanged.
_ASSERTS = re.compile(r"(?:不就|不也|不正|岂不|难道不)[^，,；;。！!？?]*[吗么][？?]\s*$")
# Clause breaks inside a sentence; not ":", which links hold ("https://…?id=1").
_CLAUSE_BREAK = re.compile(r"[，,；;：]")
# The statement holds at least this many clauses: a clause or two before a question are its
# condition or its topic ("如果让你开发一个智能客服，你会怎么设计？", "在中文中，似乎没有子词的概念？"). Over
# both corpora's 449 question sentences, 2 kept 51 heads (many a condition alone), 3 keeps 32, the
# statements read by hand.
MIN_CLAUSES = 3
# ...and at least this many characters.
MIN_STATED_CHARS = 12


def stated_part(sentence: str) -> str:
    """The clauses of question ``sentence`` before its asking clause, when they only state; else "".
    A question that asserts by denying the opposite ("…缓存的时候显存占用不就变小了吗？") states all of it."""
    if _ASSERTS.search(sentence):
        return sentence.strip()
    breaks = [m.start() for m in _CLAUSE_BREAK.finditer(sentence)]
    if len(breaks) < MIN_CLAUSES:
        return ""
    head = sentence[: breaks[-1]].strip()
    if len(head) < MIN_STATED_CHARS or ASKING.search(head):
        return ""
    return head
