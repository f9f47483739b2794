"""One index version's files: what the manifest records, how a version folder is written (every
file fsynced, checksummed in the manifest, COMPLETE last) and read back into a ``LoadedIndex``.

    versions/<name>/  manifest.json, chunks.jsonl, vectors.npy, title_vectors.npy, dense.*,
                      title_dense.*, bm25.*, hub_*.npy, unit_*, COMPLETE

``rag.index.store`` decides which version serves; this module only writes and reads one.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core.errors import IndexUnavailable, RagError
from rag.index.bm25 import BM25Index
from rag.index.unit_vectors import UnitVectors
from rag.index.vectors import VectorIndex, load_vector_index
from rag.reading.chunking import Chunk

if TYPE_CHECKING:
    from rag.core.settings import Settings

# 2: the manifest carries checksums and COMPLETE those of the manifest. Format-1 versions
# (no checksums) still load; their files are only checked by parsing them.
FORMAT = 2
COMPLETE_MARKER = "COMPLETE"
MANIFEST = "manifest.json"
# Optional (versions written before issue 16 lack them; their hub scores are computed at load).
HUB_SIMS, HUB_IDS = "hub_sims.npy", "hub_ids.npy"
DENSE = "dense"
TITLE_DENSE = "title_dense"
_HASH_BLOCK = 1 << 20


class IndexNotFound(IndexUnavailable, FileNotFoundError):
    pass



class IndexDamaged(IndexNotFound, RagError):
    """A version's files are not what its build wrote (truncated, overwritten, missing).

    A subclass of IndexNotFound so that every place that handles "no index" handles it too.
    """

    exit_code = 2

    def __init__(self, message: str, version: str | None = None) -> None:
        super().__init__(message)
        self.version = version


@dataclass
class FileEntry:
    content_hash: str
    chunks: int
    encoding: str = "utf-8"
    indexed_at: float = 0.0  # when these bytes were indexed (0: before this was recorded)
    # What the note says about itself (rag/reading/scope.py): its tags, and its date (YYYY-MM-DD; ""
    # in a manifest written before dates were recorded: the next build adds it).
    tags: list[str] = field(default_factory=list)
    date: str = ""


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
    # {file name: {"size": bytes, "sha256": hex}} of every file of the version but the manifest
    checksums: dict[str, dict] = field(default_factory=dict)

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
    dense: VectorIndex
    bm25: BM25Index
    # Each passage's title (its heading question) embedded as a query: users' questions
    # resemble the notes' own questions more than their answers.
    title_vectors: np.ndarray
    title_dense: VectorIndex
    # Vectors of the passages' answer units (rag/index/unit_vectors.py); None for a version built
    # without them.
    units: UnitVectors | None = None
    # Each passage's nearest other passages (similarities best first, positions), computed at
    # build time for the hub correction (rag/index/hubness.py); None in versions built before that.
    hub_sims: np.ndarray | None = None
    hub_ids: np.ndarray | None = None



def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def file_checksum(path: Path, fsync: bool = False) -> dict:
    """{"size", "sha256"} of a file (fsynced first when asked, for files just written)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        if fsync:
            os.fsync(fh.fileno())
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}



def check_file(version: str, path: Path, expected: dict) -> None:
    """IndexDamaged unless ``path`` has the size and sha256 its build recorded in ``expected``."""
    try:
        actual = file_checksum(path) if path.stat().st_size == expected["size"] else None
    except OSError as exc:
        raise IndexDamaged(f"index version {version} is damaged: {path.name} is missing ({exc.strerror})",
                           version) from None
    if actual is None:
        raise IndexDamaged(f"index version {version} is damaged: {path.name} has {path.stat().st_size} bytes, "
                           f"its build wrote {expected['size']}", version)
    if actual["sha256"] != expected["sha256"]:
        raise IndexDamaged(f"index version {version} is damaged: {path.name} is not what its build wrote "
                           "(checksum differs)", version)


