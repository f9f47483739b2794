"""The index shared by app replicas through Milvus alone: versions mirrored there, one build at a time.

With ``shared_index`` on (``RAG_SHARED_INDEX=true``; needs ``vector_store = "milvus"``), each
replica's index folder is a cache of what Milvus holds, so replicas share no disk:

    <prefix>_<version>_files   one collection per version: every file of its version folder,
                               cut into rows of base64 text (Milvus has no blob type; a
                               two-float vector pads each row, as Milvus wants one per
                               collection), plus a row naming the version
    <prefix>_current           alias: the files collection of the version every replica serves
    <prefix>_build_lock        alias: the lease collection of the one build that runs

Invariants:
- a version's files are all in Milvus, row count checked, before ``<prefix>_current`` moves
  to it; moving that alias (atomic in Milvus) is the one step that switches every replica.
- a replica asks Milvus for the current version at most every ``POLL_S``; a version it lacks
  is fetched into ``versions/.fetch-*`` and renamed into place, and the store then checks
  every file against the manifest's checksums, exactly as for a version built locally.
- at most one contender holds the build lock: each makes its own lease collection and tries
  ``create_alias``, which Milvus refuses for an alias that exists. The holder renews its lease
  every ``LEASE_S / 3``; a lease left unrenewed for ``LEASE_S`` (a builder that died) is taken
  over. Clocks of replicas are assumed to agree within a fraction of ``LEASE_S``.
- only the lock holder deletes shared versions (``prune``); a replica's own cleanup never
  drops what Milvus holds.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from rag.index.vectors.base import VectorStoreUnavailable
from rag.index.vectors.milvus_index import aliased_collection, alias_name, client_for, collection_name, point_alias

if TYPE_CHECKING:
    from rag.core.settings import Settings

log = logging.getLogger(__name__)

FILES = "files"
CURRENT_ALIAS = "current"
LOCK_ALIAS = "build_lock"
VERSION_ROW = ".version"  # the row whose data is the version's name
# 48,000 bytes become 64,000 base64 characters: under Milvus's VARCHAR limit of 65,535.
PART_BYTES = 48_000
MAX_DATA = 65_535
MAX_NAME = 1_024
# Rows per insert: 200 x 64 KB = 12.8 MB, well under gRPC's 64 MB message cap.
INSERT_ROWS = 200
# Rows per fetch query: Milvus answers at most 16,384 rows (offset + limit) per query.
FETCH_ROWS = 200
PAD = [0.0, 0.0]
# How stale a replica's idea of the current version may be: a switch reaches every replica
# within this many seconds, at one small Milvus call per question at most once a second.
POLL_S = 1.0
# A build renews its lease every LEASE_S / 3; a lease unrenewed this long is taken over.
LEASE_S = 120.0


class _LockRefusals(logging.Filter):
    """pymilvus logs every refused call as an ERROR with a traceback; a contender refused the
    lock alias (``create_alias`` of one that exists) is the lock working, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("[create_alias]" in message and LOCK_ALIAS in message and "already exists" in message)


logging.getLogger("pymilvus.decorators").addFilter(_LockRefusals())


