"""The test double of a ``Reranker``: no reranker model ships in a PyPI package, so the seam is
tested with one that returns the order it is told (by the passages' texts), and records what
it was asked. Named as a fake wherever it is used."""
from __future__ import annotations

from typing import Callable, Sequence


class ScriptedReranker:
    """Orders passages by ``key(text)``, highest first (ties keep their order); ``calls`` keeps
    each (question, passages) it was given."""

    def __init__(self, key: Callable[[str], float]) -> None:
        self.key = key
        self.calls: list[tuple[str, list[str]]] = []

    def rerank(self, question: str, passages: Sequence[str]) -> list[int]:
        self.calls.append((question, list(passages)))
        return sorted(range(len(passages)), key=lambda i: -self.key(passages[i]))
