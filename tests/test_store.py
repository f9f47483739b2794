"""The versioned on-disk index: atomic swaps, the build lock, and builds killed mid-way.

Crashes are real: `rag index` runs in a subprocess and is sent SIGKILL or SIGINT while it
embeds, and a build is SIGKILLed from inside `IndexStore.write` (an audit hook fires the
signal when the manifest is opened, after the data files are written).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from rag.index.builder import build_index
from rag.search.retrieval import Retriever
from rag.index.store import IndexStore, build_dense
from rag.core.errors import IndexLocked
from rag.index.version_files import COMPLETE_MARKER, FileEntry, IndexNotFound, Manifest
from tests.conftest import REPO_ROOT, CountingEmbedder, clean_env, make_settings, rag_cli, write_notes

BASE = {
    "量化.md": "# 模型量化\n\nINT8 量化把权重从 fp32 映射到 8 位整数，显存减为四分之一，推理更快。\n",
    "蒸馏.txt": "知识蒸馏\n\n1、温度的作用是什么？\n\n温度越高，教师输出的概率分布越平滑，暗知识越多。\n",
}
QUESTION = "INT8 量化能省多少显存？"
# Enough new notes that embedding them takes a few seconds.
EXTRA = {
    f"扩展/主题{i:02d}.md": f"# 主题 {i}\n\n第 {i} 个主题：{topic}的要点、常见误区，以及面试时应该怎样回答第 {i} 个追问。\n"
    for i, topic in enumerate(["位置编码", "旋转位置编码", "长上下文外推", "KV 缓存", "分组查询注意力", "FlashAttention",
                               "张量并行", "流水线并行", "ZeRO 优化", "梯度累积", "学习率调度", "混合专家模型",
                               "指令微调", "奖励模型"])
}


@pytest.fixture(scope="module")
def template(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("store-template")
    build_index(make_settings(write_notes(root / "corpus", BASE), root / "index"), embedder)
    return root


@pytest.fixture
def work(template, tmp_path):
    shutil.copytree(template / "corpus", tmp_path / "corpus")
    shutil.copytree(template / "index", tmp_path / "index")
    return make_settings(tmp_path / "corpus", tmp_path / "index")


def snapshot(settings) -> tuple[str, list[str]]:
    index_dir = Path(settings.index_dir)
    return (index_dir / "CURRENT").read_text(), sorted(p.name for p in (index_dir / "versions").iterdir())


def hit_ids(retriever: Retriever, question: str = QUESTION) -> list[str]:
    return [h.chunk.id for h in retriever.retrieve(question).hits]


def start_index_build(settings, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, "queue.Queue[str]"]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "index", "--corpus", str(settings.corpus_dir), "--index",
         str(settings.index_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env=env or clean_env(), cwd=REPO_ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def wait_for_line(proc: subprocess.Popen, lines: "queue.Queue[str]", needle: str, timeout: float = 180) -> list[str]:
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"no {needle!r} on stderr within {timeout}s: {seen}")
        if not line:
            pytest.fail(f"`rag index` ended (rc={proc.wait()}) before {needle!r}: {seen}")
        seen.append(line)
        if needle in line:
            return seen


def assert_still_serving_the_old_index(settings, before, retriever, old_hits) -> None:
    assert snapshot(settings) == before  # CURRENT unchanged, no new version
    assert hit_ids(retriever) == old_hits  # an open reader keeps answering
    fresh = Retriever(settings, retriever.embedder)  # and a new one opens the old version
    assert fresh.status().version == before[0] and hit_ids(fresh) == old_hits
    with IndexStore(settings.index_dir).lock():  # the dead build's lock is gone with it
        pass


# --- builds that die ---------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_build_killed_while_embedding_leaves_the_previous_index_serving(work, embedder, sig):
    retriever = Retriever(work, embedder)
    old_hits = hit_ids(retriever)
    assert retriever.retrieve(QUESTION).hits[0].source == "量化.md"
    before = snapshot(work)
    write_notes(work.corpus_dir, EXTRA)

    # Small batches so that Ctrl-C is noticed between two of them.
    proc, lines = start_index_build(work, clean_env(RAG_EMBEDDING_BATCH_SIZE="2"))
    wait_for_line(proc, lines, "embedding passages")
    proc.send_signal(sig)
    rc = proc.wait(timeout=120)

    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:  # Ctrl-C: a short message and exit status 130, not a traceback
        rest = "".join(iter(lines.get, ""))
        assert rc == 130, rest
        assert "interrupted" in rest and "Traceback" not in rest
    assert_still_serving_the_old_index(work, before, retriever, old_hits)


def test_next_build_after_a_killed_one_succeeds(work, embedder):
    write_notes(work.corpus_dir, EXTRA)
    proc, lines = start_index_build(work)
    wait_for_line(proc, lines, "embedding passages")
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL

    done = rag_cli("index", "--corpus", str(work.corpus_dir), "--index", str(work.index_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("update:") and f"{len(EXTRA)} embedded" in done.stdout
    hit = Retriever(work, embedder).retrieve("分组查询注意力的要点").hits[0]
    assert hit.source == "扩展/主题04.md"


KILL_IN_WRITE = """
import os, signal, sys
from rag.cli import main

