"""Milvus as the dense store: Milvus Lite in a local folder, or a Milvus server, same code.

``RAG_MILVUS_URI`` names the database: a path ending in ``.db`` is Milvus Lite (pymilvus
starts the engine inside this process; one process at a time may open the folder), and
``http://host:19530`` is Milvus Standalone/Distributed or ``python -m milvus_lite server``.

Versions and switching, the same promises as the FAISS folders:
- ``<prefix>`` carries the index's own identity (``rag.index.vectors.factory.milvus_prefix``:
  ``milvus_prefix`` and a hash of the index folder), so several index folders can share one
  Milvus Lite file or server: a build, its sweep and its pruning only ever drop names that
  start with its own prefix, and pruning only the collections its own versions list.
- every index version gets new collections, ``<prefix>_<version>_<name>``; a build fills
  and indexes them, checks the row count, and only then writes the small descriptor file
  ``<name>.milvus.json`` into the version folder. A build that dies leaves collections
  no complete version names; the next build drops them (``sweep``).
- readers search the collection their version's descriptor names, so the passages and
  the vectors they search always belong to the same version.
- after the version became current the alias ``<prefix>_<name>`` is moved to its
  collection (``alter_alias``, atomic in Milvus): what a replica or an outside tool
  looks up to find the serving collection.

Ids are row positions (INT64 primary key), scores inner products (metric IP).
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np

from rag.index.vectors.base import VectorIndex, VectorStoreUnavailable, pad_results

log = logging.getLogger(__name__)

KIND = "milvus"
DESCRIPTOR_SUFFIX = ".milvus.json"
# Rows per insert call: 5,000 x 384 floats is ~8 MB, well under gRPC's 64 MB message cap.
INSERT_BATCH = 5_000
INSTALL_HINT = "the Milvus vector store needs pymilvus and milvus-lite: pip install pymilvus milvus-lite"

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def _pymilvus():
    try:
        import pymilvus
    except ImportError as exc:
        raise VectorStoreUnavailable(f"{INSTALL_HINT} ({exc})") from None
    if not log.isEnabledFor(logging.DEBUG):
        # pymilvus logs every failed call with its traceback (three for one damaged file), and
        # Milvus Lite each table it had to fall back from; every failure here becomes one
        # VectorStoreUnavailable or IndexDamaged line, so they are shown only with --debug.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
    return pymilvus


def client_for(uri: str, token: str = ""):
    """One MilvusClient per URI per process (Milvus Lite allows one engine per folder)."""
    key = f"{uri}\x00{token}"
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            pymilvus = _pymilvus()
            if uri.endswith(".db"):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                repair_lite_tables(Path(uri))
            try:
                client = pymilvus.MilvusClient(uri=uri, token=token)
            except Exception as exc:  # noqa: BLE001 - grpc, lock and connection errors alike
                raise VectorStoreUnavailable(f"cannot open Milvus at {uri}: {exc}") from None
            _clients[key] = client
        return client


# Milvus Lite's small JSON tables, per database (the default one at the top of the folder).
# An unreadable one fails every call that touches it (has_collection included), so no
# index in the file could be built or read until it was deleted by hand.
LITE_TABLES = ("aliases.json", "database_properties.json")


def repair_lite_tables(folder: Path) -> list[Path]:
    """Rebuild Milvus Lite tables that are not a JSON object (kept beside as ``*.damaged``); the fixed paths.

    Aliases are only names for what a version's descriptor already names: no reader needs
    them, and each index's next build points its own aliases at its current version again."""
    if not folder.is_dir():
        return []
    fixed = []
    for table in [folder / name for name in LITE_TABLES] + sorted(folder.glob("databases/*/aliases.json")):
        try:
            if not table.is_file() or isinstance(json.loads(table.read_bytes()), dict):
                continue
        except ValueError:  # not JSON (UnicodeDecodeError is one too)
            pass
        except OSError:
            continue
        os.replace(table, table.with_name(table.name + ".damaged"))
        table.write_text("{}\n", encoding="utf-8")
        fixed.append(table)
        log.warning("the Milvus Lite table %s was unreadable: rebuilt empty (the damaged copy is %s.damaged); "
                    "each index points its aliases again at its next build", table, table.name)
    return fixed


