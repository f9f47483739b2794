"""The on-disk index: versioned folders swapped in atomically.

    index/
      CURRENT              name of the version that serves (replaced with os.replace)
      .lock                held by the one build that may run
      versions/<name>/     manifest.json, chunks.jsonl, vectors.npy, dense.faiss, bm25.*

A build writes a whole new version folder, fsyncs it, and only then points CURRENT
at it, so a crash, SIGKILL or Ctrl-C mid-build leaves the previous version serving
and readers never see a half-written index.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np
from filelock import FileLock, Timeout

from .bm25 import BM25Index
from .chunking import Chunk
from .errors import IndexBusy, IndexUnavailable

log = logging.getLogger(__name__)

FORMAT = 1
COMPLETE_MARKER = "COMPLETE"


class IndexLocked(IndexBusy, RuntimeError):
    pass


class IndexNotFound(IndexUnavailable, FileNotFoundError):
    pass


@dataclass
class FileEntry:
    content_hash: str
    chunks: int
    encoding: str = "utf-8"


@dataclass
class Manifest:
    version: str
    built_at: float
    embedder: str
    dim: int
    chunker: str
    dense_kind: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    skipped_hashes: dict[str, str] = field(default_factory=dict)  # so an unchanged bad file is not retried
    format: int = FORMAT

    @property
    def chunk_count(self) -> int:
        return sum(f.chunks for f in self.files.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        raw = json.loads(text)
        raw["files"] = {k: FileEntry(**v) for k, v in raw.get("files", {}).items()}
        return cls(**raw)


@dataclass
class LoadedIndex:
    manifest: Manifest
    chunks: list[Chunk]
    tokens: list[list[str]]  # BM25 terms per chunk, kept so rebuilds need not re-segment
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    dense: faiss.Index
    bm25: BM25Index
    # Each passage's title (its heading question) embedded as a query: users' questions
    # resemble the notes' own questions more than their answers.
    title_vectors: np.ndarray
    title_dense: faiss.Index


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def build_dense(vectors: np.ndarray, ann_min_chunks: int, hnsw_m: int, ef_search: int) -> faiss.Index:
    dim = vectors.shape[1]
    if len(vectors) >= ann_min_chunks:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"

    # --- reading -----------------------------------------------------------------
    def current_version(self) -> str | None:
        try:
            name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name if (self.versions / name / COMPLETE_MARKER).exists() else None

    def read_manifest(self, version: str | None = None) -> Manifest | None:
        version = version or self.current_version()
        if not version:
            return None
        return Manifest.from_json((self.versions / version / "manifest.json").read_text(encoding="utf-8"))

    def load(self, version: str | None = None, ef_search: int | None = None) -> LoadedIndex:
        version = version or self.current_version()
        if not version:
            raise IndexNotFound(f"no index in {self.root}: run `rag index` first")
        folder = self.versions / version
        manifest = self.read_manifest(version)
        chunks, tokens = [], []
        with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                tokens.append(row.pop("tokens"))
                chunks.append(Chunk(**row))
        vectors = np.load(folder / "vectors.npy")
        title_vectors = np.load(folder / "title_vectors.npy")
        dense = faiss.read_index(str(folder / "dense.faiss"))
        title_dense = faiss.read_index(str(folder / "title_dense.faiss"))
        for index in (dense, title_dense):
            if ef_search and hasattr(index, "hnsw"):
                index.hnsw.efSearch = ef_search
        return LoadedIndex(manifest, chunks, tokens, vectors, dense, BM25Index.load(folder), title_vectors,
                           title_dense)

    # --- writing -----------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise IndexLocked(
                f"another `rag index` is already building {self.root} (lock file {self.root / '.lock'}); "
                "wait for it to finish"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def write(self, manifest: Manifest, chunks: list[Chunk], tokens: list[list[str]], vectors: np.ndarray,
              dense: faiss.Index, bm25: BM25Index, title_vectors: np.ndarray, title_dense: faiss.Index) -> str:
        """Write a complete new version and make it current. Call with the lock held."""
        self.versions.mkdir(parents=True, exist_ok=True)
        folder = self.versions / manifest.version
        folder.mkdir()
        lines = []
        for chunk, toks in zip(chunks, tokens):
            row = asdict(chunk)
            row["tokens"] = toks
            lines.append(json.dumps(row, ensure_ascii=False))
        _write_file(folder / "chunks.jsonl", ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
        for name, array in (("vectors.npy", vectors), ("title_vectors.npy", title_vectors)):
            with open(folder / name, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array, dtype=np.float32))
                fh.flush()
                os.fsync(fh.fileno())
        faiss.write_index(dense, str(folder / "dense.faiss"))
        faiss.write_index(title_dense, str(folder / "title_dense.faiss"))
        bm25.save(folder)
        _write_file(folder / "manifest.json", manifest.to_json().encode("utf-8"))
        for name in ("dense.faiss", "title_dense.faiss", "bm25.npz", "bm25_vocab.json"):
            with open(folder / name, "rb") as fh:
                os.fsync(fh.fileno())
        _write_file(folder / COMPLETE_MARKER, b"")
        _fsync_dir(folder)
        # The swap: readers see either the old CURRENT or the new one, never a mix.
        tmp = self.root / f"CURRENT.{uuid.uuid4().hex}.tmp"
        _write_file(tmp, manifest.version.encode("utf-8"))
        os.replace(tmp, self.root / "CURRENT")
        _fsync_dir(self.root)
        return manifest.version

    def prune(self, keep_old: int) -> None:
        """Delete unfinished builds and all but ``keep_old`` superseded versions."""
        current = self.current_version()
        if not self.versions.is_dir():
            return
        complete = []
        for folder in self.versions.iterdir():
            if folder.name == current:
                continue
            if not (folder / COMPLETE_MARKER).exists():
                shutil.rmtree(folder, ignore_errors=True)  # a build that died mid-way
            else:
                complete.append(folder)
        complete.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for folder in complete[keep_old:]:
            shutil.rmtree(folder, ignore_errors=True)
        for tmp in self.root.glob("CURRENT.*.tmp"):
            tmp.unlink(missing_ok=True)


def new_version_name() -> str:
    return time.strftime("v%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
