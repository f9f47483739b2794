"""Text rules shared by every stage: scripts and languages, sentence ends, citation markers,
shingles, and "is this text at all".

One definition per idea. Before this module the same rules were copied, with small
drifts, into ingest, chunking, bm25, retrieval, prompting, chat, notes, llm/base and
ui/render (issue 10). Every function here is pure and cheap; nothing reads settings.

Invariants:
- ``HAN`` is the set of Chinese characters every module means by "CJK": the unified
  ideographs with extension A (U+3400–U+9FFF) plus the compatibility ideographs
  (U+F900–U+FAFF). ``HAN_BASIC`` leaves the compatibility block out; it is what bm25,
  chunking and retrieval used, kept so they can switch without changing a single figure.
- ``shingles`` never keeps whitespace: the same passage wrapped differently gives the
  same set.
"""
from __future__ import annotations

import re
from typing import Literal

# --- scripts ----------------------------------------------------------------------------
HAN_BASIC = "\u3400-\u9fff"  # CJK unified ideographs + extension A: a character-class body
HAN = HAN_BASIC + "\uf900-\ufaff"  # + CJK compatibility ideographs
# Full-width punctuation and forms: what tokenizers also spend a token or two on.
CJK_PUNCT = "\u3000-\u303f\uff00-\uffef"

