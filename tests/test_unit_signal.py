"""The best-unit signal (rag/search/unit_signal.py): a passage scores as well as its best
sentence, from the unit vectors the build stores with their owners."""
from __future__ import annotations

import numpy as np

from rag.index.unit_vectors import UNIT_OWNERS, UnitVectors, unit_owners
from rag.reading.chunking import Chunk
from rag.search import unit_signal
from rag.search.unit_signal import NO_UNIT, best_unit_scores
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes

LONG_NOTE = ("# 训练显存\n\n"
             "大模型训练是一个复杂的工程问题，涉及数据、算力和调度。集群的网络拓扑会影响通信效率。"
             "训练时每张卡的显存要放下模型参数、梯度、优化器状态和激活值四类东西。"
             "数据清洗和去重是预训练前的重要步骤。学习率预热可以让训练更稳定。\n")
OTHER = "# 推理\n\n推理服务关注首字延迟和吞吐量。批处理可以提高吞吐量。量化可以降低推理成本。\n"


def _chunk(i: int) -> Chunk:
    return Chunk(f"{i}.md", "", 1, 1, f"第{i}段。")


def _units(rows: list[list[float]], owners: list[tuple[int, int]]) -> UnitVectors:
    vectors = np.array(rows, dtype=np.float16)
    return UnitVectors({str(i): i for i in range(len(rows))}, vectors, np.array(owners, dtype=np.int32))


def test_a_passage_scores_its_best_units_cosine_and_one_without_units_scores_below_all():
    units = _units([[1, 0], [0, 1], [0.6, 0.8]], [(0, 0), (0, 1), (2, 2)])
    best = best_unit_scores(units, np.array([0.0, 1.0]), [_chunk(i) for i in range(3)])
    assert np.allclose(best, [1.0, NO_UNIT, 0.8], atol=1e-3)


def test_past_the_limit_only_the_other_signals_candidates_are_scored(monkeypatch):
    units = _units([[1, 0], [0, 1], [0.6, 0.8]], [(0, 0), (1, 1), (2, 2)])
    monkeypatch.setattr(unit_signal, "SEARCH_ALL_UP_TO", 2)
    best = best_unit_scores(units, np.array([0.0, 1.0]), [_chunk(i) for i in range(3)], pool=np.array([0, 2]))
    assert best[1] == NO_UNIT and np.isclose(best[2], 0.8, atol=1e-3)


def test_owners_pair_each_passage_with_its_own_units_in_passage_order():
    chunks = [Chunk("a.md", "A", 1, 2, "第一句话说明了一件事。第二句话说明了另一件事。"),
              Chunk("b.md", "B", 1, 1, "第二句话说明了另一件事。")]
    from rag.index.unit_vectors import chunk_unit_texts
    keys = {k: i for i, k in enumerate(chunk_unit_texts(chunks))}
    owners = unit_owners(chunks, keys)
    assert owners.tolist() == [[0, 0], [0, 1], [1, 1]]  # the shared sentence is one row, owned twice


def test_the_build_stores_the_owners_and_an_index_without_them_gets_them_when_first_scored(tmp_path, embedder):
    settings = indexed_notes(tmp_path, {"显存.md": LONG_NOTE, "推理.md": OTHER}, embedder,
                             unit_vectors=True)
    retriever = Retriever.from_settings(settings, embedder)
    loaded = retriever._refresh()
    stored = loaded.units.owners.copy()
    assert len(stored) and stored[:, 0].max() == len(loaded.chunks) - 1
    version = next(p for p in (settings.index_dir / "versions").iterdir() if (p / UNIT_OWNERS).exists())
    assert (version / UNIT_OWNERS).is_file()
    (version / UNIT_OWNERS).unlink()
    fresh = UnitVectors.load(version)
    assert fresh.owners is None
    best_unit_scores(fresh, np.ones(fresh.vectors.shape[1], dtype=np.float32), loaded.chunks)
    assert fresh.owners.tolist() == stored.tolist()


def test_a_question_paraphrasing_one_sentence_of_a_long_passage_scores_that_passage_best(tmp_path, embedder):
    settings = indexed_notes(tmp_path, {"显存.md": LONG_NOTE, "推理.md": OTHER}, embedder,
                             unit_vectors=True)
    loaded = Retriever.from_settings(settings, embedder)._refresh()
    question = "一张卡里到底要塞下哪几类东西？"
    best = best_unit_scores(loaded.units, embedder.embed_queries([question])[0], loaded.chunks)
    assert loaded.chunks[int(np.argmax(best))].source == "显存.md"


def test_retrieval_fuses_the_best_unit_ranking_only_where_the_version_has_unit_vectors(tmp_path, embedder,
                                                                                    monkeypatch):
    import rag.search.retrieval as retrieval

    weights = []
    fuse = retrieval.fuse
    monkeypatch.setattr(retrieval, "fuse", lambda signals, *a: weights.append([s.weight for s in signals])
                        or fuse(signals, *a))
    notes = {"显存.md": LONG_NOTE, "推理.md": OTHER}
    with_units = indexed_notes(tmp_path / "with", notes, embedder, unit_vectors=True, unit_weight=0.5)
    without = indexed_notes(tmp_path / "without", notes, embedder, unit_vectors=False, unit_weight=0.5)
    Retriever.from_settings(with_units, embedder).retrieve("显存里放哪些东西？")
    Retriever.from_settings(without, embedder).retrieve("显存里放哪些东西？")
    assert weights[0][-1] == 0.5 and len(weights[0]) == len(weights[1]) + 1