def _client_call(what: str, uri: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except VectorStoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - grpc and Milvus errors alike: one message
        raise VectorStoreUnavailable(f"Milvus at {uri}: {what} failed: {exc}") from None


class SharedIndex:
    """The versions of one index (``milvus_prefix``) as Milvus holds them for every replica."""

    def __init__(self, uri: str, token: str, prefix: str) -> None:
        self.uri, self.token, self.prefix = uri, token, prefix
        self.current_alias = alias_name(prefix, CURRENT_ALIAS)
        self.lock_alias = alias_name(prefix, LOCK_ALIAS)
        self._checked_at = float("-inf")
        self._current: str | None = None
        self._names: dict[str, str] = {}  # files collection -> version name

    @property
    def client(self):
        return client_for(self.uri, self.token)

    def collection(self, version: str) -> str:
        return collection_name(self.prefix, version, FILES)

    # --- which version serves -----------------------------------------------------------
    def current(self, max_age: float = POLL_S) -> str | None:
        """The version every replica should serve (None: nothing published yet)."""
        now = time.monotonic()
        if now - self._checked_at < max_age:
            return self._current
        collection = _client_call("looking up the current version", self.uri, self._aliased, self.current_alias)
        version = self._version_of(collection) if collection else None
        self._checked_at, self._current = now, version
        return version

    def _aliased(self, alias: str) -> str | None:
        return aliased_collection(self.uri, self.token, alias)

    def _version_of(self, collection: str) -> str | None:
        if collection not in self._names:
            _client_call(f"loading {collection}", self.uri, self.client.load_collection, collection)
            rows = _client_call("reading a version name", self.uri, self.client.query, collection,
                                filter=f'name == "{VERSION_ROW}"', output_fields=["data"], limit=1)
            if not rows:
                return None
            self._names[collection] = rows[0]["data"]
        return self._names[collection]

    def versions(self) -> list[str]:
        """Every version Milvus holds in full (its name row, written last, is there), oldest first."""
        head, tail = alias_name(self.prefix, "v"), f"_{FILES}"  # version names start with "v"
        found = []
        for collection in _client_call("listing versions", self.uri, self.client.list_collections):
            if collection.startswith(head) and collection.endswith(tail):
                version = self._version_of(collection)
                if version:
                    found.append(version)
        return sorted(found)

    # --- writing (the builder, holding the lock) ----------------------------------------
    def upload(self, folder: Path, version: str) -> None:
        """Put every file of a finished version folder into Milvus; raises if not all arrived."""
        from pymilvus import DataType

        client, collection = self.client, self.collection(version)

        def create() -> None:
            if client.has_collection(collection):
                client.drop_collection(collection)  # a retry of the same version name
            _create_padded(client, collection, auto_id=True, fields=[
                ("name", DataType.VARCHAR, {"max_length": MAX_NAME}), ("part", DataType.INT64, {}),
                ("data", DataType.VARCHAR, {"max_length": MAX_DATA})])

        _client_call(f"creating {collection}", self.uri, create)
        rows = 0
        batch: list[dict] = []
        for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
            data = path.read_bytes()
            for part, start in enumerate(range(0, max(len(data), 1), PART_BYTES)):
                text = base64.b64encode(data[start : start + PART_BYTES]).decode("ascii")
                batch.append({"name": path.name, "part": part, "data": text, "pad": PAD})
                if len(batch) >= INSERT_ROWS:
                    _client_call(f"writing {collection}", self.uri, client.insert, collection, batch)
                    rows, batch = rows + len(batch), []
        # The row naming the version goes last: a collection without it is an upload that died,
        # which ``versions`` does not list and the next build's sweep drops.
        batch.append({"name": VERSION_ROW, "part": 0, "data": version, "pad": PAD})
        _client_call(f"writing {collection}", self.uri, client.insert, collection, batch)
        rows += len(batch)
        _client_call(f"flushing {collection}", self.uri, client.flush, collection)
        _client_call(f"loading {collection}", self.uri, client.load_collection, collection)
        stored = _client_call(f"counting {collection}", self.uri, client.query, collection, filter="",
                              output_fields=["count(*)"])
        if int(stored[0]["count(*)"]) != rows:
            raise VectorStoreUnavailable(f"Milvus at {self.uri}: {collection} holds {stored[0]['count(*)']} rows "
                                         f"of version {version}, {rows} were written")

    def publish(self, version: str) -> None:
        """Switch every replica to ``version`` (move ``<prefix>_current``)."""
        collection = self.collection(version)
        _client_call(f"publishing {version}", self.uri, point_alias, self.client, self.current_alias, collection)
        self._names[collection] = version
        self._checked_at, self._current = time.monotonic(), version

    def prune(self, keep_old: int) -> list[str]:
        """Drop all but the current version and the ``keep_old`` newest others; the versions left."""
        current = self.current(max_age=0)
        older = [v for v in self.versions() if v != current]
        keep = older[len(older) - keep_old:] if keep_old else []
        for version in older:
            if version not in keep:
                _client_call(f"dropping version {version}", self.uri, self.client.drop_collection,
                             self.collection(version))
                self._names.pop(self.collection(version), None)
        return keep + ([current] if current else [])

    # --- reading (every replica) -----------------------------------------------------------
    def fetch(self, version: str, versions_dir: Path, last: str = "") -> Path:
        """Copy ``version`` from Milvus into ``versions_dir/<version>`` (renamed into place whole),
        writing the file named ``last`` (the store's completion marker) after all others."""
        client, collection = self.client, self.collection(version)
        target = Path(versions_dir) / version
        tmp = Path(versions_dir) / f".fetch-{version}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            _client_call(f"loading {collection}", self.uri, client.load_collection, collection)
            heads = _client_call(f"reading {collection}", self.uri, client.query, collection,
                                 filter=f'part == 0 and name != "{VERSION_ROW}"', output_fields=["name"],
                                 limit=FETCH_ROWS)
            for name in sorted({row["name"] for row in heads}, key=lambda n: (n == last, n)):
                if Path(name).name != name or name in (".", ".."):
                    raise VectorStoreUnavailable(f"Milvus at {self.uri}: {collection} names a file {name!r}")
                self._fetch_file(collection, name, tmp / name)
            if target.exists():  # another process of this replica fetched it first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def _fetch_file(self, collection: str, name: str, path: Path) -> None:
        with open(path, "wb") as fh:
            part = 0
            while True:
                rows = _client_call(f"reading {name} from {collection}", self.uri, self.client.query, collection,
                                    filter=f'name == "{name}" and part >= {part} and part < {part + FETCH_ROWS}',
                                    output_fields=["part", "data"], limit=FETCH_ROWS)
                rows.sort(key=lambda r: r["part"])
                if [r["part"] for r in rows] != list(range(part, part + len(rows))):
                    raise VectorStoreUnavailable(f"Milvus at {self.uri}: {collection} lacks parts of {name}")
                for row in rows:
                    fh.write(base64.b64decode(row["data"]))
                if len(rows) < FETCH_ROWS:
                    break
                part += FETCH_ROWS
            fh.flush()
            os.fsync(fh.fileno())

    # --- one build at a time across replicas ------------------------------------------------
    @contextmanager
    def build_lock(self) -> Iterator[None]:
        """Hold the shared build lock for the block; IndexLocked when another replica builds."""
        from rag.core.errors import IndexLocked

        lease = collection_name(self.prefix, f"lease_{uuid.uuid4().hex[:12]}", "lock")
        holder = f"{socket.gethostname()} pid {os.getpid()}"
        _client_call("creating a build lease", self.uri, self._create_lease, lease, holder)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lease, holder, stop), daemon=True,
                                   name="shared-index-lease")
        try:
            taken, other = _client_call("taking the build lock", self.uri, self._take, lease)
            if not taken:
                raise IndexLocked(f"another replica is building the shared index ({other}); wait for it to finish")
            renewer.start()
            yield
        finally:
            stop.set()
            if renewer.is_alive():
                renewer.join(5)
            try:
                if self._aliased(self.lock_alias) == lease:
                    self.client.drop_alias(self.lock_alias)
                self.client.drop_collection(lease)
            except Exception as exc:  # noqa: BLE001 - an unreleased lock expires after LEASE_S
                log.warning("could not release the shared build lock (it expires in %.0f s): %s", LEASE_S, exc)

    def _create_lease(self, lease: str, holder: str) -> None:
        from pymilvus import DataType

        _create_padded(self.client, lease, auto_id=False, fields=[("data", DataType.VARCHAR, {"max_length": MAX_NAME})])
        self._write_lease(lease, holder)

    def _write_lease(self, lease: str, holder: str) -> None:
        data = json.dumps({"holder": holder, "expires": time.time() + LEASE_S})
        self.client.upsert(lease, [{"id": 0, "data": data, "pad": PAD}])
        self.client.flush(lease)

    def _read_lease(self, lease: str) -> dict | None:
        client = self.client
        if not client.has_collection(lease):
            return None
        client.load_collection(lease)
        rows = client.query(lease, filter="id == 0", output_fields=["data"], limit=1)
        return json.loads(rows[0]["data"]) if rows else None

    def _take(self, lease: str) -> tuple[bool, str]:
        """(True, "") if ``lease`` now holds the lock, else (False, who holds it)."""
        client = self.client
        for _ in range(2):
            holding = self._aliased(self.lock_alias)
            if holding is None:
                try:
                    client.create_alias(lease, self.lock_alias)
                    return True, ""
                except Exception:  # noqa: BLE001 - another contender created it first
                    continue
            if holding == lease:
                return True, ""
            info = self._read_lease(holding)
            if info is not None and info.get("expires", 0) > time.time():
                until = time.strftime("%H:%M:%S", time.localtime(info["expires"]))
                return False, f"held by {info.get('holder', '?')}, lease renewed until {until}"
            # The holder died (its lease expired or is gone): take the lock over, if it is still its.
            if self._aliased(self.lock_alias) != holding:
                continue
            log.warning("taking over the shared build lock from a build whose lease expired (%s)",
                        (info or {}).get("holder", "unknown holder"))
            client.drop_alias(self.lock_alias)
            try:
                client.drop_collection(holding)
            except Exception:  # noqa: BLE001 - only space
                pass
        return False, "held by another contender"

    def _renew(self, lease: str, holder: str, stop: threading.Event) -> None:
        while not stop.wait(LEASE_S / 3):
            try:
                self._write_lease(lease, holder)
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                log.warning("could not renew the shared build lock: %s", exc)


def _create_padded(client, name: str, *, auto_id: bool, fields: list[tuple[str, object, dict]]) -> None:
    """A collection of an INT64 id, ``fields`` (name, DataType, options) and the two-float ``pad``
    vector Milvus wants in every collection (FLAT-indexed, never searched)."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=auto_id, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    for field, dtype, options in fields:
        schema.add_field(field, dtype, **options)
    schema.add_field("pad", DataType.FLOAT_VECTOR, dim=len(PAD))
    index_params = client.prepare_index_params()
    index_params.add_index(field_name="pad", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params)


def make_shared_index(settings: "Settings | None") -> SharedIndex | None:
    """The shared index the settings ask for, or None (one machine: the folder is the index)."""
    if settings is None or not getattr(settings, "shared_index", False):
        return None
    from rag.index.vectors.factory import milvus_uri

    return SharedIndex(milvus_uri(settings), settings.milvus_token or "", settings.milvus_prefix)