HAN_CHAR = re.compile(f"[{HAN}]")
HAN_BASIC_CHAR = re.compile(f"[{HAN_BASIC}]")  # what the chunker and extractive answers have always used
HAN_RUN = re.compile(f"[{HAN}]+")
CJK_OR_PUNCT_CHAR = re.compile(f"[{HAN}{CJK_PUNCT}]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_LATIN_RUN = re.compile(r"[A-Za-z]+")

Language = Literal["zh", "en"]


def count_han(text: str) -> int:
    """Chinese characters in ``text``."""
    return len(HAN_CHAR.findall(text))


_NOT_WORD = re.compile(r"\W+")
# The numbers a place is written with in Chinese ("第三种", "level 二"): one character each, 1 to 10.
CN_NUMBERS = "一二三四五六七八九十"


def small_number(digits: str) -> int:
    """A place's number written in digits ("2") or one Chinese numeral ("三"): 2, 3."""
    return int(digits) if digits.isdigit() else CN_NUMBERS.index(digits) + 1


def word_chars(text: str) -> str:
    """``text``'s word characters only, lowercased: how two pieces of text are told the same
    whatever their marks, links' brackets and spaces ("**相对位置编码**：" is "相对位置编码")."""
    return _NOT_WORD.sub("", text).lower()


def has_han(text: str) -> bool:
    return HAN_CHAR.search(text) is not None


def detect_language(text: str) -> Language:
    """Chinese when Chinese characters carry the text, even with English terms mixed in.

    "混合精度训练有 fp16 overflow 的问题吗" is Chinese; "What is prompt tuning, in short
    (指示微调)?" is not. A word of two or more Latin letters weighs what one Chinese character
    does and a tie goes to Chinese, so "What is prompt-tuning (指示微调)?" (4 and 4) is Chinese,
    whatever ``prompting.detect_language``'s docstring says: this is that function's rule.
    """
    cjk = count_han(text)
    words = len(_LATIN_WORD.findall(text))
    return "zh" if cjk and cjk >= words else "en"


def latin_share(text: str) -> float:
    """Share of Latin words among Latin words and Chinese characters, in [0, 1].

    A word weighs what a character does, so "投机解码（speculative decoding）是怎么加速推理的？"
    is mostly Chinese (2 words against 12 characters). The rule ``retrieval._latin_share``
    used (over ``HAN_BASIC``; the compatibility block is absent from the sample notes).
    """
    latin = len(_LATIN_RUN.findall(text))
    cjk = count_han(text)
    return latin / (latin + cjk) if latin + cjk else 0.0


def written_like_name(word: str) -> bool:
    """Is a Latin word written like a name (two capitals or a digit: "HNSW", "ALiBi", "GPT-3",
    "FP32"), not like a word of a sentence? Such a word means itself: it is looked up as written,
    never translated (rag/search/glossary.py), and one the notes never mention tells that an
    English question is not theirs (rag/search/retrieval.py)."""
    return sum(c.isupper() for c in word) >= 2 or any(c.isdigit() for c in word)


# --- sentences --------------------------------------------------------------------------
# Ends of a sentence in Chinese and English text (full-width and ASCII).
SENTENCE_END_CHARS = "。！？!?；;"
# Zero-width split points: after a sentence end, and after an English full stop that is
# followed by a capital (the space stays with the next sentence, so "".join() is lossless).
# Not before a closing quote: in 诸如“数据中的前 5 个主题是什么？”之类的查询表现不佳 the question
# mark ends the quoted words, not the sentence (it was cut into "…是什么？" and "”之类的查询…").
SENTENCE_SPLIT = re.compile(rf"(?<=[{SENTENCE_END_CHARS}])(?![”」』’])|(?<=\.)(?=\s+[A-Z])")
# A line that ends like a running sentence or clause, not like a title.
CLAUSE_END = re.compile(r"[。；;，,：:]\s*$")


def split_sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end; ``"".join(split_sentences(t)) == t``."""
    return [s for s in SENTENCE_SPLIT.split(text) if s]


def ends_sentence(line: str) -> bool:
    """Does ``line`` end a sentence (ignoring closing quotes, brackets and spaces)?"""
    stripped = line.rstrip().rstrip("\"'”’）)】]」』")
    return bool(stripped) and (stripped[-1] in SENTENCE_END_CHARS or stripped.endswith("."))


# --- citation markers ---------------------------------------------------------------------
# "[1]", "[1, 3]", "【2】", "[1，2、3]": numbers of 1-3 digits in ASCII or full-width brackets.
CITATION_NUMBERS = r"\d{1,3}(?:\s*[,，、]\s*\d{1,3})*"
CITATION_GROUP = rf"[\[【]\s*{CITATION_NUMBERS}\s*[\]】]"
# A run of groups ("[1][2]", "[1, 3]"), not preceded by an identifier or a closing bracket,
# so that code such as ``x[0]`` or ``a[i][1]`` is not taken for a citation.
CITATION_RUN = re.compile(rf"(?P<ws>[ \t]*)(?<![A-Za-z0-9_\])])(?P<run>(?:{CITATION_GROUP})+)")
# One plain "[n]" marker: what answers are asked to write.
CITATION = re.compile(r"\[(\d{1,3})\]")
_NUMBER = re.compile(r"\d+")


def cited_numbers(text: str) -> list[int]:
    """The citation numbers in ``text``, in order of first use, each once.

    Counts every group of a citation run (``[1][2]``, ``[1, 3]``, ``【2】``), never an
    index such as ``x[0]``.
    """
    seen: dict[int, None] = {}
    for m in CITATION_RUN.finditer(text):
        for n in _NUMBER.findall(m.group("run")):
            seen.setdefault(int(n), None)
    return list(seen)


def strip_citations(text: str) -> str:
    """``text`` without its citation runs (and the spaces before them)."""
    return CITATION_RUN.sub("", text)


# --- Markdown ---------------------------------------------------------------------------
FENCE = re.compile(r"^\s*(```|~~~)")  # a line that opens or closes a fenced code block


# --- shingles ---------------------------------------------------------------------------
def shingles(text: str, n: int = 5) -> set[str]:
    """Character n-grams of ``text`` with all whitespace removed.

    A text shorter than ``n`` is its own single shingle (so two short equal passages
    still overlap fully); empty text has none.
    """
    squashed = re.sub(r"\s+", "", text)
    if len(squashed) < n:
        return {squashed} if squashed else set()
    return {squashed[i : i + n] for i in range(len(squashed) - n + 1)}


def containment(a: set[str], b: set[str]) -> float:
    """Share of the smaller set found in the other: 1.0 when one contains the other."""
    return len(a & b) / max(min(len(a), len(b)), 1)


# --- text or not --------------------------------------------------------------------------
# Measured on the sample notes: real notes have no control characters besides tab and
# form feed; binary data decoded as a legacy encoding has several per hundred.
MAX_CONTROL_SHARE = 0.01


def looks_like_text(text: str) -> bool:
    """Non-blank, and control characters (other than tab, newlines and form feed) under 1%."""
    if not text.strip():
        return False
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return control / len(text) < MAX_CONTROL_SHARE
