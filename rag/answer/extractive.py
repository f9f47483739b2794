"""The answer without a language model: the notes' own sentences that answer the question.

``extract_answer`` takes the numbered passages retrieval returned (after follow-up
resolution) and picks, within a character budget, the sentences, list items and table
rows that answer the question (``rag.reading.units`` says what a unit is: never a heading, a
question or a bare label), each followed by ``[n]``.

How a unit is chosen (no rule names a note, heading or question):

* in a passage holding several numbered questions, the units under one the question does
  not ask (it shares none of its words while another matches) rank low;
* each unit is scored by what it shares with the question (the keyword tokens of
  ``rag.index.bm25.tokenize``, with and without its heading's words), by meaning (its cosine to
  the question's vector, from the unit vectors the index build stored, so English
  questions find Chinese sentences; an English question's words also count in Chinese, through
  ``rag.search.glossary``, and an aspect word in the words notes say it with, through
  ``rag.answer.aspects``), and by its passage's rank (the first passage, other pieces of its
  section and a later passage holding clearly more of the question's words, first; inside a hit
  read as a whole section, the passage that matched first);
* a question that asks two things ("A 和 B 的区别", "X 是什么，有什么作用") is cut into its
  parts, and the best units for each part the passages cover are taken before the rest, the
  parts in turn (``rag.answer.two_part``: a part's own words before a heading's, a thing set side
  by side with another by what is said of it alone, a sentence with the next one that points back;
  the word asking for the comparison, "区别", "不同", counts for no unit, and an item under a line
  naming one of the things, "Prompt-tuning:", says that thing's name itself);
* a follow-up asking about "the other one" ("那另一类呢？") is scored as a question about the thing
  the passages set beside the earlier one ("绝对位置编码和相对位置编码"), one asking about the next
  ("那下一步呢？") as a question about the name numbered next; units naming the earlier thing rank
  low, units under a line naming the asked one high (``rag.answer.siblings``);
* a question that asks for a list (有哪些、优缺点、步骤、区别, "what are", "steps") favours
  list items and table rows, and opens with an item that scores nearly as well as the best unit; a
  definition question (是什么, "what is") puts the sentence
  that defines the term first (a defining sentence that scores low defines something else); a
  why-question favours a unit stating a cause, a what-for question one saying what the thing
  does, and a line of code ranks low unless the question is about code (``rag.answer.asking``); a
  unit that only repeats the question, or the passage's own title, is never taken;
* the best units are taken until the budget is spent (``rag.answer.selection``); the best one
  is shown first (``rag.answer.opening``: one that opens by pointing back, "它…", gives way to one
  standing alone that scores nearly as well; under the lead of its list, its sibling items after it), then each
  block (a list with its lead, or a sentence) where its best unit ranks, in reading order inside
  the block; a list item is shown under the line that introduces it, never across a heading
  (``rag.answer.unit_lists``).

Invariants, checked by bench/answer_quality.py and the tests: the answer, citation
markers and list marks included, is at most ``budget_chars`` long; the text before every
``[n]`` (without the ``- `` a list item is shown with, or the backticks around a line of
code) is, whitespace aside, a verbatim piece of passage ``n``, so every citation points
at a passage that says what it follows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable, Collection, Mapping, Protocol, Sequence

import numpy as np

from rag.index.bm25 import STOPWORDS, tokenize
from rag.answer.prompting import Source
from rag.core.text import HAN_BASIC_CHAR, has_han, word_chars
from rag.answer.asking import CAUSAL, PURPOSE, Intent, asks_code, asks_purpose, asks_why, question_intent
from rag.answer.aspects import aspect_glosses
from rag.answer.siblings import named_at, strip_pointers, thing_asked
from rag.answer.two_part import comparison_terms, part_picks, question_parts, side_by_side
from rag.answer.opening import first_unit
from rag.answer.unit_lists import introducer
from rag.reading.units import ITEM, STATING, Unit, split_units, unit_key
from rag.answer.rendering import render_units
from rag.answer.selection import Scored, arrange, take_within_budget

__all__ = ["ExtractiveAnswer", "Unit", "extract_answer", "question_intent", "question_parts", "split_units"]

# The cosine of each text to the question (the question's own vector).
Similarity = Callable[[Sequence[str]], np.ndarray]

# --- parameters (chosen on bench/data/dev.jsonl with bench/answer_quality.py, checked on dev-md) ---
# Passages read for candidates. Reading five instead gave 0.758 instead of 0.765 on dev.jsonl:
# the fourth and fifth passages add more wrong sentences than right ones. Since retrieval ranks
# hub passages down (rag/index/hubness.py), bench/answer_quality.py gives dev-md / dev coverage 0.605 /
# 0.738 reading 1, 0.614 / 0.755 reading 2, 0.602 / 0.745 reading 3, 0.602 / 0.735 reading 4.
PASSAGES_READ = 3
# Candidates scored per question: bounds the time on top of retrieval.
MAX_CANDIDATES = 120
# Weight of a term only the earlier turn of a follow-up has, against one of the question's own.
# Chosen on dev-md (0 / 0.05 / 0.1 / 0.15 / 0.25 / 0.5: 0.681 / 0.681 / 0.681 / 0.674 / 0.660 /
# 0.645), checked on dev (0.756 / 0.786 / 0.790 / 0.790 / 0.790 / 0.766).
CONTEXT_WEIGHT = 0.1
# Share of the keyword score earned with the words of the unit's section heading added.
HEADING_SHARE = 0.5
# Weights of the score's parts: keyword overlap, meaning (the unit's vector against the
# question's; scaled down by how well the words already match), the passage's rank.
LEXICAL_WEIGHT = 1.0
SEMANTIC_WEIGHT = 0.5
RANK_WEIGHT = 1.0
# The same for a follow-up, against how well its own words match (not the earlier turns'):
# 0.5 / 0.75 / 1.0 / 1.25 / 2.0 gave dev 0.766 / 0.780 / 0.780 / 0.790 / 0.770 (md 0.633 /
# 0.633 / 0.640 / 0.640 / 0.648) with bench/answer_quality.py.
FOLLOWUP_SEMANTIC_WEIGHT = 1.25
# Meaning counts at least this much, however well the words match: where some unit holds every
# word of the question, several usually do (a heading's words count for all units under it), and
# meaning is what tells them apart. 0.05 / 0.1 / 0.15 / 0.2 / 0.25 / 0.3 / 0.5 gave dev 0.808 (0.798
# without) up to 0.2, then 0.808 / 0.808 / 0.796; dev-md 0.724 (0.724 without) up to 0.2, then
# 0.713 / 0.715 / 0.704 (bench/answer_quality.py, round 4 of bench/README.md); 0.1 is inside both
# plateaus.
SEMANTIC_FLOOR = 0.1
# Meaning counts within this cosine of the best unit: e5 puts every sentence of a
# retrieved passage at 0.75-0.9 to the question, so only the top of that range tells.
SEMANTIC_SPAN = 0.1
# Weight of the gap between a passage's best unit and the best passage's (words and meaning, as
# scored): 0.5 / 0.75 / 1.0 / 1.25 / 1.5 / 2.0 gave dev 0.770 / 0.770 / 0.790 / 0.790 / 0.790 /
# 0.763 (0.790 without), md 0.640 / 0.643 / 0.660 / 0.660 / 0.667 / 0.667 (0.640 without).
PASSAGE_MATCH_WEIGHT = 1.25
# Bonus for a list item / table row when the question asks for a list.
LIST_BONUS = 0.25
# A unit outside the matched passage of a hit read as a whole section ranks as if its
# passage were this much further down; units are matched on their first characters.
OUT_OF_FOCUS = 0.5
FOCUS_PROBE_CHARS = 24
# Bonus for the first sentences of a passage: notes state the point before the detail.
LEAD_BONUS = 0.1
# Units taken for each part of a two-part question, the parts in turn, before the rest. Chosen on
# dev-md (1 / 2 / 3 / 4: 0.681 / 0.688 / 0.681 / 0.681), checked on dev (0.791 / 0.791 / 0.786 / 0.781).
PART_PICKS = 2
# A later passage whose text and heading hold this much more of the question's words (weighted share)
# than the first passage's ranks as the first: retrieval's first passage is a near topic ("Top-p 采样"
# for "格式不对…有什么兜底的办法"), the later one says what is asked. Chosen on the development sets
# (0.05 / 0.1 / 0.15 / 0.2 / 0.25 / 0.3: dev 0.859 at all; dev-md 0.779 / 0.779 / 0.774 / 0.781 / 0.781 /
# 0.781; dev_md_hard 0.627 / 0.623 / 0.640 / 0.633 / 0.608 / 0.608, 0.600 without), checked on
# check_md_blind (0.642 / 0.648 / 0.648 at 0.15 / 0.2 / 0.25, 0.621 without) and check two-part md
# (0.740 -> 0.771).
COVER_MARGIN = 0.2
# Bonus, for a question asking why, for a unit that gives a cause (因为、由于、使得, "because").
# Chosen on dev-md (0 / 0.1 / 0.2 / 0.25 / 0.3 / 0.5: 0.688 / 0.688 / 0.702 / 0.702 / 0.702 / 0.695),
# checked on dev (0.791 / 0.791 / 0.791 / 0.791 / 0.791 / 0.781).
CAUSE_BONUS = 0.25
# The same for a question asking what something is for (作用、功能、有什么用, "purpose") and a unit
# saying what it does (用于、为了、可以, "used to", "allows"). Chosen on dev (0.1 / 0.2 / 0.3 / 0.4 / 0.5 /
# 0.6 / 0.75 / 1.0: 0.791 / 0.798 / 0.798 / 0.798 / 0.798 / 0.798 / 0.791 / 0.778), checked on
# dev-md (0.710 up to 0.4, 0.724 from 0.5 on); 0.5 is on dev's plateau and md's best.
PURPOSE_BONUS = 0.5
# A line of code answers only a question about code: for any other, it ranks this much lower (as
# much as the rank weight, a passage's worth). An English follow-up's vector found lines such as
# "TransformerBlock(" nearest ("Why does that happen in the first place?" was answered with 13 of
# them). 0.25 / 0.5 / 0.75 / 1.0 / 1.5 / 2.0 / 5.0 gave dev 0.808 / 0.808 / 0.828 from 0.75 on (0.808
# without), dev-md 0.724 at all (bench/answer_quality.py, round 4 of bench/README.md).
CODE_PENALTY = 1.0
# A unit is kept only when its score reaches this share of the best unit's...
MIN_RELATIVE_SCORE = 0.45
# ...or, while the answer is shorter than this share of the budget, this lower share.
SHORT_RELATIVE_SCORE = 0.3
SHORT_ANSWER_SHARE = 0.7
# A unit whose characters are mostly (this share of its character pairs) in the question
# only says the question back.
REPEATS_QUESTION = 0.8
# A passage of plain-text notes holds several numbered questions ("2. 什么是 LLMs 复读机问题?",
# "3. llama 输入句子长度理论上可以无限长吗?"). When one of them matches the question (this weighted
# share of its terms, ``TITLE_MATCH``), the units under another that shares none of its terms rank
# this much lower, so the answer no longer fills up with the neighbouring questions' answers. On
# both dev sets and the check sets coverage is unchanged at 1.0 with 0.7 (0.5: dev-md 0.762 ->
# 0.757, 0.3: 0.750, check English 0.750 -> 0.681); what changes is what fills the answer's end.
NEIGHBOUR_PENALTY = 1.0
TITLE_MATCH = 0.7
# A follow-up asking about a thing by its place ("那另一类呢？", "那下一步呢？"): units naming the earlier
# thing rank this much lower, units under a line naming the asked one this much higher; as much as a
# neighbouring question's, the one weight tried (m067, dm-26; bench/README.md round 11).
SIBLING_WEIGHT = NEIGHBOUR_PENALTY
# A line holding the note's file name (at least this long) and at most this many characters more
# names the note ("每天3分钟，彻底弄懂" + the name: 10 more in the LLMForEverybody notes); a
# shorter file name ("LoRA") is too common a word to tell a name line by.
NOTE_NAME_MIN_CHARS = 6
NOTE_NAME_EXTRA_CHARS = 12

# Words that point at a kind of thing without naming it, as 这个/那个 (keyword stopwords) point at
# one: "那重新参数化那一类呢？" asks about 重新参数化; "一类" matched every unit saying "这一类方法".
# Counted as the question's words, dev_sample_hard's follow-ups scored 0.62; left out, 0.72 (with the
# numbered-title rule of rag/reading/units.py); dev, dev-md and the check sets are unchanged.
POINTER_WORDS = frozenset("一类 这类 那类 这种 那种".split())
# What joins the parts of an English word (``tokenize`` keeps "prompt-tuning" whole and in parts).
_JOINED = re.compile(r"[-_.]+")


class EmbedderLike(Protocol):
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str  # the answer: the best unit, then the others in reading order, "[n]" after each
    cited: list[int]  # passage numbers used, in order of first use
    units: list[Unit] = field(default_factory=list)
    intent: Intent = "other"


def _terms(text: str) -> set[str]:
    found = {t for t in tokenize(text) if t not in STOPWORDS and t not in POINTER_WORDS
             and (len(t) >= 2 or not HAN_BASIC_CHAR.match(t))}
    return {t for t in found if not _spelled_apart(t, found)}


def _spelled_apart(term: str, terms: set[str]) -> bool:
    """Is ``term`` a joined word ("prompt-tuning") whose parts ``terms`` holds too? Notes write it
    "Prompt Tuning" as often: counted whole as well, it made a unit spelling it with a space lose a
    third of "指示微调（Prompt-tuning）与 Prefix-tuning 有什么区别？". A part of one letter ("p-tuning")
    keeps the whole word: "tuning" alone is not what it names."""
    parts = _JOINED.split(term)
    return len(parts) > 1 and all(len(part) > 1 and part in terms for part in parts)


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


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"\W+", "", text.lower())
    return {text[i : i + 2] for i in range(len(text) - 1)}


def _repeats(unit: str, question_bigrams: set[str]) -> bool:
    own = _bigrams(unit)
    return bool(own) and len(own & question_bigrams) >= REPEATS_QUESTION * len(own)


def _title_key(heading: str) -> str:
    return word_chars(ITEM.sub("", heading.rsplit(" > ", 1)[-1].strip(), count=1))


def _names_note(u: Unit, names: dict[int, str]) -> bool:
    """The note's own name line ("每天3分钟，彻底弄懂神经网络的优化器（九）Adam" atop
    "神经网络的优化器（九）Adam.md"): its file name with a few words around it, no sentence end."""
    name = names.get(u.n, "")
    own = re.sub(r"\s+", "", u.text).lower()
    return (len(name) >= NOTE_NAME_MIN_CHARS and name in own and len(own) <= len(name) + NOTE_NAME_EXTRA_CHARS
            and not own.endswith(("。", ".", "！", "!", "；", ";")))


def _is_title(u: Unit, titles: dict[int, str]) -> bool:
    """The passage's own section title, repeated as its first line ("2、如何用一些业务指标衡量模型的效果,…;"):
    it names the section, it says nothing ("二，KV Cache：推理阶段的工程优化" too). A numbered line that
    states a point in clauses after a colon ("2. **减少过拟合**：权重衰减是一种正则化技术，…") stays a unit even where the chunker starts a section at it."""
    if re.search(r"[:：][^:：]*[，,；;。！!]", u.text):  # a point made after the colon, in clauses
        return False
    own = word_chars(u.text)
    return bool(own) and own == titles.get(u.n)


def _neighbours(scored: Sequence[Unit], q_terms: dict[str, float], terms_of: Callable[[str], set[str]]) -> list[int]:
    """Units under a numbered question that shares none of the question's terms, in a passage
    where another numbered question matches it (``TITLE_MATCH``): a neighbouring question's answer."""
    match: dict[tuple[int, str], float] = {}
    for u in scored:
        if u.title and (u.n, u.title) not in match:
            match[(u.n, u.title)] = _lexical(q_terms, terms_of(u.title))
    asked_in = {n for (n, _), m in match.items() if m >= TITLE_MATCH}
    # A point of the asked question ("1. 操作位置与方式" under it) is no neighbour.
    return [i for i, u in enumerate(scored) if u.n in asked_in and u.title and match[(u.n, u.title)] == 0.0
            and _lexical(q_terms, terms_of(u.outer)) < TITLE_MATCH]