def collection_name(prefix: str, version: str, name: str) -> str:
    """Milvus names allow letters, digits and underscores, starting with a letter or underscore."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{version}_{name}")


def alias_name(prefix: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{name}")


class MilvusIndex(VectorIndex):
    kind = KIND

    def __init__(self, client, uri: str, collection: str, alias: str, dim: int, rows: int,
                 index_type: str, ef_search: int) -> None:
        self.client = client
        self.uri = uri
        self.collection = collection
        self.alias = alias
        self._dim = dim
        self._rows = rows
        self.index_type = index_type
        self.ef_search = ef_search

    # --- construction --------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, *, uri: str, token: str, prefix: str, version: str, name: str,
              index_type: str, hnsw_m: int, ef_construction: int, ef_search: int) -> "MilvusIndex":
        pymilvus = _pymilvus()
        client = client_for(uri, token)
        collection = collection_name(prefix, version, name)
        try:
            return cls._build(pymilvus, client, vectors, uri, collection, alias_name(prefix, name), index_type,
                              hnsw_m, ef_construction, ef_search)
        except VectorStoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - grpc/Milvus errors: one message; the old version serves
            raise VectorStoreUnavailable(f"building the Milvus collection {collection} at {uri} failed: {exc}") from None

    @classmethod
    def _build(cls, pymilvus, client, vectors: np.ndarray, uri: str, collection: str, alias: str, index_type: str,
               hnsw_m: int, ef_construction: int, ef_search: int) -> "MilvusIndex":
        dim = int(vectors.shape[1])
        if client.has_collection(collection):  # a retry of the same version name: start clean
            client.drop_collection(collection)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=dim)
        index_params = client.prepare_index_params()
        params = {"M": hnsw_m, "efConstruction": ef_construction} if index_type == "HNSW" else {}
        index_params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
        client.create_collection(collection, schema=schema)
        # sync=False: pymilvus would otherwise poll AllocTimestamp, which Milvus Lite does not
        # implement (its server logs a traceback per call); load_collection below waits anyway.
        client.create_index(collection, index_params, sync=False)
        index = cls(client, uri, collection, alias, dim, 0, index_type, ef_search)
        index.add(vectors)
        client.flush(collection)
        client.load_collection(collection)
        stored = index.count()
        if stored != len(vectors):
            raise VectorStoreUnavailable(f"Milvus collection {collection} holds {stored} rows, expected {len(vectors)}")
        return index

    @classmethod
    def load(cls, folder: Path, name: str, uri: str | None = None, token: str = "",
             ef_search: int | None = None) -> "MilvusIndex":
        desc = json.loads((Path(folder) / f"{name}{DESCRIPTOR_SUFFIX}").read_text(encoding="utf-8"))
        uri = uri or desc["uri"]
        client = client_for(uri, token)
        collection = desc["collection"]
        if not client.has_collection(collection):
            raise FileNotFoundError(f"Milvus collection {collection} is missing at {uri}")
        client.load_collection(collection)
        index = cls(client, uri, collection, desc["alias"], desc["dim"], desc["rows"], desc["index_type"],
                    ef_search or desc.get("ef_search", 64))
        stored = index.count()
        if stored != desc["rows"]:
            raise ValueError(f"Milvus collection {collection} holds {stored} rows, its version wrote {desc['rows']}")
        return index

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    # --- the interface -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return self._rows

    @property
    def dim(self) -> int:
        return self._dim

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for start in range(0, len(vectors), INSERT_BATCH):
            block = vectors[start : start + INSERT_BATCH]
            rows = [{"id": self._rows + start + i, "vector": v} for i, v in enumerate(block.tolist())]
            self.client.insert(self.collection, rows)
        self._rows += len(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k_asked = min(k, self._rows)
        if k_asked <= 0:
            return pad_results([[] for _ in range(len(queries))], k)
        params = {"metric_type": "IP", "params": {"ef": max(self.ef_search, k_asked)}}
        try:
            results = self.client.search(self.collection, data=queries.tolist(), limit=k_asked,
                                         search_params=params, output_fields=[])
        except Exception as exc:  # noqa: BLE001 - grpc/Milvus errors: one message for the user
            raise VectorStoreUnavailable(f"Milvus search in {self.collection} at {self.uri} failed: {exc}") from None
        rows = [[(float(hit["distance"]), int(hit["id"])) for hit in hits] for hits in results]
        return pad_results(rows, k)

    def set_search_effort(self, ef_search: int | None) -> None:
        if ef_search:
            self.ef_search = ef_search

    def save(self, folder: Path, name: str) -> list[str]:
        filename = f"{name}{DESCRIPTOR_SUFFIX}"
        desc = {"uri": self.uri, "collection": self.collection, "alias": self.alias, "dim": self._dim,
                "rows": self._rows, "index_type": self.index_type, "ef_search": self.ef_search}
        with open(Path(folder) / filename, "wb") as fh:
            fh.write(json.dumps(desc, indent=1).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return [filename]

    def publish(self) -> None:
        """Point the alias at this version's collection (create it the first time)."""
        point_alias(self.client, self.alias, self.collection)


