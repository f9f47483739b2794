"""Optional second-stage reranking of retrieval candidates.

A ``Reranker`` reads the question beside each candidate passage and returns a better
order. None is used by default: no reranker model ships in a PyPI package, and the
hybrid ranking needs none to beat the baselines (bench/retrieval_quality.py). A user
with a sentence-transformers CrossEncoder (``RAG_RERANKER_MODEL``, a name or a local
path, e.g. ``BAAI/bge-reranker-v2-m3``) gets it through ``make_reranker``.

To add one: implement ``rerank`` in a new class and return it from ``make_reranker``.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from rag.core.settings import Settings


class Reranker(Protocol):
    def rerank(self, question: str, passages: Sequence[str]) -> list[int]:
        """Indices into ``passages``, best first; every index exactly once."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder, by model name or local path."""

    def __init__(self, model: str) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:  # sentence-transformers (torch) is the [st] extra
            from rag.index.embedders.factory import ST_INSTALL

            raise RuntimeError(f"reranking needs sentence-transformers: {ST_INSTALL}") from exc
        self._model = CrossEncoder(model, device="cpu")

    def rerank(self, question: str, passages: Sequence[str]) -> list[int]:
        if not passages:
            return []
        scores = self._model.predict([(question, p) for p in passages], show_progress_bar=False)
        return sorted(range(len(passages)), key=lambda i: -float(scores[i]))


def make_reranker(settings: Settings) -> Reranker | None:
    if not settings.reranker_model:
        return None
    return CrossEncoderReranker(settings.reranker_model)
