"""A disk cache around the real embedder, for benchmarks that embed the same texts run after run.

Vectors are keyed by (embedder identity, query or passage, sha256 of the text) in one
SQLite file, so a sweep over chunking variants embeds each distinct passage once, ever.
Only benchmarks use it: an index build in the product never reads this cache.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_PATH = Path(os.environ.get("RAG_BENCH_CACHE", Path.home() / ".cache" / "notes-rag" / "bench-embeddings.sqlite"))


class CachedEmbedder:
    """Same interface and identity as the wrapped embedder; vectors come from the cache when known."""

    def __init__(self, inner, path: Path = DEFAULT_PATH) -> None:
        self.inner, self.identity, self.dim = inner, inner.identity, inner.dim
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=120)
        self._db.execute("CREATE TABLE IF NOT EXISTS v (key TEXT PRIMARY KEY, vec BLOB)")
        self._lock = threading.Lock()
        self.misses = 0

    def _key(self, text: str, query: bool) -> str:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return f"{self.identity}|{'q' if query else 'p'}|{digest}"

    def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        keys = [self._key(t, query) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                rows = self._db.execute(f"SELECT key, vec FROM v WHERE key IN ({','.join('?' * len(part))})", part)
                found.update((k, np.frombuffer(b, dtype=np.float32)) for k, b in rows)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
        if missing:
            self.misses += len(missing)
            fn = self.inner.embed_queries if query else self.inner.embed_passages
            vectors = np.asarray(fn(missing), dtype=np.float32)
            with self._lock:
                rows = [(self._key(t, query), v.tobytes()) for t, v in zip(missing, vectors)]
                self._db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)", rows)
                self._db.commit()
            found.update((self._key(t, query), v) for t, v in zip(missing, vectors))
        return np.stack([found[k] for k in keys])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, True)