def write_version(folder: Path, manifest: Manifest, chunks: list[Chunk], tokens: list[list[str]],
                  vectors: np.ndarray, dense: VectorIndex, bm25: BM25Index, title_vectors: np.ndarray,
                  title_dense: VectorIndex, units: UnitVectors | None = None,
                  hubs: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Write every file of a version into the empty ``folder``, then the manifest (with the
    checksums of the others), then COMPLETE (with the manifest's), all fsynced: a folder
    without COMPLETE is a build that did not finish."""
    lines = []
    for chunk, toks in zip(chunks, tokens):
        row = asdict(chunk)
        row["tokens"] = toks
        lines.append(json.dumps(row, ensure_ascii=False))
    write_file(folder / "chunks.jsonl", ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
    arrays = [("vectors.npy", vectors, np.float32), ("title_vectors.npy", title_vectors, np.float32)]
    if hubs is not None:
        arrays += [(HUB_SIMS, hubs[0], np.float32), (HUB_IDS, hubs[1], np.int32)]
    for name, array, dtype in arrays:
        with open(folder / name, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=dtype))
            fh.flush()
            os.fsync(fh.fileno())
    dense.save(folder, DENSE)
    title_dense.save(folder, TITLE_DENSE)
    bm25.save(folder)
    if units is not None:
        units.save(folder)
    manifest.format = FORMAT
    manifest.checksums = {p.name: file_checksum(p, fsync=True) for p in sorted(folder.iterdir())
                          if p.name not in (MANIFEST, COMPLETE_MARKER)}
    manifest_bytes = manifest.to_json().encode("utf-8")
    write_file(folder / MANIFEST, manifest_bytes)
    marker = {MANIFEST: {"size": len(manifest_bytes), "sha256": hashlib.sha256(manifest_bytes).hexdigest()}}
    write_file(folder / COMPLETE_MARKER, json.dumps(marker).encode("utf-8"))
    fsync_dir(folder)


def read_version(folder: Path, version: str, manifest: Manifest, settings: "Settings | None",
                 ef_search: int | None) -> LoadedIndex:
    """Parse a version whose checksums were verified; IndexDamaged when its files disagree."""
    chunks, tokens = [], []
    with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            tokens.append(row.pop("tokens"))
            chunks.append(Chunk(**row))
    vectors = np.load(folder / "vectors.npy")
    title_vectors = np.load(folder / "title_vectors.npy")
    dense = load_vector_index(manifest.dense_kind, folder, DENSE, settings)
    title_dense = load_vector_index(manifest.dense_kind, folder, TITLE_DENSE, settings)
    bm25 = BM25Index.load(folder)
    n = len(chunks)
    if not (vectors.shape[0] == title_vectors.shape[0] == dense.ntotal == title_dense.ntotal
            == bm25.weights.shape[0] == n == manifest.chunk_count):
        raise IndexDamaged(f"index version {version} is damaged: its files disagree on the number of passages",
                           version)
    for index in (dense, title_dense):
        index.set_search_effort(ef_search)
    hub_sims = hub_ids = None
    if (folder / HUB_SIMS).is_file() and (folder / HUB_IDS).is_file():
        hub_sims, hub_ids = np.load(folder / HUB_SIMS), np.load(folder / HUB_IDS)
        if not (len(hub_sims) == len(hub_ids) == n):
            raise IndexDamaged(f"index version {version} is damaged: its hub scores disagree on the number of "
                               "passages", version)
    units = UnitVectors.load(folder)  # owners None when built before they were stored
    if units is not None and units.owners is not None and len(units.owners) and int(units.owners[:, 0].max()) >= n:
        raise IndexDamaged(f"index version {version} is damaged: its unit owners name a passage past the {n} "
                           "it holds", version)
    return LoadedIndex(manifest, chunks, tokens, vectors, dense, bm25, title_vectors, title_dense,
                       units, hub_sims, hub_ids)
