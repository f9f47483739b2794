"""Hub passages: a passage close to many other passages is close to many questions too.

An overview, a yearly summary or a list of topics sits near the middle of the notes'
embedding space, so dense search ranks it high for questions it only mentions in passing,
above the passage that answers them ("hubness" of nearest-neighbour search). Each
passage's hub score is its mean cosine similarity to its ``HUB_NEIGHBOURS`` nearest other
passages; retrieval ranks the dense candidates by similarity minus ``hub_weight`` times
that score (local scaling, as in CSLS), while the relevance decision keeps the raw
similarity.

Invariants: scores are exact (every pair, in blocks); a passage's own similarity to
itself never counts, but an identical copy elsewhere does. Since issue 16 they are computed
when a version is built and stored with it (``neighbours``: each passage's ``HUB_NEIGHBOURS``
best similarities and their positions), incrementally: an update computes only the new
passages against all, merges them into the kept passages' lists, and recomputes the kept
passages that lost a neighbour; so a 100k or 1M index keeps the correction. A version
built before that has none stored: its scores are computed at load as before, and above
``HUB_MAX_PASSAGES`` passages they are all zero (no correction) so that loading stays fast.
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


# Similarities held at once while computing neighbours (rows x passages, float32: 256 MB).
BLOCK_ELEMENTS = 64 * 1024 * 1024


def _block_rows(n: int) -> int:
    return max(16, min(BLOCK, BLOCK_ELEMENTS // max(1, n)))


def neighbours(vectors: np.ndarray, rows: np.ndarray | None = None, k: int = HUB_NEIGHBOURS,
               progress=None) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows`` (default all): the similarities of its ``k`` most similar other rows,
    best first, and their positions: two (len(rows), k) arrays, float32 and int32 (-1 when
    there are fewer than k others)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    sims_out = np.full((len(rows), k), -np.inf, dtype=np.float32)
    ids_out = np.full((len(rows), k), -1, dtype=np.int32)
    kk = min(k, n - 1)
    if kk <= 0 or not len(rows):
        return sims_out, ids_out
    step = _block_rows(n)
    for start in range(0, len(rows), step):
        if progress:
            progress(start, len(rows))
        part = rows[start : start + step]
        sims = vectors[part] @ vectors.T
        sims[np.arange(len(part)), part] = -np.inf  # a passage is not its own neighbour
        top = np.argpartition(sims, n - kk, axis=1)[:, n - kk :]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        sims_out[start : start + len(part), :kk] = np.take_along_axis(top_sims, order, axis=1)
        ids_out[start : start + len(part), :kk] = np.take_along_axis(top, order, axis=1)
    if progress:
        progress(len(rows), len(rows))
    return sims_out, ids_out


def update_neighbours(vectors: np.ndarray, source: np.ndarray, old_sims: np.ndarray | None,
                      old_ids: np.ndarray | None, k: int = HUB_NEIGHBOURS, progress=None
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """The neighbours of every row of a new version, reusing the old version's where they hold.

    ``source[j]`` is the old position whose vector row j reuses unchanged, or -1 for a newly
    embedded row. A reused row keeps its old list (positions mapped to the new version) merged
    with its similarities to the new rows, unless one of its old neighbours is gone: then, like
    a new row, it is computed against all rows. Returns (sims, ids, rows computed in full).
    """
    n = len(vectors)
    source = np.asarray(source, dtype=np.int64)
    if old_sims is None or old_ids is None or old_sims.shape[1] < k:
        sims, ids = neighbours(vectors, k=k, progress=progress)
        return sims, ids, n
    old_sims, old_ids = old_sims[:, :k], old_ids[:, :k]
    # old position -> new position; a vector reused twice is treated as new (its copies differ in place)
    counts = np.bincount(source[source >= 0], minlength=len(old_sims))
    old_to_new = np.full(len(old_sims), -1, dtype=np.int64)
    single = (source >= 0) & (counts[np.maximum(source, 0)] == 1)
    old_to_new[source[single]] = np.nonzero(single)[0]
    kept = np.nonzero(single)[0]
    mapped = np.where(old_ids[source[kept]] >= 0, old_to_new[np.maximum(old_ids[source[kept]], 0)], -2)
    lost = (mapped == -1).any(axis=1)  # a neighbour was removed, changed or duplicated
    fresh = np.concatenate([np.nonzero(~single)[0], kept[lost]])
    kept, mapped = kept[~lost], mapped[~lost]
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int32)
    if len(kept):
        sims[kept] = old_sims[source[kept]]
        ids[kept] = np.where(mapped >= 0, mapped, -1)
    new = np.nonzero(~single)[0]
    if len(new) and len(kept):
        # each kept row against the new rows, merged into its list
        vectors32 = np.ascontiguousarray(vectors, dtype=np.float32)
        step = _block_rows(len(new))
        for start in range(0, len(kept), step):
            part = kept[start : start + step]
            cand_sims = np.concatenate([sims[part], vectors32[part] @ vectors32[new].T], axis=1)
            cand_ids = np.concatenate([ids[part], np.broadcast_to(new.astype(np.int32), (len(part), len(new)))],
                                      axis=1)
            order = np.argsort(-cand_sims, axis=1, kind="stable")[:, :k]
            sims[part] = np.take_along_axis(cand_sims, order, axis=1)
            ids[part] = np.take_along_axis(cand_ids, order, axis=1)
    if len(fresh):
        sims[fresh], ids[fresh] = neighbours(vectors, fresh, k=k, progress=progress)
    return sims, ids, len(fresh)


def scores_from_neighbours(sims: np.ndarray, k: int = HUB_NEIGHBOURS) -> np.ndarray:
    """Hub scores from stored neighbour lists (zeros where a list is short: tiny indexes)."""
    n = len(sims)
    if n <= k or sims.shape[1] < k:
        return np.zeros(n, dtype=np.float32)
    return sims[:, :k].mean(axis=1).astype(np.float32)


def loaded_hub_scores(loaded) -> np.ndarray:
    """A loaded version's hub scores: stored at build time, else computed now (older versions)."""
    if getattr(loaded, "hub_sims", None) is not None and loaded.hub_sims.shape[1] >= HUB_NEIGHBOURS:
        return scores_from_neighbours(loaded.hub_sims)
    return hub_scores(loaded.vectors)


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
