"""The answer without a language model: the notes' own sentences that answer the question.

``extract_answer`` takes the numbered passages retrieval returned (after follow-up
resolution) and picks, within a character budget, the sentences, list items and table
rows that answer the question, in the notes' reading order, each followed by ``[n]``.

How a unit is chosen (no rule names a note, heading or question):

* every passage is cut into units: a list item, table row or unfenced code line is one
  unit, wrapped lines of a paragraph are joined and cut into sentences; headings, fenced
  code, images and pieces that carry citation-like ``[3]`` marks of their own are left
  out; a line ending in a colon (or a table's header row) is kept only to introduce the
  items chosen after it;
* each unit is scored by what it shares with the question (the keyword tokens of
  ``rag.bm25.tokenize``, with and without its section heading's words) and by its
  passage's rank (the first passage, and other pieces of its section, first); optionally
  by meaning (``Settings.extractive_semantic``: the already-loaded embedder, two batched
  calls; off by default: ~40 ms a sentence on a 2-core laptop and no gain on dev.jsonl);
* a question that asks for a list (有哪些、优缺点、步骤、区别, "what are", "steps",
  "difference") favours list items and table rows; a definition question
  (是什么, "what is") puts the sentence that defines the term first;
* the best units are taken until the budget is spent, then shown in reading order.

Invariant, checked by bench/answer_quality.py and the tests: the text before every
``[n]`` (without the ``- `` a list item is shown with, or the backticks around a line of
code) is, whitespace aside, a verbatim piece of passage ``n``, so every citation points
at a passage that says what it follows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

import numpy as np

from .bm25 import STOPWORDS, tokenize
from .prompting import Source
from .text import FENCE, HAN_BASIC_CHAR

__all__ = ["ExtractiveAnswer", "Unit", "extract_answer", "question_intent", "split_units"]

Intent = Literal["list", "definition", "other"]
UnitKind = Literal["sentence", "item", "row", "lead", "code"]

# --- parameters (chosen on bench/data/dev.jsonl with bench/answer_quality.py, checked on dev-md) ---
# Passages read for candidates. Reading five instead gave 0.758 instead of 0.765 on dev.jsonl:
# the fourth and fifth passages add more wrong sentences than right ones. Since retrieval ranks
# hub passages down (rag/hubness.py), bench/answer_quality.py gives dev-md / dev coverage 0.605 /
# 0.738 reading 1, 0.614 / 0.755 reading 2, 0.602 / 0.745 reading 3, 0.602 / 0.735 reading 4.
PASSAGES_READ = 2
# Candidates scored per question: bounds the time on top of retrieval.
MAX_CANDIDATES = 120
# A unit longer than this is cut at a clause end (，；,;) before it; a sentence this long
# is usually several claims run together.
MAX_UNIT_CHARS = 220
# Units shorter than this say nothing alone.
MIN_UNIT_CHARS = 6
# A line ending in a colon ("缺点：", "以下是几种常用的方法：") introduces what follows: it is
# shown only before a unit it introduces, never for its own words (it repeats the question's).
MAX_LEAD_CHARS = 80
# Weight of a term only the earlier turn of a follow-up has, against one of the question's own.
CONTEXT_WEIGHT = 0.25
# Share of the keyword score earned with the words of the unit's section heading added.
HEADING_SHARE = 0.5
# Weights of the score's parts: keyword overlap, meaning, the passage's rank.
LEXICAL_WEIGHT = 1.0
SEMANTIC_WEIGHT = 1.0
RANK_WEIGHT = 1.0
# Bonus for a list item / table row when the question asks for a list.
LIST_BONUS = 0.25
# A unit outside the matched passage of a hit read as a whole section ranks as if its
# passage were this much further down; units are matched on their first characters.
OUT_OF_FOCUS = 0.5
FOCUS_PROBE_CHARS = 24
# Bonus for the first sentences of a passage: notes state the point before the detail.
LEAD_BONUS = 0.1
# A unit is kept only when its score reaches this share of the best unit's...
MIN_RELATIVE_SCORE = 0.45
# ...or, while the answer is shorter than this share of the budget, this lower share.
SHORT_RELATIVE_SCORE = 0.3
SHORT_ANSWER_SHARE = 0.7

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
_DEFINING = re.compile(r"是指|指的是|是一种|是一个|是一类|定义为|称为|即|\bis an?\b|\brefers to\b|\bis the\b|\bmeans\b",
                       re.IGNORECASE)

_ITEM = re.compile(r"^\s*(?:[-*+](?=\s)|[•·▪●○◦]|\d{1,2}[.、)）](?!\d)|[（(]\d{1,2}[)）]|[一二三四五六七八九十]+[、.])\s*")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
# A unit must not carry "[3]" of its own: it would read as one of our citations.
_OWN_CITATION = re.compile(r"[\[【]\s*\d{1,3}\s*[\]】]")
# Sentence ends; not "；"/";", which join the parts of one statement ("…penalised; b = 0.75 is…").
_SENTENCE = re.compile(r".+?(?:[。！？!?]+[”’\"')）]*|\.(?=\s|$)|$)", re.S)
_CLAUSE_END = re.compile(r"[，,；;：:、]")
# A line of code pasted into a note without a fence (common in .txt notes): a statement,
# not prose. Such lines are kept one by one, never run together into a "paragraph".
_CODE_LINE = re.compile(
    r"^(?:def |class |import |from [\w.]+ import |return\b|@\w|if __name__|for \w+(?:, ?\w+)* in |while |with |"
    r"try:|except\b|elif |else:|print\(|super\()|^[\w.\[\]]+\s*[+\-*/]?=\s*(?:\S|\S.*[^.。])$|[{};(]$|^[)\]}]"
)


class EmbedderLike(Protocol):
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Unit:
    """One piece of a passage that can stand in an answer: verbatim text of passage ``n``."""

    n: int  # the passage's citation number
    order: int  # position in the passage (reading order)
    text: str
    kind: UnitKind
    depth: int = 0  # nesting of a list item (0: top level), kept when it is shown
    title: str = ""  # the heading line above it inside the passage ("" : the passage's own)


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str  # the answer: units in reading order, "[n]" after each
    cited: list[int]  # passage numbers used, in order of first use
    units: list[Unit] = field(default_factory=list)
    intent: Intent = "other"


def question_intent(question: str) -> Intent:
    if _LIST_QUESTION.search(question):
        return "list"
    if _DEFINITION_QUESTION.search(question):
        return "definition"
    return "other"


def _cut_long(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, ended at the last clause end before it."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _CLAUSE_END.finditer(head)]
    if ends and ends[-1] >= limit // 2:
        return head[: ends[-1]]
    return head


def _join(a: str, b: str) -> str:
    """Two wrapped lines of one paragraph: a space between Latin words, none in Chinese."""
    if not a:
        return b
    return a + ("" if HAN_BASIC_CHAR.match(a[-1]) or HAN_BASIC_CHAR.match(b[0]) else " ") + b


# A passage begins with its section's heading line, and a merged passage holds its
# subsections' headings: a short line standing alone, not ending like a sentence.
TITLE_MAX_CHARS = 40
_SENTENCE_END_CHARS = tuple("。.！!？?；;：:，,")


def _title_line(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    alone = (i == 0 or not lines[i - 1].strip()) and (i + 1 >= len(lines) or not lines[i + 1].strip())
    bullet = line[:1] in "-*+•·▪●○◦"  # a bullet alone is a list item; a number alone ("2. 应用") a heading
    return alone and len(line) <= TITLE_MAX_CHARS and not line.endswith(_SENTENCE_END_CHARS) \
        and not bullet and not line.startswith("|")


def _blocks(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, indent) blocks of a passage: "para" (wrapped lines joined), "item" (with
    its indented continuation lines), "row"; headings, code, table rules and images left out."""
    blocks: list[tuple[str, str, int]] = []
    in_code = False
    lines = text.split("\n")
    for i, raw in enumerate(lines):
        if FENCE.match(raw):
            in_code = not in_code
            continue
        line = raw.strip()
        if not in_code and _TABLE_RULE.match(line) and blocks and blocks[-1][0] == "row":
            blocks[-1] = ("header", blocks[-1][1], 0)  # the row above a table's rule names its columns
            continue
        if not in_code and (_HEADING.match(raw) or (line and _title_line(lines, i))):
            blocks.append(("title", _ITEM.sub("", line.lstrip("#").strip(), count=1), 0))  # never a unit
            continue
        if in_code or not line or _TABLE_RULE.match(line) or _IMAGE.fullmatch(line):
            # A paragraph ends here; an item ends too, unless this is a blank line inside it.
            if blocks and blocks[-1][0] != "break" and (line or blocks[-1][0] == "para"):
                blocks.append(("break", "", 0))
            continue
        if line.startswith("|"):
            blocks.append(("row", line.strip("|").strip(), 0))
            continue
        if not HAN_BASIC_CHAR.search(line) and _CODE_LINE.search(line):
            blocks.append(("code", line, 0))
            continue
        marker = _ITEM.match(line)
        indent = len(raw) - len(raw.lstrip())
        if marker and marker.end() < len(line):
            blocks.append(("item", line[marker.end():].strip(), indent))
        elif blocks and (blocks[-1][0] == "para" or (blocks[-1][0] == "item" and raw[:1].isspace())):
            kind, before, at = blocks[-1]
            blocks[-1] = (kind, _join(before, line), at)
        else:
            blocks.append(("para", line, 0))
    return [b for b in blocks if b[0] != "break" and b[1]]


