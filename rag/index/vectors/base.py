"""The contract every dense vector index keeps.

An index holds the rows 0..n-1 of one index version's vector matrix (the position of a
passage in chunks.jsonl is its id), compared by inner product on L2-normalised vectors.
``search`` answers exactly like FAISS: two arrays of shape (n_queries, k), float32
scores best first and int64 ids, with id -1 (score -inf or 0) where fewer than k rows
exist. rag/search/retrieval.py relies on that shape and nothing else.

Persistence belongs to the index: ``save(folder, name)`` writes files whose names start
with ``name`` into the version folder (the store checksums every file there), and
``load`` reads them back. A store that keeps its data elsewhere (Milvus) writes a small
descriptor file naming where, so the version folder stays the one thing that says what
a version is. ``publish`` is called after the version became current (Milvus moves an
alias); ``discard`` frees what a deleted version held outside its folder.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from rag.core.errors import RagError


class VectorStoreUnavailable(RagError):
    """A configured vector store cannot be used: its package is missing or its server is down."""

    exit_code = 2


class VectorIndex(ABC):
    """One dense index of one index version (see the module docstring for the contract)."""

    #: What the manifest records as ``dense_kind``; the factory dispatches on it when loading.
    kind: str = ""

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of rows."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector width."""

    @abstractmethod
    def add(self, vectors: np.ndarray) -> None:
        """Append rows; the first gets id ``ntotal``."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 (nq, k), ids int64 (nq, k)), best first, -1 ids where there are fewer than k."""

    @abstractmethod
    def save(self, folder: Path, name: str) -> list[str]:
        """Write this index durably (fsynced) into ``folder``; return the names of the files written."""

    def set_search_effort(self, ef_search: int | None) -> None:
        """Trade speed for recall at query time (HNSW efSearch); a no-op for exact indexes."""

    def publish(self) -> None:
        """Called once the version holding this index became current."""

    def close(self) -> None:
        """Release connections; the data stays."""

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.dim}"


def pad_results(rows: list[list[tuple[float, int]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS-shaped arrays from per-query lists of (score, id), padded with (-inf, -1)."""
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    ids = np.full((len(rows), k), -1, dtype=np.int64)
    for q, row in enumerate(rows):
        for j, (score, idx) in enumerate(row[:k]):
            scores[q, j] = score
            ids[q, j] = idx
    return scores, ids
