"""FAISS in the index folder: exact (flat) below ``ann_min_chunks`` rows, HNSW above.

The file is ``<name>.faiss`` in the version folder. Kinds: "flat" (IndexFlatIP) and
"hnsw" (IndexHNSWFlat, inner product); both answer ``search`` natively in the shape the
interface promises.
"""
from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from rag.index.vectors.base import VectorIndex

FLAT = "flat"
HNSW = "hnsw"
KINDS = (FLAT, HNSW)
# Construction depth of the HNSW graph when no setting is given (Settings.hnsw_ef_construction).
HNSW_EF_CONSTRUCTION = 80


class FaissIndex(VectorIndex):
    def __init__(self, index: faiss.Index) -> None:
        self.faiss = index
        self.kind = HNSW if hasattr(index, "hnsw") else FLAT

    # --- construction --------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, *, ann_min_chunks: int, hnsw_m: int, ef_search: int,
              ef_construction: int = HNSW_EF_CONSTRUCTION) -> "FaissIndex":
        dim = vectors.shape[1]
        if len(vectors) >= ann_min_chunks:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        else:
            index = faiss.IndexFlatIP(dim)
        wrapped = cls(index)
        if len(vectors):
            wrapped.add(vectors)
        return wrapped

    @classmethod
    def load(cls, folder: Path, name: str) -> "FaissIndex":
        return cls(faiss.read_index(str(Path(folder) / f"{name}.faiss")))

    # --- the interface -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.faiss.ntotal)

    @property
    def dim(self) -> int:
        return int(self.faiss.d)

    @property
    def ef_search(self) -> int | None:
        return int(self.faiss.hnsw.efSearch) if self.kind == HNSW else None

    def add(self, vectors: np.ndarray) -> None:
        self.faiss.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.faiss.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def set_search_effort(self, ef_search: int | None) -> None:
        if ef_search and self.kind == HNSW:
            self.faiss.hnsw.efSearch = ef_search

    def save(self, folder: Path, name: str) -> list[str]:
        filename = f"{name}.faiss"
        path = Path(folder) / filename
        faiss.write_index(self.faiss, str(path))
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        return [filename]
