"""Unit vectors (rag/index/unit_vectors.py): every answer unit embedded once, at build time, with the
real default embedder, incrementally, and found again by its text."""
from __future__ import annotations

import numpy as np

from rag.index.builder import build_index
from rag.search.retrieval import Retriever
from rag.index.store import IndexStore
from rag.index.unit_vectors import chunk_unit_texts
from tests.conftest import CountingEmbedder, make_settings, write_notes

NOTES = {
    "lora.md": "# LoRA\n\n## 原理\n\nLoRA 冻结原模型权重，只训练两个低秩矩阵 A 和 B。它们的乘积近似权重的更新量。\n\n"
               "## 优点\n\n- 可训练参数减少上万倍\n- 推理时可以把权重合并回原模型，没有额外延迟\n",
    "fp16.md": "# 混合精度\n\n混合精度训练用 FP16 存储激活和梯度，显存减半。过小的梯度会下溢为零，所以要做损失缩放。\n",
}


def build(tmp_path, embedder, notes=NOTES, **overrides):
    settings = make_settings(write_notes(tmp_path / "corpus", notes), tmp_path / "index",
                             **({"unit_vectors": True} | overrides))
    counter = CountingEmbedder(embedder)
    return settings, counter, build_index(settings, counter)


def test_every_unit_of_every_passage_has_its_vector_after_a_build(tmp_path, embedder):
    settings, _, report = build(tmp_path, embedder)
    loaded = IndexStore(settings.index_dir).load()
    wanted = chunk_unit_texts(loaded.chunks)
    assert loaded.units is not None and report.units_embedded == len(wanted) == len(loaded.units) > 5
    sentences = list(wanted.values())
    stored, missing = loaded.units.lookup(sentences)
    assert missing == []
    fresh = embedder.embed_passages(sentences)
    assert np.min(np.sum(stored * fresh, axis=1)) > 0.99  # float16 storage loses nothing that matters


def test_an_update_embeds_only_the_units_the_previous_version_lacks(tmp_path, embedder):
    settings, _, _ = build(tmp_path, embedder)
    (settings.corpus_dir / "fp16.md").write_text(
        NOTES["fp16.md"] + "\nBF16 的指数位和 FP32 一样多，所以很少需要损失缩放。\n", encoding="utf-8")
    counter = CountingEmbedder(embedder)
    report = build_index(settings, counter)
    # The edited passage itself, and the one new sentence: nothing of lora.md, nothing already embedded.
    assert report.units_embedded == 1
    assert [p for p in counter.passages if "BF16" in p and "混合精度训练用" not in p] == [
        "BF16 的指数位和 FP32 一样多，所以很少需要损失缩放。"]
    assert not any("LoRA" in p for p in counter.passages)


def test_an_index_built_without_unit_vectors_gains_them_on_the_next_build_without_re_embedding_passages(
        tmp_path, embedder):
    settings, _, _ = build(tmp_path, embedder, unit_vectors=False)
    assert IndexStore(settings.index_dir).load().units is None
    settings = settings.model_copy(update={"unit_vectors": True})
    counter = CountingEmbedder(embedder)
    report = build_index(settings, counter)
    assert not report.unchanged and report.chunks_embedded == 0 and report.units_embedded > 5
    assert IndexStore(settings.index_dir).load().units is not None


def test_a_version_without_unit_vectors_still_weighs_meaning_by_embedding_the_units_when_asked(tmp_path, embedder):
    settings, _, _ = build(tmp_path, embedder, unit_vectors=False)
    retriever = Retriever.from_settings(settings, embedder)
    result = retriever.retrieve("How much memory does mixed precision save?")
    similarity = retriever.unit_similarity(result)
    cosines = similarity(["混合精度训练用 FP16 存储激活和梯度，显存减半。", "可训练参数减少上万倍"])
    assert cosines.shape == (2,) and cosines[0] > cosines[1]