def split_units(n: int, text: str) -> list[Unit]:
    """Passage ``text`` as units in reading order (see the module docstring for what is left out)."""
    units: list[Unit] = []
    blocks = _blocks(text)
    indents = sorted({at for kind, _, at in blocks if kind == "item"})

    title = ""

    def add(text: str, kind: UnitKind, depth: int = 0) -> None:
        if text and not _OWN_CITATION.search(text) and "![" not in text:
            units.append(Unit(n, len(units), text, kind, depth, title))

    for block, text, indent in blocks:
        if block == "title":
            title = text
            continue
        if block in ("row", "code"):
            add(text, block)
            continue
        if block == "header":  # shown above the rows chosen from its table, never alone
            add(text, "lead")
            continue
        depth = indents.index(indent) if block == "item" else 0
        if block == "item" and len(text) <= MAX_UNIT_CHARS:
            add(text, "item", depth)
            continue
        kind: UnitKind = "item" if block == "item" else "sentence"  # a long item: its sentences, as items
        for m in _SENTENCE.finditer(text):
            sentence = m.group(0).strip()
            if sentence.endswith((":", "：")) and len(sentence) <= MAX_LEAD_CHARS:
                add(sentence, "lead")
            elif len(sentence) >= MIN_UNIT_CHARS:
                add(_cut_long(sentence, MAX_UNIT_CHARS), kind, depth)
    return units