def _candidates(question: str, sources: Sequence[Source], template: str = "") -> tuple[list[Unit], list[Unit]]:
    """(every unit of the passages read, the ones to score): stating units, each sentence once
    (the same sentence pasted into two notes is said once), none that only says the question
    back, repeats its passage's title or is part of a template line many notes repeat (``template``:
    those lines, whitespace removed, one per line); at most ``MAX_CANDIDATES``."""
    candidates: list[Unit] = []
    for source in sources[:PASSAGES_READ]:
        candidates += split_units(source.n, source.hit.text)
    asked = _bigrams(question)
    scored: list[Unit] = []
    seen: set[str] = set()
    titles = {s.n: _title_key(s.hit.heading) for s in sources[:PASSAGES_READ]}
    names = {s.n: re.sub(r"\s+", "", PurePosixPath(s.hit.source).stem).lower() for s in sources[:PASSAGES_READ]}
    for u in candidates:
        key = unit_key(u.text)
        if (u.kind in STATING and key not in seen and not _repeats(u.text, asked) and not _is_title(u, titles)
                and not _names_note(u, names)
                and not (template and re.sub(r"\s+", "", u.text) in template)):
            seen.add(key)
            scored.append(u)
    return candidates, scored[:MAX_CANDIDATES]


def _embedder_similarity(embedder: EmbedderLike, query: str) -> Similarity:
    """Meaning computed now, for callers without stored unit vectors (tests, old indexes)."""
    def similarity(texts: Sequence[str]) -> np.ndarray:
        return embedder.embed_passages(list(texts)) @ embedder.embed_queries([query])[0]
    return similarity


