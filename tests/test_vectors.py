"""The vector-index interface: every store answers `search` exactly like FAISS, saves into a
version folder and is chosen by the manifest's `dense_kind` when loaded."""
from __future__ import annotations


import numpy as np
import pytest

from rag.core.settings import Settings
from rag.index.vectors import VectorIndex, VectorStoreUnavailable, build_vector_index, load_vector_index
from rag.index.vectors.faiss_index import FaissIndex


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["faiss-flat", "faiss-hnsw", "milvus-flat", "milvus-hnsw"])
def store(request, tmp_path):
    name, kind = request.param.split("-")
    if name == "milvus":
        pytest.importorskip("pymilvus")
    return Settings(index_dir=tmp_path / "index", vector_store=name, ann_min_chunks=0 if kind == "hnsw" else 10**9,
                    milvus_index_type=kind.upper(), milvus_uri=str(tmp_path / "m" / "v.db"), hnsw_ef_search=128)


def test_every_store_searches_like_exact_faiss_and_round_trips_through_its_folder(store, tmp_path):
    vectors = unit_vectors(300)
    index = build_vector_index(vectors, store, version="v1-test", name="dense")
    assert isinstance(index, VectorIndex) and index.ntotal == 300 and index.dim == 32
    queries = vectors[:5] + 0.01
    scores, ids = index.search(queries, 10)
    exact_scores, exact_ids = FaissIndex.build(vectors, ann_min_chunks=10**9, hnsw_m=16, ef_search=16).search(queries, 10)
    assert scores.shape == ids.shape == (5, 10) and scores.dtype == np.float32 and ids.dtype == np.int64
    assert (ids == exact_ids).mean() >= 0.98 and list(ids[:, 0]) == [0, 1, 2, 3, 4]
    assert np.allclose(scores[:, 0], exact_scores[:, 0], atol=1e-4)

    folder = tmp_path / "version"
    folder.mkdir()
    written = index.save(folder, "dense")
    assert written and all((folder / name).is_file() for name in written)
    again = load_vector_index(index.kind, folder, "dense", store)
    assert again.kind == index.kind and again.ntotal == 300
    again_scores, again_ids = again.search(queries, 10)
    assert (again_ids == ids).all() and np.allclose(again_scores, scores, atol=1e-5)


def test_the_factory_dispatches_on_the_recorded_kind_not_the_current_setting(tmp_path):
    built = build_vector_index(unit_vectors(20), Settings(vector_store="faiss"), version="v1", name="dense")
    built.save(tmp_path, "dense")
    # The setting now says milvus, but this version was built with FAISS: it loads as FAISS.
    loaded = load_vector_index(built.kind, tmp_path, "dense", Settings(vector_store="milvus"))
    assert isinstance(loaded, FaissIndex)


def test_an_unknown_kind_is_a_clear_error(tmp_path):
    with pytest.raises(VectorStoreUnavailable, match="'qdrant'"):
        load_vector_index("qdrant", tmp_path, "dense", Settings())


def test_the_vector_store_is_chosen_by_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_VECTOR_STORE", "milvus")
    monkeypatch.setenv("RAG_MILVUS_URI", "http://milvus:19530")
    settings = Settings()
    assert settings.vector_store == "milvus" and settings.milvus_uri == "http://milvus:19530"
    monkeypatch.setenv("RAG_VECTOR_STORE", "chroma")
    with pytest.raises(ValueError):
        Settings()
