"""The one method a reranker implements."""
from __future__ import annotations

from typing import Protocol, Sequence


class Reranker(Protocol):
    def rerank(self, question: str, passages: Sequence[str]) -> list[int]:
        """Indices into ``passages``, best first; every index exactly once."""
        ...