def _relative(cosines: np.ndarray | None, n: int) -> np.ndarray:
    """Cosines as [0, 1] credit within ``SEMANTIC_SPAN`` of the best; zeros without them."""
    if cosines is None or len(cosines) != n or not n:
        return np.zeros(n)
    return np.clip((cosines - (float(cosines.max()) - SEMANTIC_SPAN)) / SEMANTIC_SPAN, 0.0, 1.0)


def extract_answer(
    question: str,
    sources: Sequence[Source],
    *,
    budget_chars: int,
    similarity: Similarity | None = None,
    embedder: EmbedderLike | None = None,
    context: str = "",
    glosses: Mapping[str, frozenset[str]] | None = None,
    template_lines: Collection[str] = (),
) -> ExtractiveAnswer:
    """The best units of ``sources`` for ``question`` within ``budget_chars`` characters.

    ``context`` is what a follow-up refers to (the earlier question): it joins the
    question for scoring, so "那它的缺点呢？" is scored as a question about the earlier subject.
    ``similarity`` gives each unit's cosine to the question (stored unit vectors); without
    it, ``embedder`` computes them now; without either, meaning does not count.
    ``glosses`` gives Chinese words for the question's English words (``rag.search.glossary``):
    a unit that holds one of them counts as holding the English word. ``template_lines`` (the
    index's lines many notes repeat, whitespace removed: a blog footer) are never part of an answer.
    """
    known: dict[str, set[str]] = {}
    # An aspect the question names counts in the words notes say it with ("办法" under "解决方案：").
    glosses = {**aspect_glosses(_terms(question)), **(glosses or {})}

    def terms_of(text: str) -> set[str]:
        """``text``'s terms, once per call: a title, the headings above it and a list's lead are
        read for every unit under them. The sets are shared, so no caller changes one."""
        if text not in known:
            found = _terms(text)
            if glosses and has_han(text):
                found |= {word for word, chinese in glosses.items() if any(c in text for c in chinese)}
            known[text] = found
        return known[text]

    intent = question_intent(question)
    candidates, scored = _candidates(question, sources, "\n".join(template_lines))
    if not scored:
        return ExtractiveAnswer("", [], [], intent)

    follow_up = bool(context)
    asked, not_asked, asked_thing = question, set(), ""
    if context:
        # "那另一类呢？" after "绝对位置编码是怎么做的？" asks about the thing the passages set beside the
        # earlier one (相对位置编码), "那再往上一个层级呢？" after "level 2" about "level 3 - …": that name
        # is what is asked; the earlier thing's words no longer count.
        names = [s.hit.heading for s in sources[:PASSAGES_READ]] + [u.title for u in candidates if u.title] + [
            u.text for u in candidates if u.kind in ("lead", "label")]
        thing, earlier = thing_asked(question, context, [u.text for u in candidates] + names, names)
        if thing:
            asked, context, asked_thing = f"{strip_pointers(question)} {thing}", "", thing
            not_asked = terms_of(earlier) - terms_of(thing)
    q_terms = _term_weights(asked, context)
    for word in comparison_terms(question, q_terms):
        del q_terms[word]
    # A unit is about what its section's heading says: "掩码机制:…" under "MAM Adapter 思路"
    # answers a question about MAM Adapter's idea without naming it.
    own_heading = {s.n: s.hit.heading.rsplit(" > ", 1)[-1] for s in sources[:PASSAGES_READ]}
    heading_terms = {n: terms_of(h) for n, h in own_heading.items()}
    unit_terms = [terms_of(u.text) for u in scored]
    with_heading = [t | (terms_of(f"{u.outer} {u.title}") if u.title else heading_terms[u.n])
                    for u, t in zip(scored, unit_terms)]
    # So is a list item about what the line introducing its list names ("- Prefix-tuning:"
    # above "- 影响整个解码过程").
    at = {(u.n, u.order): u for u in candidates}
    leads = {key: introducer(u, at) for key, u in at.items()}

    def lead_of(u: Unit) -> Unit | None:
        return leads[(u.n, u.order)]

    said = list(unit_terms)  # the unit's own words and its list lead's, not its heading's
    for i, u in enumerate(scored):
        lead = lead_of(u)
        if lead is not None:
            with_heading[i] = with_heading[i] | terms_of(lead.text)
            said[i] = said[i] | terms_of(lead.text)
    lexical = np.array([(1 - HEADING_SHARE) * _lexical(q_terms, t) + HEADING_SHARE * _lexical(q_terms, h)
                        for t, h in zip(said if side_by_side(question) else unit_terms, with_heading)])
    if similarity is None and embedder is not None:
        similarity = _embedder_similarity(embedder, f"{question} {context}".strip())
    # Meaning: only the top of the cosine range tells (every sentence of a retrieved passage
    # is near the question), and it counts as much as the words fail: when the best unit
    # shares few of the question's terms (an English question over Chinese notes, a
    # paraphrase), meaning decides; when units share most of them, words do.
    semantic = _relative(similarity([u.text for u in scored]) if similarity else None, len(scored))
    semantic_weight = SEMANTIC_WEIGHT * (1.0 - float(lexical.max()))
    if context:
        # A follow-up's earlier turns name the subject, so units share their words whatever the
        # follow-up asks ("那另一类呢？"); meaning (of the follow-up's own words, the vector
        # scored against) counts as much as the follow-up's own words fail, and more.
        own = _term_weights(question, "")
        own_lexical = max(((1 - HEADING_SHARE) * _lexical(own, t) + HEADING_SHARE * _lexical(own, h)
                           for t, h in zip(unit_terms, with_heading)), default=0.0)
        semantic_weight = FOLLOWUP_SEMANTIC_WEIGHT * (1.0 - own_lexical)
    semantic_weight = max(semantic_weight, SEMANTIC_FLOOR)
    # The passage retrieval ranked first, and any other piece of the same section, come first...
    top = sources[0].hit
    leading = {s.n for s in sources if s.hit.source == top.source and s.hit.heading == top.heading}
    # ...and so does a later passage that holds clearly more of the question's words (``COVER_MARGIN``).
    covered = {s.n: _lexical(q_terms, terms_of(f"{s.hit.text} {s.hit.heading}")) for s in sources[:PASSAGES_READ]}
    leading |= {n for n, share in covered.items() if share > covered[sources[0].n] + COVER_MARGIN}
    # Inside a hit read as a whole section, the passage that matched comes first. Not for a
    # follow-up: what matched there is the earlier turns' subject, not what is asked about it.
    focus = {s.n: re.sub(r"\s+", "", s.hit.focus) for s in sources[:PASSAGES_READ]
             if getattr(s.hit, "focus", "") and not follow_up}
    in_focus = [u.n not in focus or re.sub(r"\s+", "", u.text)[:FOCUS_PROBE_CHARS] in focus[u.n] for u in scored]
    rank = np.array([(1.0 if u.n in leading else 1.0 / u.n) * (1.0 if inside else OUT_OF_FOCUS)
                     for u, inside in zip(scored, in_focus)])
    score = LEXICAL_WEIGHT * lexical + semantic_weight * semantic + RANK_WEIGHT * rank
    # A passage is as good a place to answer from as its best unit: units of a passage whose
    # best match falls short of the best passage's come after by the difference (they still
    # reach the answer when room is left: the floors below judge the unit's own score).
    match = LEXICAL_WEIGHT * lexical + semantic_weight * semantic
    best_in: dict[int, float] = {}
    for i, u in enumerate(scored):
        best_in[u.n] = max(best_in.get(u.n, 0.0), float(match[i]))
    top_match = max(best_in.values())
    passage_gap = PASSAGE_MATCH_WEIGHT * np.array([best_in[u.n] - top_match for u in scored])
    for i in _neighbours(scored, q_terms, terms_of):
        score[i] -= NEIGHBOUR_PENALTY
    for i, t in enumerate(unit_terms):
        if t & not_asked:
            score[i] -= SIBLING_WEIGHT  # the earlier thing, not the one beside it that is asked
    if asked_thing:
        # Where the notes name the thing asked, on a line of its own ("相对位置编码：") or as the heading,
        # the units under it say what it is.
        for i in named_at(scored, at, asked_thing):
            score[i] += SIBLING_WEIGHT
    why = asks_why(question)
    purpose = asks_purpose(question)
    code_asked = asks_code(f"{question} {context}")
    for i, u in enumerate(scored):
        if u.kind == "code" and not code_asked:
            score[i] -= CODE_PENALTY
        if intent == "list" and u.kind in ("item", "row"):
            score[i] += LIST_BONUS
        if u.order <= 1:
            score[i] += LEAD_BONUS
        if why and CAUSAL.search(u.text):
            score[i] += CAUSE_BONUS
        if purpose and PURPOSE.search(u.text):
            score[i] += PURPOSE_BONUS

    order = [int(i) for i in np.argsort(-(score + passage_gap), kind="stable")]
    first = first_unit(scored, score, intent)
    picks = [first] + part_picks(question, scored, with_heading, said, order, score, terms_of=terms_of,
                                 floor=SHORT_RELATIVE_SCORE * float(score.max()), per_part=PART_PICKS)
    # Then the best units above the floor; a short answer reaches a little lower.
    ranked = Scored(scored, score, order, lead_of)
    chosen = take_within_budget(ranked, picks, budget_chars, ((MIN_RELATIVE_SCORE, budget_chars),
                                                              (SHORT_RELATIVE_SCORE, SHORT_ANSWER_SHARE * budget_chars)))
    ordered = arrange(chosen, ranked)
    text = render_units(ordered, lead_of)
    while len(text) > budget_chars and len(ordered) > 1:  # joins and marks can add a few characters
        ordered.pop()
        text = render_units(ordered, lead_of)
    return ExtractiveAnswer(text, list(dict.fromkeys(u.n for u in ordered)), ordered, intent)
