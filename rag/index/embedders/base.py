"""The one interface every embedder implements, and the names the others share.

An embedder turns texts into L2-normalised float32 rows, passages and queries each with their
model's own marking (rag/index/embedders/prompts.py). Its ``identity`` goes into the index
manifest: an index is read only by the embedder that built it (IndexMismatch otherwise).
To add one: a class with these four members in a new module here, and a branch in
``factory.make_embedder`` and ``factory.embedder_identity``.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

E5_SMALL = "intfloat/multilingual-e5-small"
# sentence-transformers (torch) is an extra: the default embedder does not need it.
ST_INSTALL = ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && "
              "pip install -e '.[st]'")


class Embedder(Protocol):
    identity: str  # recorded in the index manifest: a different identity forces a full rebuild
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...
