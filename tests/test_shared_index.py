"""Replicas that share only Milvus (rag/index/shared_index.py), against the real Milvus Lite gRPC server.

Each "replica" has its own index folder and no disk in common with the others but the notes;
everything else reaches it through Milvus: the versions, the switch, the build lock.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from rag.index.builder import build_index  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.index.shared_index import LEASE_S, SharedIndex  # noqa: E402
from rag.index.store import IndexStore  # noqa: E402
from rag.core.errors import IndexLocked
from rag.index.vectors.milvus_index import client_for  # noqa: E402
from tests.conftest import REPO_ROOT, CountingEmbedder, clean_env, start_rag_serve, write_notes  # noqa: E402

NOTES = {
    "量化.md": "# 模型量化\n\nINT8 量化把权重从 fp32 映射到 8 位整数，显存减为四分之一，推理更快。\n",
    "优化器.md": "# 优化器\n\n## Adam\n\nAdam 为每个参数维护一阶矩和二阶矩的滑动平均。\n\n## AdamW\n\nAdamW 把权重衰减解耦。\n",
    "注意力.md": "# 注意力\n\n## KV 缓存\n\n推理时缓存历史 token 的 key 和 value，避免重复计算。\n",
}
ADDED = {"投机.md": "# 投机采样\n\n小模型先起草几个词，大模型一次并行验证，接受的前缀直接输出。\n"}
NEW_QUESTION = "投机采样怎么加速"


@pytest.fixture
def replicas(milvus_server, tmp_path):
    """Settings of two replicas: the same notes and Milvus (own prefix per test), separate index folders."""
    write_notes(tmp_path / "corpus", NOTES)
    prefix = "s" + uuid.uuid4().hex[:8]

    def replica(name: str, **extra) -> Settings:
        return Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / name, vector_store="milvus",
                        milvus_uri=milvus_server, milvus_prefix=prefix, shared_index=True, **extra)

    return replica("replica-a"), replica("replica-b")


def shared(settings: Settings) -> SharedIndex:
    return SharedIndex(settings.milvus_uri, "", settings.milvus_prefix)


def test_a_replica_with_an_empty_folder_serves_the_version_another_replica_built(replicas, embedder):
    a, b = replicas
    version = build_index(a, embedder).version
    assert not b.index_dir.exists()

    reader = Retriever(b, embedder)
    assert reader.status().version == version
    assert reader.retrieve("AdamW 和 Adam 的区别").hits[0].source == "优化器.md"
    # B's copy is the same version, file for file, checked against the manifest's checksums.
    assert IndexStore(b.index_dir).verify(version).chunk_count == IndexStore(a.index_dir).read_manifest().chunk_count
    assert sorted(p.name for p in (b.index_dir / "versions" / version).iterdir()) == \
        sorted(p.name for p in (a.index_dir / "versions" / version).iterdir())


def test_a_running_replica_follows_a_build_on_another_replica_within_seconds(replicas, embedder):
    a, b = replicas
    build_index(a, embedder)
    reader = Retriever(b, embedder)
    assert reader.retrieve(NEW_QUESTION).hits[0].source != "投机.md"

    write_notes(a.corpus_dir, ADDED)
    new = build_index(a, embedder).version
    deadline = time.monotonic() + 10
    while reader.status().version != new and time.monotonic() < deadline:
        time.sleep(0.2)
    assert reader.status().version == new
    assert reader.retrieve(NEW_QUESTION).hits[0].source == "投机.md"


def test_a_replica_process_with_its_own_folder_follows_a_switch_without_restart(replicas, embedder):
    a, b = replicas
    build_index(a, embedder)
    env = clean_env(RAG_VECTOR_STORE="milvus", RAG_MILVUS_URI=b.milvus_uri, RAG_MILVUS_PREFIX=b.milvus_prefix,
                    RAG_SHARED_INDEX="true")
    replica = subprocess.Popen([sys.executable, "-m", "rag.cli", "retrieve", "--batch", "/dev/stdin", "--k", "1",
                                "--corpus", str(b.corpus_dir), "--index", str(b.index_dir)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               encoding="utf-8", env=env, cwd=REPO_ROOT)
    try:
        def ask(i: int) -> str:
            replica.stdin.write(json.dumps({"id": i, "question": NEW_QUESTION}, ensure_ascii=False) + "\n")
            replica.stdin.flush()
            return json.loads(replica.stdout.readline())["hits"][0]["source"]

        assert ask(1) != "投机.md"
        write_notes(a.corpus_dir, ADDED)
        build_index(a, embedder)
        time.sleep(1.5)  # a replica looks for a new version at most once a second
        assert ask(2) == "投机.md"
    finally:
        replica.stdin.close()
        assert replica.wait(120) == 0, replica.stderr.read()
    assert not list((Path(b.index_dir) / "versions").glob(".fetch-*"))  # fetched whole, renamed into place


def test_a_build_on_a_new_replica_embeds_only_what_changed_since_the_shared_version(replicas, embedder):
    a, b = replicas
    build_index(a, embedder)
    write_notes(b.corpus_dir, ADDED)
    counting = CountingEmbedder(embedder)
    report = build_index(b, counting)  # B has never built: it starts from the version in Milvus
    # The new passage and its one sentence (an answer unit): the shared version's units came along.
    assert report.chunks_embedded == 1 and report.units_embedded == 1 and len(counting.passages) == 2
    assert Retriever(a, embedder).retrieve(NEW_QUESTION).hits[0].source == "投机.md"


def test_while_one_replica_builds_another_is_refused_with_one_clear_line(replicas, embedder):
    a, b = replicas
    build_index(a, embedder)
    write_notes(a.corpus_dir, ADDED)
    with IndexStore(a.index_dir, a).lock():
        with pytest.raises(IndexLocked, match="another replica is building the shared index"):
            build_index(b, embedder)
    assert build_index(b, embedder).chunks_embedded == 1  # released: the next build runs


def test_a_lock_left_by_a_builder_that_died_is_taken_over_once_its_lease_expired(replicas, embedder, caplog):
    a, b = replicas
    build_index(a, embedder)
    dead = shared(a)
    lease = f"{a.milvus_prefix}_lease_dead_lock"
    dead._create_lease(lease, "a builder that was killed")
    dead.client.create_alias(lease, dead.lock_alias)
    write_notes(b.corpus_dir, ADDED)
    with pytest.raises(IndexLocked, match="a builder that was killed"):
        build_index(b, embedder)  # its lease is still fresh

    client = client_for(a.milvus_uri)
    client.upsert(lease, [{"id": 0, "data": json.dumps({"holder": "a builder that was killed",
                                                         "expires": time.time() - 1}), "pad": [0.0, 0.0]}])
    client.flush(lease)
    with caplog.at_level(logging.WARNING, logger="rag.index.shared_index"):
        assert build_index(b, embedder).chunks_embedded == 1
    assert "taking over the shared build lock" in caplog.text
    assert lease not in client.list_collections()
    assert LEASE_S >= 60  # a live build renews long before another could take over


def test_milvus_keeps_the_current_version_and_keep_old_others_and_replicas_never_drop_them(replicas, embedder):
    a, b = replicas
    a = a.model_copy(update={"keep_old_versions": 1})
    first = build_index(a, embedder).version
    Retriever(b, embedder)  # B fetches the first version
    write_notes(a.corpus_dir, ADDED)
    second = build_index(a, embedder).version
    write_notes(a.corpus_dir, {"补充.md": "# 补充\n\n蒸馏时温度越高，教师的分布越平滑。\n"})
    third = build_index(a, embedder).version
    assert shared(a).versions() == [second, third]
    assert shared(a).current(max_age=0) == third

    # B still holds the first version; its own cleanup frees its folder, not Milvus.
    reader = Retriever(b, embedder)
    assert reader.status().version == third
    IndexStore(b.index_dir, b).prune(keep_old=0)
    assert shared(a).versions() == [second, third]
    assert reader.retrieve("蒸馏温度").hits[0].source == "补充.md"
    assert first not in {p.name for p in (b.index_dir / "versions").iterdir()}


def test_shared_index_without_milvus_is_refused_when_settings_are_read():
    with pytest.raises(ValueError, match="RAG_SHARED_INDEX needs RAG_VECTOR_STORE=milvus"):
        Settings(shared_index=True)


def test_a_build_that_outlives_its_lease_keeps_the_lock_by_renewing_it(replicas, embedder, monkeypatch):
    import rag.index.shared_index as shared_index

    a, b = replicas
    build_index(a, embedder)
    monkeypatch.setattr(shared_index, "LEASE_S", 1.5)  # renewed every 0.5 s
    with IndexStore(a.index_dir, a).lock():
        time.sleep(4)  # well past one lease: only renewals keep it
        with pytest.raises(IndexLocked, match="another replica is building"):
            build_index(b, embedder)


# --- the scale profile in miniature: two `rag serve` replicas, one Milvus ------------------------
def start_replica(settings: Settings, port: int) -> subprocess.Popen:
    env = clean_env(RAG_VECTOR_STORE="milvus", RAG_MILVUS_URI=settings.milvus_uri,
                    RAG_MILVUS_PREFIX=settings.milvus_prefix, RAG_SHARED_INDEX="true", RAG_LLM_BACKEND="none",
                    RAG_WATCH_DEBOUNCE_S="0.5", GRADIO_ANALYTICS_ENABLED="False")
    proc, seen = start_rag_serve(["--port", str(port), "--corpus", str(settings.corpus_dir),
                                  "--index", str(settings.index_dir)], env)
    if "Notes chat on" not in seen:
        proc.kill()
        raise AssertionError(seen)
    return proc


def ask_until(url: str, question: str, source: str, timeout: float = 120) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    deadline = time.monotonic() + timeout
    while True:
        answer = client.predict(question, api_name="/ask")
        if answer["sources"] and answer["sources"][0]["source"] == source or time.monotonic() > deadline:
            return answer
        time.sleep(1)


@pytest.mark.slow
def test_two_serving_replicas_with_their_own_folders_answer_alike_and_follow_an_edit(replicas, embedder):
    from tests.conftest import free_port

    a, b = replicas
    first = build_index(a, embedder).version
    ports = [free_port(), free_port()]
    procs = [start_replica(a, ports[0]), start_replica(b, ports[1])]  # B starts with an empty folder
    try:
        urls = [f"http://127.0.0.1:{p}/" for p in ports]
        for url in urls:
            assert ask_until(url, "AdamW 和 Adam 的区别", "优化器.md")["sources"][0]["source"] == "优化器.md"
        # A note saved into the notes both mount: their watchers race to rebuild, one builds
        # (the other waits for the lock, then finds the index up to date), and both answer from it.
        write_notes(a.corpus_dir, ADDED)
        for url in urls:
            assert ask_until(url, NEW_QUESTION, "投机.md")["sources"][0]["source"] == "投机.md"
    finally:
        for proc in procs:
            proc.terminate()
        logs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert all("Traceback" not in log for log in logs), logs
    # The first version and one with the new note: it was built once (a third build would have
    # pruned the first, keep_old_versions being 1).
    versions = shared(a).versions()
    assert len(versions) == 2 and versions[0] == first


def test_losing_the_race_for_the_lock_logs_no_error(replicas, caplog):
    a, _ = replicas
    first, second = shared(a), shared(a)
    leases = [f"{a.milvus_prefix}_lease_{n}_lock" for n in ("one", "two")]
    first._create_lease(leases[0], "one")
    second._create_lease(leases[1], "two")
    assert first._take(leases[0])[0]
    with caplog.at_level(logging.DEBUG):
        # The loser's create_alias is refused by Milvus (as when both saw no lock a moment ago).
        with pytest.raises(Exception, match="already exists"):
            second.client.create_alias(leases[1], second.lock_alias)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_build_leaves_a_fetch_in_progress_alone_and_clears_one_left_by_a_crash(replicas, embedder):
    import os

    a, _ = replicas
    build_index(a, embedder)
    versions = a.index_dir / "versions"
    live, dead = versions / ".fetch-v1-live", versions / ".fetch-v0-dead"
    for folder in (live, dead):
        folder.mkdir()
        (folder / "chunks.jsonl").write_text("{}\n")
    old = time.time() - 2 * 3600
    os.utime(dead, (old, old))
    write_notes(a.corpus_dir, ADDED)
    build_index(a, embedder)  # prunes at its start
    assert live.is_dir() and not dead.exists()
