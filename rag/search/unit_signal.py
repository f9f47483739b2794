"""The best-unit signal of hybrid retrieval: a passage scores as well as its best sentence.

A passage vector averages everything the passage says, so a question that paraphrases one
sentence of it (dev-md's paraphrases: "训练的时候一张卡里到底要塞下哪几类东西？") is diluted by the
rest. Every answer unit (sentence, list item, table row) is already embedded at build time for
the extractive answer (rag/index/unit_vectors.py); this signal ranks passages by the cosine of
the question to their best unit, and joins the fusion beside the passage, heading and keyword
signals (rag/search/ranking.py).

Invariants: a passage with no unit vector scores ``NO_UNIT``, below every cosine; up to
``SEARCH_ALL_UP_TO`` units every unit is scored (under 2 ms for 5,000); past it only the units
of the passages the other signals found, so a very large index pays per question for ~150
passages, not for all its units.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.index.unit_vectors import UnitVectors, unit_owners
from rag.reading.chunking import Chunk

__all__ = ["best_unit_scores", "SEARCH_ALL_UP_TO", "NO_UNIT"]

NO_UNIT = -2.0
# Every unit is scored up to this many, from the float32 copy ``UnitVectors.float32`` keeps (77 MB
# at most at 384 dimensions; converting the float16 rows for every question cost 8 ms for
# dev-md's 4,874 units, the copy 0.1 ms). Past it, only the units of the passages the other
# signals found: on dev-md that gives MRR 0.825 against 0.832 scoring all (0.815 without the
# signal), so a large index keeps most of the gain for ~150 passages' units a question.
SEARCH_ALL_UP_TO = 50_000


def best_unit_scores(units: UnitVectors, query: np.ndarray, chunks: Sequence[Chunk],
                     pool: np.ndarray | None = None) -> np.ndarray:
    """Each passage of ``chunks`` (the version's) scored by its best unit's cosine to ``query``
    (``NO_UNIT`` where unknown or not scored). A version built before owners were stored gets
    them here, once (0.09 s for 1,000 passages).

    ``pool``: the passage positions the other signals found; used only past ``SEARCH_ALL_UP_TO``.
    """
    best = np.full(len(chunks), NO_UNIT, dtype=np.float32)
    if units.owners is None:
        units.owners = unit_owners(chunks, units.keys)
    owners = units.owners
    if not len(owners) or not len(units.vectors):
        return best
    q = np.asarray(query, dtype=np.float32)
    if len(units.vectors) <= SEARCH_ALL_UP_TO or pool is None:
        pair_sims = (units.float32() @ q)[owners[:, 1]]
        passages = owners[:, 0]
    else:
        wanted = np.isin(owners[:, 0], pool)
        pairs = owners[wanted]
        pair_sims = units.vectors[pairs[:, 1]].astype(np.float32) @ q
        passages = pairs[:, 0]
    if not len(passages):
        return best
    # Pairs are sorted by passage: the best of each run of one passage.
    starts = np.r_[0, np.flatnonzero(np.diff(passages)) + 1]
    best[passages[starts]] = np.maximum.reduceat(pair_sims, starts)
    return best
