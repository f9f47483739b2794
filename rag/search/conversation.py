"""Conversation turns, and resolving elliptical follow-ups without an LLM."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        role = d.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"history role must be 'user' or 'assistant', got {role!r}")
        return cls(role, str(d.get("content", "")))


# Words that point back at something said earlier, and openers that continue a thread.
# 其, 它 and 此 point back only as words of their own, not inside 其实, 尤其, 极其, 其它, 其他,
# 彼此, 因此, 如此 ("其实 LoRA 的秩怎么选？" is a complete question).
_ANAPHORA = re.compile(
    r"(?<!其)它|(?<![尤极与])其(?![实他它余次])|这个|那个|这种|那种|这些|那些|这么|这样|那样|该方法|该模型|(?<![因如彼从])此|上述|前者|后者|两者|这部分|这段|里面|"
    r"\b(it|its|they|them|their|this|that|these|those|the former|the latter)\b",
    re.IGNORECASE,
)
_CONTINUATION = re.compile(r"^\s*(那(?![个篇种些段])|那么|还有|另外|以及|而|和|其中|and\b|but\b|what about|how about|also\b)",
                           re.IGNORECASE)
# "除了 X，…" sets the question beside X: a follow-up when X points back ("除了这部分，还建了哪些层？") or
# nothing in the question names a subject, a complete question when one does ("除了 PagedAttention，vLLM
# 还有哪些关键特性？"), like any other question.
_BESIDES = re.compile(r"^\s*除了")
# "it" that points at nothing, its subject said after it: "Why is it worth studying scaling laws?",
# "It is possible to …", "is it true that …" ("Is it useful?" points back).
_DUMMY_IT = re.compile(r"\b(?:(?:is|was|isn't|wasn't)\s+it|it\s+(?:is|was|'s))\s+(?:not\s+)?(?:worth|possible|"
                       r"necessary|true|better|important|hard|difficult|easy|common|useful|enough|a good idea)"
                       r"\s+(?:to|that|for|\w+ing)\b", re.IGNORECASE)
# A pointer used as a determiner ("那个…的方法", "这段…代码", "那篇讲…的笔记") identifies what it
# points at by the description after it, when that description is long enough and names a
# subject: "那个在参数更新里把过去的梯度也带上的方法" is a complete question, "那个模型呢" is not.
_DETERMINER = re.compile(r"这个|那个|这种|那种|这些|那些|这段|那段|这篇|那篇")
MIN_DESCRIPTION_CHARS = 8
_DESCRIPTION_END = re.compile(r"[，,。？?！!；;]")


# Words that ask, or name an aspect of a subject, without naming the subject: "它的优点是什么"
# and "优缺点呢" name none, "LoRA 的优点" names LoRA.
_NOT_A_SUBJECT = frozenset(
    "了解 知道 说 说说 讲 讲讲 介绍 请问 一下 是 有 吗 呢 为何 怎么样 哪 哪里 最后 之间 以后 之后 之前 然后 还要 "
    "优点 缺点 优缺点 特点 作用 功能 原理 区别 不同 思路 步骤 流程 方法 问题 局限 影响 好处 不足 应用 场景 用途 例子 "
    "代码 细节 参数 定义 含义 意思 原因 结果 过程 部分 地方 事 东西 时候 情况 方面 一轮 other else about "
    "difference differences advantage advantages disadvantage disadvantages drawback drawbacks benefit benefits "
    "pros cons purpose role idea principle method way step steps example examples problem problems reason "
    "result results process detail details definition meaning effect between among versus vs compared".split()
)


# The same words, for other modules: what a question asks about a subject, not the subject.
ASPECT_WORDS = _NOT_A_SUBJECT


def _content_words(text: str) -> Iterator[tuple[str, str]]:
    """(word, jieba part-of-speech tag) of ``text``'s words of two characters or more that are
    neither function words (the keyword index's stopwords) nor aspects (``_NOT_A_SUBJECT``)."""
    from rag.index.bm25 import STOPWORDS, tokenize

    tokenize("")  # jieba loaded once, quietly, the way the keyword index loads it
    from jieba import posseg

    for token in posseg.lcut(text):
        word = token.word.strip()
        if len(word) >= 2 and word.lower() not in STOPWORDS and word.lower() not in _NOT_A_SUBJECT:
            yield word, token.flag


def names_subject(text: str) -> bool:
    """Does ``text`` name what it is about (a noun or a term), not only ask or point?

    Nouns come from jieba's part-of-speech tags ("结果过程" are nouns, "非得加" is not); Latin
    words count unless they are function words ("why does"). Generic nouns ("问题", "过程")
    and aspects ("优缺点", "作用") name no subject.
    """
    return any(flag.startswith("n") or flag == "vn" or (flag == "eng" and word.isascii())
               for word, flag in _content_words(text))


# The subject slot of a question's own grammar: "什么是X", "解释一下X", "为什么要X", "X是什么",
# "X有哪些…", "X怎么…". Whatever fills it is what the question is about, even where the tagger
# reads a term as a verb, a time word or a suffix ("过去式越狱" = 过去/t 式/k 越狱/v, "量化"/v,
# "蒸馏"/v, "归一化"/l): names_subject alone took "什么是过去式越狱？" and "量化有什么好处？" for
# follow-ups, so after an unrelated exchange they searched the earlier topic (dev-md m022: first
# asked alone, third after another question).
_SLOT_BEFORE = re.compile(r"^(?:请问|请)?\s*(?:什么是|什么叫做?|何为|何谓|解释一下|介绍一下|讲讲|讲一下|说说|说一下|"
                          r"为什么要|为什么|为何|怎么|如何)(?P<slot>[^，,。？?！!；;]+)")
_SLOT_AFTER = re.compile(r"^(?:请问|请)?\s*(?P<slot>[^，,。？?！!；;]+?)(?:是什么|是指什么|指的是什么|是啥|是指|"
                         r"有什么|有哪些|有啥|是怎么|是如何|怎么|如何|为什么|为何)")
# Tags of words that fill a slot without naming anything: pronouns, numbers and measure words
# ("第二步"), time and place words ("最后", "之后"), distinguishing words ("整个"), adverbs
# ("到底"), adjectives ("具体"), prepositions, conjunctions, particles.
_NOT_NAMING_TAGS = ("r", "m", "q", "t", "f", "s", "b", "d", "a", "p", "c", "u", "y", "e", "o", "x", "z")


def _slot_names_subject(text: str) -> bool:
    """Does the subject slot of the question's grammar hold a word that names something?"""
    for pattern in (_SLOT_BEFORE, _SLOT_AFTER):
        match = pattern.match(text)
        if match is not None and any(not flag.startswith(_NOT_NAMING_TAGS)
                                     for _, flag in _content_words(match.group("slot"))):
            return True
    return False


def is_followup(question: str) -> bool:
    """Does the question refer back to earlier turns: "那…呢", a pronoun pointing at no
    subject the question itself named first ("它有哪些特点？", not "是否了解 triplet
    loss？它的功能是什么？"), or no subject named at all ("优缺点呢？", "整个过程是一轮就结束吗？")?"""
    text = question.strip()
    if _CONTINUATION.match(text):
        return True
    if _BESIDES.match(text):
        text = _BESIDES.sub("", text)
    pointer = _ANAPHORA.search(_DUMMY_IT.sub(lambda m: " " * len(m.group(0)), text))
    if pointer is None:
        pointer = _DETERMINER.match(text)  # "那篇…" at the start: not a continuation, but a pointer
    if pointer is not None:
        if names_subject(text[: pointer.end() - len(pointer.group(0))]):
            return False
        return not _describes(text, pointer)
    return not (names_subject(text) or _slot_names_subject(text))


def _describes(text: str, pointer: re.Match) -> bool:
    """Is ``pointer`` a determiner whose own description names what it points at?"""
    # "这样一组向量：…" describes what it points at after it, as "那个…的方法" does.
    if not (_DETERMINER.fullmatch(pointer.group(0))
            or (pointer.group(0) in ("这样", "那样") and text[pointer.end():].startswith("一"))):
        return False
    description = _DESCRIPTION_END.split(text[pointer.end():], maxsplit=1)[0].strip()
    return len(description) >= MIN_DESCRIPTION_CHARS and names_subject(description)


def followup_context(question: str, history: Sequence[Message], max_chars: int = 300) -> str:
    """The earlier turns a question may refer to, as text to search with; "" without history.

    Whether to lean on it, and how hard, is the retriever's call (see `is_followup`).

    The last user turn names the subject; the last answer often names it more precisely
    (“那是 Sentence-BERT…”), so both are used.
    """
    if not history:
        return ""
    last_user = next((m.content for m in reversed(history) if m.role == "user"), "")
    last_answer = next((m.content for m in reversed(history) if m.role == "assistant"), "")
    return f"{last_user}\n{last_answer[:max_chars]}".strip()


def trim_history(history: Sequence[Message], max_turns: int, max_chars: int) -> list[Message]:
    """The most recent turns that fit both budgets, oldest first."""
    kept: list[Message] = []
    used = 0
    for msg in reversed(history[-max_turns:] if max_turns > 0 else []):
        if used + len(msg.content) > max_chars and kept:
            break
        kept.append(Message(msg.role, msg.content[: max_chars]))
        used += len(msg.content)
    return list(reversed(kept))
