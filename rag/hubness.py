"""Hub passages: a passage close to many other passages is close to many questions too.

An overview, a yearly summary or a list of topics sits near the middle of the notes'
embedding space, so dense search ranks it high for questions it only mentions in passing,
above the passage that answers them ("hubness" of nearest-neighbour search). Each
passage's hub score is its mean cosine similarity to its ``HUB_NEIGHBOURS`` nearest other
passages; retrieval ranks the dense candidates by similarity minus ``hub_weight`` times
that score (local scaling, as in CSLS), while the relevance decision keeps the raw
similarity.

Invariants: scores are computed from the version's own vectors once per loaded version
(exactly: every pair, in blocks); above ``HUB_MAX_PASSAGES`` passages they are all zero
(no correction) so that loading stays fast; a passage's own similarity to itself never
counts, but an identical copy elsewhere does.
"""
from __future__ import annotations

import numpy as np

# Neighbours averaged. bench/retrieval_quality.py, hub_weight 0.5, MRR@10 md / seed: 5 ->
# 0.817 / 0.918, 10 -> 0.810 / 0.920, 20 -> 0.799 / 0.930 (none: 0.800 / 0.907).
HUB_NEIGHBOURS = 5
# Every pair costs n^2 x dim: ~2 s for 20,000 passages of 384 dimensions on a 2-core CPU.
HUB_MAX_PASSAGES = 20_000
# Rows per block: a block's similarities take BLOCK x n x 4 bytes (80 MB at the cap).
BLOCK = 1024


def hub_scores(vectors: np.ndarray, k: int = HUB_NEIGHBOURS, max_passages: int = HUB_MAX_PASSAGES) -> np.ndarray:
    """Each row's mean similarity to its ``k`` most similar other rows (zeros past ``max_passages``)."""
    n = len(vectors)
    out = np.zeros(n, dtype=np.float32)
    if n <= k or n > max_passages:
        return out
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    for start in range(0, n, BLOCK):
        sims = vectors[start : start + BLOCK] @ vectors.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # a passage is not its own neighbour
        out[start : start + len(rows)] = np.partition(sims, n - k, axis=1)[:, n - k :].mean(axis=1)
    return out


def dehub(ids: np.ndarray, scores: np.ndarray, hubs: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense candidates (ids, similarities; id -1 is padding) re-ranked by similarity minus
    ``weight`` x hub score; padding dropped."""
    valid = ids >= 0
    ids, scores = ids[valid], np.asarray(scores, dtype=np.float32)[valid]
    if not weight or not len(ids):
        return ids, scores
    adjusted = scores - weight * hubs[ids]
    order = np.argsort(-adjusted, kind="stable")
    return ids[order], adjusted[order]
