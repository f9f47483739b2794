"""Hub passages ranked down (rag/index/hubness.py): the scores themselves, the re-ranking, and that the
relevance decision never sees them."""
from __future__ import annotations

import numpy as np
import pytest

from rag.index.hubness import dehub, hub_scores, neighbours, scores_from_neighbours, update_neighbours
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("n", [7, 1500, 2100])  # below, across and past one block of rows
def test_a_hub_score_is_the_mean_similarity_to_the_nearest_other_passages(n):
    vectors = unit_rows(n)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.sort(sims, axis=1)[:, -5:].mean(axis=1)
    assert np.allclose(hub_scores(vectors, k=5), expected, atol=1e-5)


def test_a_copy_elsewhere_counts_as_a_neighbour_but_a_passage_is_never_its_own():
    vectors = unit_rows(6)
    vectors[5] = vectors[0]  # the same paragraph in two notes
    scores = hub_scores(vectors, k=1)
    assert scores[0] == pytest.approx(1.0) and scores[5] == pytest.approx(1.0)
    assert all(s < 0.999 for s in scores[1:5])


def test_past_the_size_cap_or_with_too_few_passages_nothing_is_corrected():
    assert not hub_scores(unit_rows(50), max_passages=49).any()
    assert not hub_scores(unit_rows(3), k=5).any()


def test_dehub_reranks_by_similarity_less_the_hub_score_and_drops_padding():
    ids = np.array([4, 2, 7, -1])
    scores = np.array([0.90, 0.88, 0.80, 0.0], dtype=np.float32)
    hubs = np.zeros(8, dtype=np.float32)
    hubs[4] = 0.3  # the first is a hub: 0.90 - 0.5 x 0.3 = 0.75
    ranked, adjusted = dehub(ids, scores, hubs, 0.5)
    assert ranked.tolist() == [2, 7, 4] and adjusted.tolist() == pytest.approx([0.88, 0.80, 0.75])
    unchanged, _ = dehub(ids, scores, hubs, 0.0)
    assert unchanged.tolist() == [4, 2, 7]


NOTES = {
    "量化.md": "# 模型量化\n\nINT8 量化把 fp32 权重映射到 8 位整数，需要缩放因子和零点，显存减为四分之一。\n",
    "蒸馏.md": "# 知识蒸馏\n\n教师模型输出软标签，学生模型学习它的概率分布；温度越高分布越平滑。\n",
    "投机采样.md": "# 投机采样\n\n小模型先起草几个词，大模型一次并行验证，接受的前缀直接输出。\n",
    "总结.md": "# 一年的笔记\n\n读过 LoRA、量化、蒸馏、KV 缓存、投机采样、MoE 和 RoPE。\n",
}
QUESTIONS = ["INT8 量化能省多少显存？", "蒸馏的温度有什么用", "投机采样怎么加速", "总结一下读过哪些技术",
             "如何烤面包"]


def test_hub_weight_reorders_candidates_but_never_changes_whether_the_notes_cover_a_question(tmp_path, embedder):
    settings = indexed_notes(tmp_path, NOTES, embedder)
    plain = Retriever(settings.model_copy(update={"hub_weight": 0.0}), embedder)
    heavy = Retriever(settings.model_copy(update={"hub_weight": 5.0}), embedder)
    assert heavy._current_view().hubs.shape == (len(heavy._current_view().index.chunks),)
    assert not plain._current_view().hubs.any()  # off: not even computed
    decisions = [(plain.retrieve(q).relevant, heavy.retrieve(q).relevant) for q in QUESTIONS]
    assert all(a == b for a, b in decisions), decisions
    assert decisions[0] == (True, True) and decisions[-1] == (False, False)


# --- computed at build time, incrementally, stored with the version (issue 16) ----------------
def exact_neighbours(vectors: np.ndarray, k: int = 5) -> np.ndarray:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return -np.sort(-sims, axis=1)[:, :k]


