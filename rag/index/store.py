"""The on-disk index: versioned folders swapped in atomically, every file checked when loaded.

    index/
      CURRENT              name of the version that serves (replaced with os.replace)
      .lock                held by the one build that may run
      versions/<name>/     manifest.json, chunks.jsonl, vectors.npy, dense.faiss, bm25.*, COMPLETE

With ``shared_index`` (rag/index/shared_index.py) the folder is this replica's cache of the
versions Milvus holds: CURRENT follows Milvus's current version, a version this folder
lacks is fetched whole before it is pointed at, builds lock through Milvus as well, and
only the build holding that lock deletes shared versions.

A build writes a whole new version folder, fsyncs it, and only then points CURRENT
at it, so a crash, SIGKILL or Ctrl-C mid-build leaves the previous version serving
and readers never see a half-written index.

Integrity: the manifest records the size and sha256 of every other file of its version
(``checksums``), and the COMPLETE marker, written last, records those of the manifest.
``load`` checks them all before parsing anything, so a truncated or overwritten file is
reported as ``IndexDamaged`` naming the file, never as a parser's traceback.
``load_serving`` is what readers use: a damaged current version (or a lost CURRENT
pointer) falls back to the newest intact older version, with a warning that says so.

What is in one version folder, and how it is written and read back, is ``version_files``;
the lock that lets one build run at a time is ``build_lock``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from rag.index.bm25 import BM25Index
from rag.index.build_lock import folder_lock
from rag.reading.chunking import Chunk
from rag.index.shared_index import make_shared_index
from rag.index.unit_vectors import UnitVectors
from rag.index.version_files import (COMPLETE_MARKER, MANIFEST, IndexDamaged, IndexNotFound, LoadedIndex, Manifest,
                                     check_file, fsync_dir, read_version, write_file, write_version)
from rag.index.vectors import (VectorIndex, VectorStoreUnavailable, check_vectors, discard_vectors, publish_vectors,
                               sweep_vectors)
from rag.index.vectors.faiss_index import FaissIndex

if TYPE_CHECKING:
    from rag.core.settings import Settings

log = logging.getLogger(__name__)

# A fetch from the shared index older than this was left by a process that died: removed.
STALE_FETCH_S = 3600
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def build_dense(vectors: np.ndarray, ann_min_chunks: int, hnsw_m: int, ef_search: int) -> FaissIndex:
    """A FAISS index (exact below ``ann_min_chunks`` rows, HNSW above); see rag/index/vectors for other stores."""
    return FaissIndex.build(vectors, ann_min_chunks=ann_min_chunks, hnsw_m=hnsw_m, ef_search=ef_search)


class IndexStore:
    def __init__(self, root: Path, settings: "Settings | None" = None) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.settings = settings  # for stores that live outside the folder (Milvus URI, efSearch)
        self.shared = make_shared_index(settings)
        self._follow_lock = threading.Lock()
        self._building = False  # this store holds the build lock (only then may it prune shared versions)

    # --- reading -----------------------------------------------------------------
    def pointer(self) -> str | None:
        """The name CURRENT holds, whether or not that version exists (None: no readable pointer)."""
        try:
            name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return name if _VERSION_NAME.match(name) else None

    def current_version(self) -> str | None:
        if self.shared is not None:
            self._follow_shared()
        name = self.pointer()
        return name if name and (self.versions / name / COMPLETE_MARKER).exists() else None

    def _follow_shared(self) -> None:
        """Point CURRENT at the version Milvus says serves, fetching it first if this folder lacks it.
        Milvus unreachable: keep serving what this folder has, with a warning."""
        try:
            version = self.shared.current()
            if version is None or (version == self.pointer() and (self.versions / version / COMPLETE_MARKER).exists()):
                return
            with self._follow_lock:
                if not (self.versions / version / COMPLETE_MARKER).exists():
                    self.versions.mkdir(parents=True, exist_ok=True)
                    self.shared.fetch(version, self.versions, last=COMPLETE_MARKER)
                    log.info("fetched index version %s from Milvus", version)
                self.point_at(version)
        except (VectorStoreUnavailable, OSError) as exc:
            log.warning("cannot follow the shared index (serving this replica's copy): %s", exc)

    def complete_versions(self) -> list[str]:
        """Versions whose build finished, newest first (by when they were completed)."""
        found = []
        try:
            folders = list(self.versions.iterdir())
        except OSError:
            return []
        for folder in folders:
            if folder.name.startswith("."):
                continue  # a fetch from the shared index in progress (rag/index/shared_index.py)
            try:
                found.append((os.stat(folder / COMPLETE_MARKER).st_mtime, folder.name))
            except OSError:
                continue
        return [name for _, name in sorted(found, reverse=True)]

    def read_manifest(self, version: str | None = None) -> Manifest | None:
        """The manifest of ``version`` (default: current), checked against COMPLETE; None if no index.

        Raises IndexDamaged when the manifest or its marker is not what the build wrote.
        """
        version = version or self.current_version()
        if not version:
            return None
        folder = self.versions / version
        try:
            marker = (folder / COMPLETE_MARKER).read_bytes()
            expected = json.loads(marker)[MANIFEST] if marker.strip() else None  # empty: format 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexDamaged(f"index version {version} is damaged: its COMPLETE marker is unreadable ({exc})",
                               version) from None
        path = folder / MANIFEST
        if expected is not None:
            check_file(version, path, expected)
        try:
            return Manifest.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IndexDamaged(f"index version {version} is damaged: {MANIFEST} is unreadable ({exc})",
                               version) from None

    def verify(self, version: str) -> Manifest:
        """Check every file of ``version`` against the checksums recorded at write time."""
        manifest = self.read_manifest(version)
        if manifest is None:
            raise IndexNotFound(f"no index version {version} in {self.root}")
        for name, expected in manifest.checksums.items():
            check_file(version, self.versions / version / name, expected)
        return manifest

    def _check_vectors(self, version: str) -> None:
        try:
            check_vectors(self.versions / version, self.settings)
        except VectorStoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a missing or short collection
            raise IndexDamaged(f"index version {version} is damaged: {exc}", version) from None

    def load(self, version: str | None = None, ef_search: int | None = None) -> LoadedIndex:
        """Load a version after checking every file; IndexDamaged names what is wrong."""
        version = version or self.current_version()
        if not version:
            raise IndexNotFound(f"no index in {self.root}: run `rag index` first")
        manifest = self.verify(version)
        try:
            return read_version(self.versions / version, version, manifest, self.settings, ef_search)
        except (IndexDamaged, VectorStoreUnavailable):
            raise  # a store that is down or not installed is not a damaged version
        except Exception as exc:  # noqa: BLE001 - a format-1 version, or a store outside the folder
            raise IndexDamaged(f"index version {version} is damaged: {type(exc).__name__}: {exc}", version) from None

    def _candidates(self) -> tuple[list[str], list[str]]:
        """Finished versions in the order to try them (the current one first, then the newest),
        and the problem with the CURRENT pointer when it names none of them."""
        current = self.current_version()
        candidates = self.complete_versions()
        problems = []
        if current is None and candidates:
            problems.append(f"the CURRENT pointer names no finished version ({self.pointer() or 'missing or unreadable'})")
        if current is not None:
            candidates = [current] + [v for v in candidates if v != current]
        return candidates, problems

    def newest_intact(self) -> tuple[str | None, Manifest | None, list[str], set[str]]:
        """(version, manifest, problems, damaged): the current version if intact, else the newest intact
        older one; ``problems`` says what was wrong on the way (empty when the current version is
        fine) and ``damaged`` names the versions found damaged. Checks files, parses no data."""
        damaged: set[str] = set()
        candidates, problems = self._candidates()
        for version in candidates:
            try:
                manifest = self.verify(version)
                self._check_vectors(version)
                return version, manifest, problems, damaged
            except IndexNotFound as exc:
                problems.append(str(exc))
                damaged.add(version)
        return None, None, problems, damaged

    def load_serving(self, ef_search: int | None = None) -> tuple[LoadedIndex, str | None]:
        """The index readers should serve, and a warning when it is not the current version.

        Tries the current version, then older intact ones, newest first. Raises IndexDamaged
        when versions exist but none is intact, IndexNotFound when there are none.
        """
        candidates, problems = self._candidates()
        for version in candidates:
            try:
                index = self.load(version, ef_search)
            except IndexNotFound as exc:
                problems.append(str(exc))
                continue
            if not problems:
                return index, None
            warning = (f"{'; '.join(problems)}. Serving the older version {version} instead; "
                       "run `rag index` to repair the index.")
            log.warning("%s", warning)
            return index, warning
        if problems:
            raise IndexDamaged(f"{'; '.join(problems)}; no intact version is left: run `rag index --full`")
        raise IndexNotFound(f"no index in {self.root}: run `rag index` first")

    # --- writing -----------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the build lock for the block (``folder_lock``; through Milvus as well when the index
        is shared); IndexLocked when another build holds it."""
        with folder_lock(self.root):
            with self.shared.build_lock() if self.shared is not None else nullcontext():
                self._building = True
                try:
                    yield
                finally:
                    self._building = False

    def write(self, manifest: Manifest, chunks: list[Chunk], tokens: list[list[str]], vectors: np.ndarray,
              dense: VectorIndex, bm25: BM25Index, title_vectors: np.ndarray, title_dense: VectorIndex,
              units: UnitVectors | None = None, hubs: tuple[np.ndarray, np.ndarray] | None = None) -> str:
        """Write a complete new version and make it current. Call with the lock held.

        ``units``: the answer units' vectors (rag/index/unit_vectors.py); ``hubs``: each passage's
        nearest neighbours (similarities, positions) for the hub correction, stored beside the
        vectors (rag/index/hubness.py)."""
        if self.versions.exists() and not self.versions.is_dir():
            self.versions.unlink()  # something else squats the name; the index owns this folder
        self.versions.mkdir(parents=True, exist_ok=True)
        folder = self.versions / manifest.version
        folder.mkdir()
        write_version(folder, manifest, chunks, tokens, vectors, dense, bm25, title_vectors, title_dense, units, hubs)
        if self.shared is not None:
            self.shared.upload(folder, manifest.version)  # all of it in Milvus before anyone switches
        self.point_at(manifest.version)
        try:
            publish_vectors([dense, title_dense])
        except Exception as exc:  # noqa: BLE001 - the local switch is done; say what did not follow
            log.warning("version %s is current but its vector store alias was not moved: %s", manifest.version, exc)
        if self.shared is not None:
            self.shared.publish(manifest.version)  # every replica switches here
        return manifest.version

    def point_at(self, version: str) -> None:
        """Make ``version`` current. The swap: readers see the old CURRENT or the new one, never a mix."""
        target = self.root / "CURRENT"
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # not ours to keep: CURRENT is a one-line file
        tmp = self.root / f"CURRENT.{uuid.uuid4().hex}.tmp"
        write_file(tmp, version.encode("utf-8"))
        os.replace(tmp, target)
        fsync_dir(self.root)

    def discard(self, version: str) -> None:
        """Delete a version (never the current one) and whatever it keeps outside its folder."""
        if version == self.current_version():
            return
        folder = self.versions / version
        self._discard_outside(folder)
        shutil.rmtree(folder, ignore_errors=True)

    def _discard_outside(self, folder: Path) -> None:
        """Free what a version keeps outside its folder, unless it is shared (the builder prunes those)."""
        if self.shared is None:
            discard_vectors(folder, self.settings)

    def prune(self, keep_old: int, damaged: set[str] | frozenset[str] = frozenset()) -> None:
        """Delete unfinished builds, the ``damaged`` versions and all but ``keep_old`` superseded ones."""
        current = self.current_version()
        if not self.versions.is_dir():
            return
        for folder in versions_to_delete(self.versions, current, damaged, keep_old):
            self._discard_outside(folder)
            shutil.rmtree(folder, ignore_errors=True)
        for tmp in self.root.glob("CURRENT.*.tmp"):
            tmp.unlink(missing_ok=True)
        kept = {p.name for p in self.versions.iterdir() if p.is_dir()}
        try:
            if self.shared is not None:
                if not self._building:
                    return  # shared versions and their collections belong to the build holding the lock
                kept |= set(self.shared.prune(keep_old))
            sweep_vectors(self.settings, kept)
        except Exception as exc:  # noqa: BLE001 - leftovers cost space, not correctness
            log.warning("could not clean up the vector store: %s", exc)


def versions_to_delete(versions: Path, current: str | None, damaged: set[str] | frozenset[str],
                       keep_old: int) -> list[Path]:
    """The version folders a prune deletes: unfinished builds, ``damaged`` ones and all but the newest
    ``keep_old`` superseded ones. Never the current one, nor anything a build did not make; a
    fetch from the shared index (a hidden folder) only once it is stale, left by a crash."""
    unfinished, complete = [], []
    for folder in versions.iterdir():
        if folder.name == current or not folder.is_dir() or folder.is_symlink():
            continue
        if folder.name.startswith("."):  # a fetch from the shared index: in progress, or left by a crash
            if time.time() - folder.stat().st_mtime > STALE_FETCH_S:
                unfinished.append(folder)
            continue
        if not (folder / COMPLETE_MARKER).exists() or folder.name in damaged:
            unfinished.append(folder)  # a build that died mid-way, or a broken one
        else:
            complete.append(folder)
    complete.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return unfinished + complete[keep_old:]


def new_version_name() -> str:
    return time.strftime("v%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
