"""Optional second-stage reranking of retrieval candidates.

A ``Reranker`` reads the question beside each candidate passage and returns a better order
(``base.Reranker``). None is used by default: no reranker model ships in a PyPI package, and
the hybrid ranking needs none to beat the baselines (bench/retrieval_quality.py). A user with a
sentence-transformers CrossEncoder (``RAG_RERANKER_MODEL``) gets it from ``make_reranker``.

To add one: implement ``rerank`` in a new module here and return it from ``make_reranker``.
``scripted.ScriptedReranker`` is the test double: it returns the order it is told.
"""
from __future__ import annotations

from rag.core.settings import Settings
from rag.search.rerankers.base import Reranker

__all__ = ["Reranker", "make_reranker"]


def make_reranker(settings: Settings) -> Reranker | None:
    """The reranker the settings name, or None (the default: hybrid ranking alone)."""
    if not settings.reranker_model:
        return None
    from rag.search.rerankers.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(settings.reranker_model)