def _terms(text: str) -> set[str]:
    return {t for t in tokenize(text) if t not in STOPWORDS and (len(t) >= 2 or not HAN_BASIC_CHAR.match(t))}


def _term_weights(question: str, context: str) -> dict[str, float]:
    """Question terms weigh by length (a longer term is more specific); terms only the
    earlier turn has weigh ``CONTEXT_WEIGHT`` as much: they name the subject, the
    follow-up's own words ("缺点") say what is asked about it."""
    own = _terms(question)
    weights = {t: float(min(len(t), 4)) for t in own}
    for t in _terms(context) - own:
        weights[t] = CONTEXT_WEIGHT * min(len(t), 4)
    return weights


def _lexical(weights: dict[str, float], unit_terms: set[str]) -> float:
    """Weighted share of the question's terms the unit contains."""
    total = sum(weights.values())
    if not total:
        return 0.0
    return sum(w for t, w in weights.items() if t in unit_terms) / total


def extract_answer(
    question: str,
    sources: Sequence[Source],
    *,
    budget_chars: int,
    embedder: EmbedderLike | None = None,
    context: str = "",
) -> ExtractiveAnswer:
    """The best units of ``sources`` for ``question`` within ``budget_chars`` characters of text.

    ``context`` is what a follow-up refers to (the earlier question): it joins the
    question for scoring, so "那它的缺点呢？" is scored as a question about the earlier subject.
    """
    intent = question_intent(question)
    candidates: list[Unit] = []
    for source in sources[:PASSAGES_READ]:
        candidates += split_units(source.n, source.hit.text)
    candidates = [u for u in candidates if u.kind != "lead"] [:MAX_CANDIDATES] + [
        u for u in candidates if u.kind == "lead"]
    scored = [u for u in candidates if u.kind != "lead"]
    if not scored:
        return ExtractiveAnswer("", [], [], intent)

    query = f"{question} {context}".strip()
    q_terms = _term_weights(question, context)
    # A unit is about what its section's heading says: "掩码机制:…" under "MAM Adapter 思路"
    # answers a question about MAM Adapter's idea without naming it.
    heading_terms = {s.n: _terms(s.hit.heading.rsplit(" > ", 1)[-1]) for s in sources[:PASSAGES_READ]}
    lexical = np.array([
        (1 - HEADING_SHARE) * _lexical(q_terms, _terms(u.text))
        + HEADING_SHARE * _lexical(q_terms, _terms(u.text) | (_terms(u.title) if u.title else heading_terms[u.n]))
        for u in scored
    ])
    semantic = np.zeros(len(scored))
    if embedder is not None:
        q_vec = embedder.embed_queries([query])[0]
        semantic = embedder.embed_passages([u.text for u in scored]) @ q_vec
        # Only the differences between candidates matter: every sentence of a retrieved
        # passage is somewhat similar to the question.
        spread = float(semantic.max() - semantic.min())
        semantic = (semantic - semantic.min()) / spread if spread > 1e-6 else np.zeros(len(scored))
    # The passage retrieval ranked first, and any other piece of the same section, come first.
    top = sources[0].hit
    same_section = {s.n for s in sources if s.hit.source == top.source and s.hit.heading == top.heading}
    # Inside a hit read as a whole section, the passage that matched comes first. Not for a
    # follow-up: what matched there is the earlier turns' subject, not what is asked about it.
    focus = {s.n: re.sub(r"\s+", "", s.hit.focus) for s in sources[:PASSAGES_READ]
             if getattr(s.hit, "focus", "") and not context}
    in_focus = [u.n not in focus or re.sub(r"\s+", "", u.text)[:FOCUS_PROBE_CHARS] in focus[u.n] for u in scored]
    rank = np.array([(1.0 if u.n in same_section else 1.0 / u.n) * (1.0 if inside else OUT_OF_FOCUS)
                     for u, inside in zip(scored, in_focus)])
    score = LEXICAL_WEIGHT * lexical + SEMANTIC_WEIGHT * semantic + RANK_WEIGHT * rank
    for i, u in enumerate(scored):
        if intent == "list" and u.kind in ("item", "row"):
            score[i] += LIST_BONUS
        if u.order <= 1:
            score[i] += LEAD_BONUS

    first: Unit | None = None
    if intent == "definition":
        defining = [i for i, u in enumerate(scored) if u.kind == "sentence" and _DEFINING.search(u.text)]
        if defining:
            first = scored[max(defining, key=lambda i: score[i])]

    chosen: list[Unit] = [first] if first else []
    used = _shown_len(first) if first else 0
    order = np.argsort(-score, kind="stable")
    # Then the best units above the floor; a short answer reaches a little lower.
    for share, up_to in ((MIN_RELATIVE_SCORE, budget_chars), (SHORT_RELATIVE_SCORE, SHORT_ANSWER_SHARE * budget_chars)):
        floor = share * float(score.max())
        for i in order:
            u = scored[int(i)]
            if u in chosen or score[i] < floor or used >= up_to:
                continue
            if used + _shown_len(u) > budget_chars:
                if chosen:
                    continue
                u = Unit(u.n, u.order, _cut_long(u.text, budget_chars), u.kind, u.depth)
            chosen.append(u)
            used += _shown_len(u)
    # A list item shown without the line that introduces it ("缺点：") loses its meaning.
    at = {(u.n, u.order): u for u in candidates}
    for u in list(chosen):
        before = at.get((u.n, u.order - 1))
        while before is not None and before.kind in ("item", "row"):
            before = at.get((before.n, before.order - 1))
        if before is not None and before.kind == "lead" and before not in chosen \
                and used + _shown_len(before) <= budget_chars:
            chosen.append(before)
            used += _shown_len(before)

    ordered = sorted(chosen, key=lambda u: (u is not first, u.n, u.order))
    return ExtractiveAnswer(_render(ordered), list(dict.fromkeys(u.n for u in ordered)), ordered, intent)