@pytest.mark.parametrize("n", [4, 300, 1500])
def test_neighbours_are_the_exact_best_similarities_and_their_positions(n):
    vectors = unit_rows(n)
    sims, ids = neighbours(vectors, k=5)
    kk = min(5, n - 1)
    assert np.allclose(sims[:, :kk], exact_neighbours(vectors)[:, :kk], atol=1e-5)
    assert (ids[:, :kk] != np.arange(n)[:, None]).all()
    assert np.allclose(np.take_along_axis(vectors @ vectors.T, ids[:, :kk].astype(int), axis=1), sims[:, :kk],
                       atol=1e-5)
    if n > 5:
        assert np.allclose(scores_from_neighbours(sims), hub_scores(vectors), atol=1e-5)


def test_an_update_reuses_kept_neighbours_and_equals_a_full_recomputation():
    rng = np.random.default_rng(3)
    old = unit_rows(800, seed=1)
    old_sims, old_ids = neighbours(old)
    # The next version: most rows kept (moved around), some removed, some new, one reused twice.
    kept = rng.permutation(800)[:700]
    new_rows = unit_rows(60, seed=2)
    vectors = np.concatenate([old[kept], new_rows, old[kept[:1]]])
    source = np.concatenate([kept, np.full(60, -1), kept[:1]])
    order = rng.permutation(len(vectors))
    vectors, source = vectors[order], source[order]
    sims, ids, computed = update_neighbours(vectors, source, old_sims, old_ids)
    assert np.allclose(sims, exact_neighbours(vectors), atol=1e-5)
    assert np.allclose(np.take_along_axis(vectors @ vectors.T, ids.astype(int), axis=1), sims, atol=1e-5)
    assert 62 <= computed < 400  # the new rows, the duplicated one, and those that lost a neighbour
    # Nothing changed: nothing computed in full.
    same = update_neighbours(old, np.arange(800), old_sims, old_ids)
    assert same[2] == 0 and np.allclose(same[0], old_sims)


def test_hub_scores_are_stored_with_the_version_and_updated_by_an_incremental_build(tmp_path, embedder):
    from rag.index.builder import build_index
    from rag.index.store import IndexStore
    from rag.index.version_files import HUB_IDS, HUB_SIMS

    settings = indexed_notes(tmp_path, NOTES, embedder)
    store = IndexStore(settings.index_dir)
    first = store.load()
    assert first.hub_sims is not None and first.hub_sims.shape == (len(first.chunks), 5)
    assert np.allclose(scores_from_neighbours(first.hub_sims), hub_scores(first.vectors), atol=1e-5)
    (settings.corpus_dir / "KV缓存.md").write_text("# KV 缓存\n\n缓存已算过的键和值，解码时不再重算。\n", encoding="utf-8")
    (settings.corpus_dir / "蒸馏.md").unlink()
    build_index(settings, embedder)
    second = store.load()
    assert np.allclose(scores_from_neighbours(second.hub_sims), hub_scores(second.vectors), atol=1e-5)
    retriever = Retriever(settings, embedder)
    assert np.allclose(retriever._current_view().hubs, hub_scores(second.vectors), atol=1e-5)
    # A version written before hub scores were stored still loads: they are computed at load.
    folder = store.versions / second.manifest.version
    manifest = second.manifest
    for name in (HUB_SIMS, HUB_IDS):
        (folder / name).unlink()
        manifest.checksums.pop(name)
    (folder / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    import hashlib
    import json

    data = (folder / "manifest.json").read_bytes()
    (folder / "COMPLETE").write_text(json.dumps({"manifest.json": {"size": len(data),
                                                                   "sha256": hashlib.sha256(data).hexdigest()}}))
    old = store.load()
    assert old.hub_sims is None
    assert np.allclose(Retriever(settings, embedder)._current_view().hubs, hub_scores(old.vectors), atol=1e-5)
    # And the next build from that old version computes and stores them again.
    (settings.corpus_dir / "KV缓存.md").write_text("# KV 缓存\n\n缓存键和值。\n", encoding="utf-8")
    build_index(settings, embedder)
    assert store.load().hub_sims is not None
