"""How embedding models want their inputs marked, and the vector convention every embedder keeps.

Shared by the in-process embedders (rag/index/embedders/factory.py) and the server client
(rag/index/embedders/server.py), so neither imports the other for it. Invariant: ``normalise`` returns
float32 rows of unit length (zero rows stay zero), which every embedder hands out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prompts", "known_prompts", "normalise"]


@dataclass(frozen=True)
class Prompts:
    """How a model wants queries and passages marked."""

    query_prefix: str = ""
    passage_prefix: str = ""
    query_prompt_name: str | None = None  # a named prompt stored with the model (Qwen3-Embedding)


def known_prompts(model: str) -> Prompts:
    name = model.lower()
    if "e5" in name and "instruct" not in name:
        return Prompts("query: ", "passage: ")
    if "multilingual-e5" in name and "instruct" in name:
        return Prompts("Instruct: Given a question, retrieve passages from notes that answer it\nQuery: ", "")
    if "qwen3-embedding" in name:
        return Prompts(query_prompt_name="query")
    if "bge-" in name and "m3" not in name and "zh" in name:
        return Prompts("为这个句子生成表示以用于检索相关文章：", "")
    if "bge-" in name and "m3" not in name:
        return Prompts("Represent this sentence for searching relevant passages: ", "")
    return Prompts()


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