def point_alias(client, alias: str, collection: str) -> None:
    """Make ``alias`` name ``collection``: created the first time, moved (atomically) after."""
    if alias not in (client.list_aliases().get("aliases") or []):
        client.create_alias(collection, alias)
    elif client.describe_alias(alias).get("collection_name") != collection:
        client.alter_alias(collection, alias)


def aliased_collection(uri: str, token: str, alias: str) -> str | None:
    """The collection ``alias`` names now (what a replica looks up), or None."""
    client = client_for(uri, token)
    if alias not in (client.list_aliases().get("aliases") or []):
        return None
    return client.describe_alias(alias).get("collection_name")


def check_described(folder: Path, token: str = "", uri: str | None = None) -> None:
    """Raise if a version's collections are gone or hold another number of rows than it wrote."""
    for desc_path in Path(folder).glob(f"*{DESCRIPTOR_SUFFIX}"):
        desc = json.loads(desc_path.read_text(encoding="utf-8"))
        client = client_for(uri or desc["uri"], token)
        if not client.has_collection(desc["collection"]):
            raise FileNotFoundError(f"Milvus collection {desc['collection']} is missing at {uri or desc['uri']}")
        client.load_collection(desc["collection"])
        rows = client.query(desc["collection"], filter="", output_fields=["count(*)"])
        if int(rows[0]["count(*)"]) != desc["rows"]:
            raise ValueError(f"Milvus collection {desc['collection']} does not hold the {desc['rows']} rows "
                             "its version wrote")


def drop_described(folder: Path, token: str = "", uri: str | None = None, prefix: str | None = None) -> None:
    """Drop the collections a (deleted) version folder names; best effort.

    With ``prefix`` (the index's own, rag.index.vectors.factory.milvus_prefix) a collection whose
    name does not carry it is left alone: the folder is a copy of another index's, or was
    moved, and the collection may serve that other index."""
    for desc_path in Path(folder).glob(f"*{DESCRIPTOR_SUFFIX}"):
        try:
            desc = json.loads(desc_path.read_text(encoding="utf-8"))
            if prefix is not None and not desc["collection"].startswith(alias_name(prefix, "v")):
                log.info("leaving the Milvus collection %s: it is not this index's", desc["collection"])
                continue
            client = client_for(uri or desc["uri"], token)
            if _aliased(client, desc["collection"]):
                continue  # never drop what the alias serves (a replica may be reading it)
            client.drop_collection(desc["collection"])
        except Exception as exc:  # noqa: BLE001 - pruning must not fail a build
            log.warning("could not drop the Milvus collection of %s: %s", desc_path, exc)


def _aliased(client, collection: str) -> bool:
    try:
        return bool(client.list_aliases(collection).get("aliases"))
    except Exception:  # noqa: BLE001
        return False


def sweep(uri: str, token: str, prefix: str, keep_versions: set[str]) -> list[str]:
    """Drop this prefix's collections that belong to no kept version (builds that died mid-way)."""
    client = client_for(uri, token)
    keep = {re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{v}_") for v in keep_versions}
    head = re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_v")
    dropped = []
    for collection in client.list_collections():
        if not collection.startswith(head) or any(collection.startswith(k) for k in keep):
            continue
        if _aliased(client, collection):
            continue
        client.drop_collection(collection)
        dropped.append(collection)
    if dropped:
        log.info("dropped Milvus collections of unfinished builds: %s", ", ".join(dropped))
    return dropped
