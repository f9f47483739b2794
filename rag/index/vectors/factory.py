"""Which vector index: ``Settings.vector_store`` when building, the manifest's ``dense_kind`` when loading.

Adding a store: a module with a VectorIndex subclass, a branch in ``build_vector_index``
for its ``vector_store`` name and one in ``load_vector_index`` for its ``kind``.
"""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.index.vectors.base import VectorIndex, VectorStoreUnavailable
from rag.index.vectors.faiss_index import KINDS as FAISS_KINDS
from rag.index.vectors.faiss_index import FaissIndex

if TYPE_CHECKING:
    from rag.core.settings import Settings

MILVUS_KIND = "milvus"
MILVUS_LITE_FILE = "milvus.db"
# A random token kept in the index folder: with the folder's path it names the index in Milvus.
INDEX_ID_FILE = "INDEX_ID"
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def milvus_uri(settings: "Settings") -> str:
    """The configured Milvus URI; by default a Milvus Lite database inside the index folder."""
    return settings.milvus_uri or str(Path(settings.index_dir) / MILVUS_LITE_FILE)


def index_identity(index_dir: Path) -> str:
    """Ten hex digits naming one index folder among all the indexes of one Milvus database.

    Derived from a random token kept in the folder (so two machines whose index folders have
    the same path differ) and the folder's absolute path (so a copy of the folder differs
    from the original). A folder that is moved gets a new identity: the collections of its
    old versions are then left in Milvus, never dropped by another index's cleanup.
    """
    folder = Path(index_dir)
    path = folder / INDEX_ID_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if not _TOKEN.match(token):
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        tmp = folder / f"{INDEX_ID_FILE}.{token[:8]}.tmp"
        tmp.write_text(token + "\n", encoding="ascii")
        os.replace(tmp, path)
    return hashlib.sha256(f"{token}:{folder.resolve()}".encode("utf-8")).hexdigest()[:10]


def milvus_prefix(settings: "Settings") -> str:
    """The start of every collection and alias name of this index in Milvus.

    Invariant: two indexes never share it, so one index's build, sweep or pruning never
    touches another's collections in a shared Milvus file or server. A shared index
    (rag/index/shared_index.py) is one index for all its replicas: its prefix is ``milvus_prefix``.
    """
    if settings.shared_index:
        return settings.milvus_prefix
    return f"{settings.milvus_prefix}_{index_identity(settings.index_dir)}"


def build_vector_index(vectors: np.ndarray, settings: "Settings", *, version: str, name: str) -> VectorIndex:
    """A new index of ``vectors`` in the configured store, for index version ``version``."""
    if settings.vector_store == "faiss":
        return FaissIndex.build(vectors, ann_min_chunks=settings.ann_min_chunks, hnsw_m=settings.hnsw_m,
                                ef_search=settings.hnsw_ef_search, ef_construction=settings.hnsw_ef_construction)
    if settings.vector_store == "milvus":
        from rag.index.vectors.milvus_index import MilvusIndex

        return MilvusIndex.build(vectors, uri=milvus_uri(settings), token=settings.milvus_token or "",
                                 prefix=milvus_prefix(settings), version=version, name=name,
                                 index_type=settings.milvus_index_type, hnsw_m=settings.hnsw_m,
                                 ef_construction=settings.hnsw_ef_construction, ef_search=settings.hnsw_ef_search)
    raise VectorStoreUnavailable(f"unknown vector store {settings.vector_store!r}: use faiss or milvus")


def load_vector_index(kind: str, folder: Path, name: str, settings: "Settings | None" = None) -> VectorIndex:
    """The index a version folder holds, by its manifest's ``dense_kind``."""
    ef_search = settings.hnsw_ef_search if settings is not None else None
    if kind in FAISS_KINDS:
        index = FaissIndex.load(folder, name)
        index.set_search_effort(ef_search)
        return index
    if kind == MILVUS_KIND:
        from rag.index.vectors.milvus_index import MilvusIndex

        uri = settings.milvus_uri if settings is not None else None
        token = (settings.milvus_token or "") if settings is not None else ""
        return MilvusIndex.load(folder, name, uri=uri, token=token, ef_search=ef_search)
    raise VectorStoreUnavailable(f"this index was built with a vector store this version does not know ({kind!r})")


def publish_vectors(indexes: list[VectorIndex]) -> None:
    for index in indexes:
        index.publish()


def check_vectors(folder: Path, settings: "Settings | None" = None) -> None:
    """Raise if what a version keeps outside its folder (Milvus collections) is gone or incomplete.
    The files in the folder are checked by the store's checksums."""
    from rag.index.vectors.milvus_index import DESCRIPTOR_SUFFIX

    if not any(Path(folder).glob(f"*{DESCRIPTOR_SUFFIX}")):
        return
    from rag.index.vectors.milvus_index import check_described

    check_described(folder, token=(settings.milvus_token or "") if settings else "",
                    uri=settings.milvus_uri if settings else None)


def discard_vectors(folder: Path, settings: "Settings | None" = None) -> None:
    """Free what a version about to be deleted keeps outside its folder (Milvus collections)."""
    from rag.index.vectors.milvus_index import DESCRIPTOR_SUFFIX

    if not any(Path(folder).glob(f"*{DESCRIPTOR_SUFFIX}")):
        return
    from rag.index.vectors.milvus_index import drop_described

    drop_described(folder, token=(settings.milvus_token or "") if settings else "",
                   uri=settings.milvus_uri if settings else None,
                   prefix=milvus_prefix(settings) if settings is not None else None)


def sweep_vectors(settings: "Settings | None", keep_versions: set[str]) -> None:
    """Drop what builds that died mid-way left in the configured external store."""
    if settings is None or settings.vector_store != "milvus":
        return
    from rag.index.vectors.milvus_index import sweep

    sweep(milvus_uri(settings), settings.milvus_token or "", milvus_prefix(settings), keep_versions)
