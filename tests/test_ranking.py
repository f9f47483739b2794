"""Rank fusion (rag/search/ranking.py): a list cut at the candidates asked for is not the
whole ranking, so a passage missing from it ranks below its last entry, not nowhere."""
import numpy as np

from rag.search.ranking import Signal, fuse

RRF_K = 15


def _signal(ids, weight=1.0):
    return Signal(np.array(ids, dtype=np.int64), np.linspace(1.0, 0.5, len(ids)), weight)


def test_a_passage_missing_from_a_cut_list_gets_the_rank_after_its_last():
    dense = _signal([1, 2, 3])            # asked for 3, got 3: cut there
    keyword = _signal([4], weight=0.5)    # one match only: the whole list
    fused = fuse([dense, keyword], "rrf", RRF_K, listed=3)
    assert fused[4] == 0.5 / (RRF_K + 1) + 1.0 / (RRF_K + 1 + 3)
    # ... while passage 1, on the dense list, gets nothing from the keyword list it is missing from.
    assert fused[1] == 1.0 / (RRF_K + 1)


def test_a_list_shorter_than_asked_for_gives_no_floor():
    dense = _signal([1, 2])               # asked for 3, got 2: every passage it knows is on it
    keyword = _signal([4])
    fused = fuse([dense, keyword], "rrf", RRF_K, listed=3)
    assert fused[4] == 1.0 / (RRF_K + 1)


def test_the_floor_decides_between_two_passages_that_are_otherwise_tied():
    # Passage 7 is 50th on the heading list, passage 8 just past its cut: both are nearly
    # equally similar, so 8 must not lose a whole list's worth of score to 7.
    title = _signal(list(range(100, 149)) + [7], weight=0.25)
    dense = _signal([8, 7] + list(range(200, 248)))
    keyword = _signal([7, 8] + list(range(300, 348)))
    with_floor = fuse([dense, title, keyword], "rrf", RRF_K, listed=50)
    without = fuse([dense, title, keyword], "rrf", RRF_K)
    assert without[7] > without[8]
    assert abs(with_floor[7] - with_floor[8]) < abs(without[7] - without[8])


def test_score_fusion_is_unchanged_by_the_floor():
    dense = _signal([1, 2, 3])
    keyword = _signal([4])
    assert fuse([dense, keyword], "score", RRF_K, listed=3) == fuse([dense, keyword], "score", RRF_K)
