"""Any sentence-transformers model, by hub name (when online or cached) or local path, with the
query/passage conventions of its family; needs the ``[st]`` extra (torch)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.index.embedders.base import ST_INSTALL
from rag.index.embedders.prompts import Prompts, known_prompts


class SentenceTransformerEmbedder:
    def __init__(self, model: str, prompts: Prompts | None = None, batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            from rag.core.errors import ConfigError

            raise ConfigError(f"the embedding model {model!r} needs sentence-transformers, which is not installed: "
                              f"{ST_INSTALL}") from None

        self._model = SentenceTransformer(model, device="cpu")
        self.prompts = prompts or known_prompts(model)
        self.batch_size = batch_size
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.identity = f"sentence-transformers:{model}"

    def _encode(self, texts: Sequence[str], prefix: str, prompt_name: str | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            **({"prompt_name": prompt_name} if prompt_name else {}),
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.query_prefix, self.prompts.query_prompt_name)
