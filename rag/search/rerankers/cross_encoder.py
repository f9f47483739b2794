"""A sentence-transformers CrossEncoder as the reranker (``RAG_RERANKER_MODEL``: a name or a local
path, e.g. ``BAAI/bge-reranker-v2-m3``); needs the ``[st]`` extra."""
from __future__ import annotations

from typing import Sequence


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder, by model name or local path."""

    def __init__(self, model: str) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:  # sentence-transformers (torch) is the [st] extra
            from rag.index.embedders.base import ST_INSTALL

            raise RuntimeError(f"reranking needs sentence-transformers: {ST_INSTALL}") from exc
        self._model = CrossEncoder(model, device="cpu")

    def rerank(self, question: str, passages: Sequence[str]) -> list[int]:
        if not passages:
            return []
        scores = self._model.predict([(question, p) for p in passages], show_progress_bar=False)
        return sorted(range(len(passages)), key=lambda i: -float(scores[i]))