def _shown_len(u: Unit) -> int:
    """Characters ``u`` takes in the answer, citation aside: its text and its list mark."""
    if u.kind in ("item", "row"):
        return len(u.text) + 3 + 2 * u.depth  # "- " and the line break
    if u.kind == "code":
        return len(u.text) + 3  # backticks and the line break
    return len(u.text) + 1


def _render(units: Sequence[Unit]) -> str:
    """Sentences of one passage run on as a paragraph; items and rows are list lines."""
    lines: list[str] = []
    paragraph: list[str] = []
    last_n = None
    depths: dict[int, int] = {}  # depth of the last item shown, per passage
    rows = {(u.n, u.order - 1) for u in units if u.kind == "row"}

    def at_table_header(u: Unit) -> bool:
        return (u.n, u.order) in rows and "|" in u.text

    def close() -> None:
        if paragraph:
            text = paragraph[0]
            for sentence in paragraph[1:]:
                text = _join(text, sentence)
            lines.append(text)
            paragraph.clear()

    for u in units:
        if u.n != last_n:
            close()
        last_n = u.n
        if u.kind in ("item", "row"):
            close()
            # Nesting is kept only under a shown parent: an orphan sub-item becomes top level.
            depth = min(u.depth, depths.get(u.n, -1) + 1)
            depths[u.n] = depth
            lines.append(f"{'  ' * depth}- {u.text} [{u.n}]")
        elif u.kind == "lead":
            close()
            lines.append(f"- {u.text}" if at_table_header(u) else u.text)
        elif u.kind == "code":
            close()
            lines.append(f"`{u.text}` [{u.n}]")
        else:
            paragraph.append(f"{u.text} [{u.n}]")
    close()
    return "\n".join(lines)
