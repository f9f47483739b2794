"""The reading budget: a long hit read as the window of it that matches the question.

The answer prompt reads the hits in rank order within ``context_chars`` (3,000 characters,
also ``recall@3000ch``'s budget); a section read whole, or one long passage, can fill that
budget and push the next hits out of it. ``fit_budget`` reads the first hit as it is, and
every later hit that still fits; a later hit that would pass the budget and is longer than
``WINDOW_CHARS`` is read as the stretch of its lines, at most that long, that matches the
question best (``best_window``), with that stretch's line span, so the hits after it are
still read. The hit itself stays whole (``Hit.window`` holds what is read, rag/search/retrieval.py):
the extractive answer and the display read all of it.

A line matches by the question's words it holds (weighted by how rare they are in the
notes) and by lying in the passage that retrieval matched inside a section read whole.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from rag.core.text import HAN_BASIC_CHAR
from rag.index.bm25 import BM25Index, tokenize
from rag.reading.chunking import Chunk

__all__ = ["WINDOW_CHARS", "FOCUS_WEIGHT", "question_terms", "line_scorer", "best_window", "window", "fit_budget"]

# Figures: `rag eval QUESTIONS --index IDX`, recall@3000ch (recall@5 and MRR@10 read the hits
# whole and stay 0.943 / 0.800 on md, 1.000 / 0.918 on dev at every value); bench/README.md,
# "Round 4: reading budget". Chosen on dev-md.jsonl, checked on dev.jsonl.
# The longest a later hit is read when it would pass the budget. md: 700: 0.914 (a window
# that small misses the gold of a hit read whole); 800 and 900: 0.929; 1000: 0.900 (too long
# to make room for the next hits); the shorter of the best. dev: 700 and 800: 1.000; 900 and
# 1000: 0.980.
WINDOW_CHARS = 800
# What lying in the matched passage adds to a line, per line of average length, against the
# question's words (a line's share of the best line's weight, 0-1). md: 0: 0.914 (the words
# alone pick a stretch a paraphrased question's gold is not in); 0.5, 1 and 2: 0.929; 1, the
# middle. dev: 0: 0.960; 0.5, 1 and 2: 1.000.
FOCUS_WEIGHT = 1.0
# Of a line, this many characters (whitespace aside) tell whether it lies in the matched passage.
PROBE_CHARS = 20

_SPACE = re.compile(r"\s+")
_LATIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")

LineScore = Callable[[Sequence[str]], np.ndarray]


def question_terms(question: str, context: str, bm25: BM25Index, context_share: float) -> dict[str, float]:
    """The question's keyword terms weighted by their inverse document frequency in the notes;
    the earlier turns' terms (a follow-up's ``context``) count ``context_share`` as much (the
    share their keyword scores count in retrieval, ``CONTEXT_KEYWORD_SHARE``)."""
    weights: dict[str, float] = {}
    for share, text in ((context_share, context), (1.0, question)):
        for term in set(tokenize(text)) if text else ():
            weights[term] = max(weights.get(term, 0.0), share * bm25.idf(term))
    return weights


def line_scorer(weights: dict[str, float], focus: str = "") -> LineScore:
    """Each line's score: the weights of the question terms it holds, as a share of the best
    line's, plus ``FOCUS_WEIGHT`` × its length over the average line's when it lies in
    ``focus`` (the matched passage of a section read whole): by length, so that a stretch
    of many short lines (code) gains no more from it than one long paragraph."""
    squashed_focus = _SPACE.sub("", focus)

    han = {t: w for t, w in weights.items() if HAN_BASIC_CHAR.search(t)}
    latin = {t: w for t, w in weights.items() if t not in han}

    def holds(line: str) -> float:
        # Chinese terms by their characters (segmenting every line would cost more than the
        # search); words and identifiers as the keyword index splits them.
        found = sum(w for t, w in han.items() if t in line)
        if latin and _LATIN.search(line):
            found += sum(latin.get(t, 0.0) for t in set(tokenize(" ".join(_LATIN.findall(line)))))
        return found

    def score(lines: Sequence[str]) -> np.ndarray:
        words = np.array([holds(line) if line.strip() else 0.0 for line in lines])
        out = words / words.max() if words.max() > 0 else words
        if squashed_focus and FOCUS_WEIGHT:
            inside = np.array([bool(line.strip()) and _SPACE.sub("", line)[:PROBE_CHARS] in squashed_focus
                               for line in lines])
            sizes = np.array([len(line) for line in lines], dtype=np.float64)
            out = out + FOCUS_WEIGHT * inside * sizes / max(sizes.mean(), 1.0)
        return out

    return score


def best_window(text: str, score: LineScore, limit: int) -> tuple[int, int]:
    """(first, last) text line of the stretch of ``text``, at most ``limit`` characters long,
    whose lines score highest together (the earliest on a tie); the best line alone when no
    line fits. Blank lines at either end are left out."""
    lines = text.split("\n")
    scores = score(lines)
    best, span = -1.0, None
    lo, total, size = 0, 0.0, -1
    for hi, line in enumerate(lines):
        total += scores[hi]
        size += len(line) + 1
        while size > limit and lo < hi:
            total -= scores[lo]
            size -= len(lines[lo]) + 1
            lo += 1
        if size <= limit and total > best:
            best, span = total, (lo, hi)
    if span is None:  # every line is longer than the window
        top = max(range(len(lines)), key=lambda i: (scores[i], -i))
        span = (top, top)
    first, last = span
    while first < last and not lines[first].strip():
        first += 1
    while last > first and not lines[last].strip():
        last -= 1
    return first, last


def _line_numbers(chunk: Chunk, members: Sequence[Chunk]) -> list[int]:
    """An estimate of the note line each text line of ``chunk`` stands on, for a note that
    cannot be read: a hit read as a section is its passages joined by a blank line, each with
    its own span; inside a passage (the loaders normalise blank lines, so its text may hold
    another number of lines than its span) the lines are spread evenly over the span."""
    parts = list(members) if members and "\n\n".join(m.text for m in members) == chunk.text else [chunk]
    numbers: list[int] = []
    for n, part in enumerate(parts):
        if n:
            numbers.append(part.line_start)  # the blank line joining two passages
        count = part.text.count("\n") + 1
        span = part.line_end - part.line_start
        numbers += [part.line_start + (round(i * span / (count - 1)) if count > 1 else 0) for i in range(count)]
    return numbers


def _found_numbers(chunk: Chunk, lines: Sequence[str], note: Sequence[str]) -> list[int] | None:
    """The note line each text line stands on, each non-blank one found in order inside the
    hit's span of ``note`` (the note's lines as its loader reads them; a blank line takes the
    number of the line before it); None when one is not there (the note changed since)."""
    numbers: list[int] = []
    at = chunk.line_start - 1
    for line in lines:
        text = line.strip()
        if text:
            while at < min(chunk.line_end, len(note)) and text not in note[at]:
                at += 1
            if at >= min(chunk.line_end, len(note)):
                return None
        numbers.append(max(at + 1, chunk.line_start))
    return numbers


def window(chunk: Chunk, members: Sequence[Chunk], score: LineScore, limit: int,
           note: Sequence[str] | None = None) -> Chunk:
    """``chunk`` narrowed to its best-matching stretch of at most ``limit`` characters, with
    the line span of that stretch, found in ``note`` (the note's lines as its loader reads
    them); without it, or when the note changed since, estimated through ``members`` (the
    passages the hit is made of)."""
    lines = chunk.text.split("\n")
    first, last = best_window(chunk.text, score, limit)
    text = "\n".join(lines[first: last + 1])[:limit]
    last = first + text.count("\n")  # a single line cut to the window ends where it starts
    numbers = (note is not None and _found_numbers(chunk, lines, note)) or _line_numbers(chunk, members)
    return replace(chunk, text=text, line_start=numbers[first], line_end=max(numbers[first], numbers[last]))


def _members(first: int, chunk: Chunk, passages: Sequence[Chunk]) -> list[Chunk]:
    """The passages a hit is made of: those around its matched passage, in its note and span."""
    def inside(j: int) -> bool:
        p = passages[j] if 0 <= j < len(passages) else None
        return (p is not None and p.source == chunk.source and p.page == chunk.page
                and p.line_start >= chunk.line_start and p.line_end <= chunk.line_end)

    lo = hi = first
    while inside(lo - 1):
        lo -= 1
    while inside(hi + 1):
        hi += 1
    return list(passages[lo: hi + 1]) if inside(first) else []


def fit_budget(selected: Sequence[tuple[int, Chunk]], passages: Sequence[Chunk], weights: dict[str, float],
               budget: int, note_lines: Callable[[str], Sequence[str] | None] = lambda source: None,
               limit: int = WINDOW_CHARS) -> list[Chunk]:
    """The hits as read, in rank order: the first one whole, and each later one whole while
    the hits before it and it fit in ``budget``; past it, a hit longer than ``limit`` is read
    as its best window. ``selected``: (matched passage id, hit) pairs, as ranking's
    ``select_hits`` returns them; ``passages``: the index's chunks; ``weights``: the
    question's terms (``question_terms``); ``note_lines``: a note's lines by its source (None
    when unreadable), for the window's exact line span. ``budget`` 0 reads every hit whole.
    Hits after the budget is spent are left whole: nothing of them is read."""
    shown: list[Chunk] = []
    used = 0
    for n, (first, chunk) in enumerate(selected):
        # A hit after the budget is spent is not read at all: it stays whole.
        if n and 0 < budget and used < budget and len(chunk.text) > limit and used + len(chunk.text) > budget:
            matched = passages[first].text if 0 <= first < len(passages) else ""
            focus = matched if matched != chunk.text else ""
            chunk = window(chunk, _members(first, chunk, passages), line_scorer(weights, focus), limit,
                           note_lines(chunk.source))
        shown.append(chunk)
        used += len(chunk.text)
    return shown