def hook(event, args):
    # The data files of the new version are on disk; its manifest and COMPLETE marker are not.
    if event == "open" and str(args[0]).endswith("manifest.json") and "w" in str(args[1]):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
sys.exit(main(["index", "--corpus", sys.argv[1], "--index", sys.argv[2]]))
"""


def test_build_killed_while_writing_leaves_a_partial_folder_that_is_never_served(work, embedder):
    retriever = Retriever(work, embedder)
    old_hits = hit_ids(retriever)
    current_before, versions_before = snapshot(work)
    write_notes(work.corpus_dir, {"新笔记.md": "# 投机采样\n\n小模型先起草几个词，大模型一次并行验证。\n"})

    proc = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, str(work.corpus_dir), str(work.index_dir)],
                          capture_output=True, text=True, env=clean_env(), cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    versions = IndexStore(work.index_dir).versions
    [partial] = [p for p in versions.iterdir() if p.name not in versions_before]
    assert (partial / "chunks.jsonl").exists() and not (partial / COMPLETE_MARKER).exists()
    assert (work.index_dir / "CURRENT").read_text() == current_before
    assert hit_ids(retriever) == old_hits
    fresh = Retriever(work, embedder)
    assert fresh.status().version == current_before and hit_ids(fresh) == old_hits

    counter = CountingEmbedder(embedder)
    report = build_index(work, counter)  # cleans up and succeeds
    assert not partial.exists()
    assert report.chunks_embedded == 1 and not report.full_rebuild
    assert IndexStore(work.index_dir).current_version() == report.version
    assert retriever.retrieve("投机采样怎么加速").hits[0].source == "新笔记.md"


# --- the build lock -------------------------------------------------------------------------------
def test_second_build_fails_with_index_locked_and_cli_exit_code_3(work, embedder):
    write_notes(work.corpus_dir, {"新笔记.md": "# 新\n\n新内容。\n"})
    before = snapshot(work)
    with IndexStore(work.index_dir).lock():
        with pytest.raises(IndexLocked, match="already building"):
            build_index(work, embedder)
        cli = rag_cli("index", "--corpus", str(work.corpus_dir), "--index", str(work.index_dir))
        assert cli.returncode == 3
        assert "already building" in cli.stderr and str(work.index_dir) in cli.stderr
        assert cli.stdout == ""
    assert snapshot(work) == before


def test_lock_held_by_another_process_is_respected_and_freed_when_it_dies(work):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom rag.index.store import IndexStore\n"
         "with IndexStore(sys.argv[1]).lock():\n    print('held', flush=True)\n    time.sleep(600)\n",
         str(work.index_dir)],
        stdout=subprocess.PIPE, text=True, env=clean_env(), cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexLocked):
            with IndexStore(work.index_dir).lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with IndexStore(work.index_dir).lock():
        pass


# --- reading -----------------------------------------------------------------------------------------
def test_empty_folder_has_no_index(tmp_path):
    store = IndexStore(tmp_path / "index")
    assert store.current_version() is None and store.read_manifest() is None
    with pytest.raises(IndexNotFound, match="rag index"):
        store.load()
    store.prune(1)  # nothing to prune is fine


def test_current_pointing_at_an_unfinished_version_is_ignored(work, embedder):
    # Hand-made state (a build cannot produce it): CURRENT naming a folder with no COMPLETE marker.
    # The unfinished folder is never served; the finished version beside it is, with a warning.
    store = IndexStore(work.index_dir)
    good = store.current_version()
    shutil.copytree(store.versions / good, store.versions / "v-unfinished")
    (store.versions / "v-unfinished" / COMPLETE_MARKER).unlink()
    (work.index_dir / "CURRENT").write_text("v-unfinished")
    assert store.current_version() is None
    status = Retriever(work, embedder).status()
    assert status.version == good and "v-unfinished" in status.warning


def test_current_pointing_at_an_unfinished_version_with_nothing_finished_is_no_index(work):
    store = IndexStore(work.index_dir)
    good = store.current_version()
    (store.versions / good / COMPLETE_MARKER).unlink()
    with pytest.raises(IndexNotFound):
        Retriever(work)


def test_load_round_trips_what_the_build_wrote(work, embedder):
    store = IndexStore(work.index_dir)
    index = store.load()
    manifest = index.manifest
    assert manifest.version == store.current_version()
    assert set(manifest.files) == set(BASE) and manifest.dense_kind == "flat"
    assert manifest.embedder == embedder.identity and manifest.dim == embedder.dim
    assert len(index.chunks) == len(index.tokens) == index.vectors.shape[0] == manifest.chunk_count
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-4)
    # The stored vectors are what the model gives for those passages.
    fresh = embedder.embed_passages([c.embedding_text() for c in index.chunks])
    assert np.allclose(index.vectors, fresh, atol=1e-5)
    scores, ids = index.dense.search(fresh[:1], 1)
    assert ids[0][0] == 0 and scores[0][0] == pytest.approx(1.0, abs=1e-4)
    rows = [json.loads(ln) for ln in (store.versions / manifest.version / "chunks.jsonl").read_text("utf-8").splitlines()]
    assert [r["source"] for r in rows] == [c.source for c in index.chunks]


def test_manifest_json_round_trip():
    manifest = Manifest("v1", 1.5, "emb", 384, "v6", "flat", {"笔记/一.md": FileEntry("abc", 3, "gb18030")},
                        {"坏.md": "binary file"}, {"坏.md": "def"})
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert "笔记/一.md" in manifest.to_json()  # readable, not \\u-escaped
    assert manifest.chunk_count == 3


def test_prune_removes_unfinished_builds_stale_tmp_files_and_old_versions(work, embedder):
    store = IndexStore(work.index_dir)
    versions = [store.current_version()]
    for i in range(3):
        write_notes(work.corpus_dir, {f"新/{i}.md": f"# 第{i}条\n\n第{i}条笔记。\n"})
        versions.append(build_index(work.model_copy(update={"keep_old_versions": 10}), embedder).version)
    for i, name in enumerate(versions):  # make the age order unambiguous
        os.utime(store.versions / name, (1000 + i, 1000 + i))
    (store.versions / "v-dead").mkdir()
    (store.versions / "v-dead" / "chunks.jsonl").write_text("{}")
    (work.index_dir / "CURRENT.abc.tmp").write_text("v-dead")

    store.prune(keep_old=1)

    assert sorted(p.name for p in store.versions.iterdir()) == sorted(versions[-2:])
    assert not list(work.index_dir.glob("CURRENT.*.tmp"))
    assert store.current_version() == versions[-1]
    store.prune(keep_old=0)
    assert [p.name for p in store.versions.iterdir()] == [versions[-1]]


# --- dense index kinds -----------------------------------------------------------------------------
def test_dense_index_is_exact_below_the_threshold_and_hnsw_above(embedder):
    texts = [f"第{i}条笔记讲的是第{i}种优化技巧" for i in range(24)]
    vectors = embedder.embed_passages(texts)
    flat = build_dense(vectors, ann_min_chunks=100, hnsw_m=16, ef_search=64)
    hnsw = build_dense(vectors, ann_min_chunks=20, hnsw_m=16, ef_search=64)
    assert isinstance(flat.faiss, faiss.IndexFlatIP) and isinstance(hnsw.faiss, faiss.IndexHNSWFlat)
    assert (flat.kind, hnsw.kind) == ("flat", "hnsw")
    assert flat.ntotal == hnsw.ntotal == len(texts)
    assert hnsw.ef_search == 64
    _, flat_ids = flat.search(vectors, 1)
    _, hnsw_ids = hnsw.search(vectors, 1)
    assert list(flat_ids[:, 0]) == list(range(len(texts)))
    assert np.mean(hnsw_ids[:, 0] == np.arange(len(texts))) >= 0.9
    empty = build_dense(np.zeros((0, vectors.shape[1]), np.float32), 100, 16, 64)
    assert empty.ntotal == 0


def test_hnsw_index_builds_and_serves(work, embedder):
    settings = work.model_copy(update={"ann_min_chunks": 2, "hnsw_ef_search": 32})
    report = build_index(settings, embedder, full=True)
    assert IndexStore(work.index_dir).read_manifest().dense_kind == "hnsw"
    retriever = Retriever(settings, embedder)
    assert retriever.status().dense_kind == "hnsw" and retriever._refresh().dense.ef_search == 32
    assert retriever.retrieve(QUESTION).hits[0].source == "量化.md"
    assert report.chunks == 2
