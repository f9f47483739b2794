"""The Milvus vector store against the real Milvus Lite engine: as a local file, and through
its gRPC server (``python -m milvus_lite server``), the code path a remote Milvus uses.

Builds, incremental updates, the alias swap, a build SIGKILLed after its collections were
filled, two builders at once, readers during swaps, and FAISS-equal retrieval.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from rag.index.builder import build_index  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.index.store import IndexStore  # noqa: E402
from rag.index.vectors import VectorStoreUnavailable  # noqa: E402
from rag.index.vectors.factory import milvus_prefix  # noqa: E402
from rag.index.vectors.milvus_index import DESCRIPTOR_SUFFIX, alias_name, aliased_collection, client_for  # noqa: E402
from tests.conftest import (  # noqa: E402
    REPO_ROOT,
    CountingEmbedder,
    clean_env,
    make_settings,
    rag_cli,
    write_notes,
)

NOTES = {
    "量化.md": "# 模型量化\n\nINT8 量化把权重从 fp32 映射到 8 位整数，显存减为四分之一，推理更快。\n",
    "蒸馏.txt": "知识蒸馏\n\n1、温度的作用是什么？\n\n温度越高，教师输出的概率分布越平滑，暗知识越多。\n",
    "优化器.md": "# 优化器\n\n## Adam\n\nAdam 为每个参数维护一阶矩和二阶矩的滑动平均。\n\n## AdamW\n\nAdamW 把权重衰减解耦。\n",
    "注意力.md": "# 注意力\n\n## KV 缓存\n\n推理时缓存历史 token 的 key 和 value，避免重复计算。\n",
}
QUESTIONS = ["INT8 量化能省多少显存？", "蒸馏里温度有什么用", "AdamW 和 Adam 的区别", "KV cache 是什么"]
ADDED = {"投机.md": "# 投机采样\n\n小模型先起草几个词，大模型一次并行验证，接受的前缀直接输出。\n"}


def milvus_settings(root: Path, uri: str, **extra):
    return make_settings(root / "corpus", root / "index", vector_store="milvus", milvus_uri=uri, **extra)


def hit_ids(retriever, question) -> list[str]:
    return [h.chunk.id for h in retriever.retrieve(question).hits]


def own(settings, name: str) -> str:
    """The Milvus name ``name`` has in this index: prefixed with the index's own identity."""
    return alias_name(milvus_prefix(settings), name)


def collections(uri: str) -> list[str]:
    return sorted(client_for(uri).list_collections())


# --- Milvus Lite as a local file (in this process) ---------------------------------------------
@pytest.fixture
def lite(tmp_path):
    write_notes(tmp_path / "corpus", NOTES)
    return milvus_settings(tmp_path, str(tmp_path / "milvus" / "rag.db"))


def test_a_milvus_build_serves_the_same_passages_as_faiss(lite, embedder, tmp_path):
    report = build_index(lite, embedder)
    store = IndexStore(lite.index_dir, lite)
    manifest = store.read_manifest()
    assert manifest.dense_kind == "milvus" and report.chunks == manifest.chunk_count
    folder = store.versions / manifest.version
    assert (folder / f"dense{DESCRIPTOR_SUFFIX}").exists() and not (folder / "dense.faiss").exists()
    assert f"dense{DESCRIPTOR_SUFFIX}" in manifest.checksums
    # The alias names the serving version's collection.
    assert aliased_collection(lite.milvus_uri, "", own(lite, "dense")).startswith(own(lite, manifest.version))

    faiss_settings = make_settings(lite.corpus_dir, tmp_path / "faiss-index")
    build_index(faiss_settings, embedder)
    milvus_reader, faiss_reader = Retriever(lite, embedder), Retriever(faiss_settings, embedder)
    assert milvus_reader.status().dense_kind == "milvus"
    for question in QUESTIONS:
        assert hit_ids(milvus_reader, question) == hit_ids(faiss_reader, question), question
    index = milvus_reader._refresh()
    scores_m, ids_m = index.dense.search(index.vectors[:2], 3)
    scores_f, ids_f = faiss_reader._refresh().dense.search(index.vectors[:2], 3)
    assert (ids_m == ids_f).all() and np.allclose(scores_m, scores_f, atol=1e-4)
    assert scores_m.dtype == np.float32 and ids_m.dtype == np.int64
    # More neighbours asked for than rows: padded with -1 like FAISS.
    _, ids = index.dense.search(index.vectors[:1], index.dense.ntotal + 3)
    assert list(ids[0][-3:]) == [-1, -1, -1]


def test_a_milvus_update_embeds_only_the_new_note_and_moves_the_alias(lite, embedder):
    first = build_index(lite, embedder).version
    reader = Retriever(lite, embedder)
    write_notes(lite.corpus_dir, ADDED)
    counter = CountingEmbedder(embedder)
    report = build_index(lite, counter)
    assert report.chunks_embedded == 1 and not report.full_rebuild
    assert aliased_collection(lite.milvus_uri, "", own(lite, "dense")).startswith(own(lite, report.version))
    assert reader.retrieve("投机采样怎么加速").hits[0].source == "投机.md"  # the open reader follows
    # keep_old_versions=1: both versions' collections exist; one more build drops the oldest.
    assert len(collections(lite.milvus_uri)) == 4
    write_notes(lite.corpus_dir, {"新.md": "# 混合专家\n\n每个词只激活少数专家网络。\n"})
    build_index(lite, embedder)
    names = collections(lite.milvus_uri)
    assert len(names) == 4 and not any(first.replace("-", "_") in n for n in names)


def test_a_dropped_collection_falls_back_to_the_previous_version(lite, embedder):
    first = build_index(lite, embedder).version
    write_notes(lite.corpus_dir, ADDED)
    second = build_index(lite, embedder).version
    client_for(lite.milvus_uri).drop_alias(own(lite, "dense"))
    client_for(lite.milvus_uri).drop_collection(own(lite, f"{second}_dense"))
    status = Retriever(lite, embedder).status()
    assert status.version == first and second in status.warning
    report = build_index(lite, embedder)  # repairs: a new version with the note again
    assert report.repaired and Retriever(lite, embedder).status().warning is None


def test_two_index_folders_on_one_milvus_lite_file_never_touch_each_others_collections(tmp_path, embedder):
    shared_db = str(tmp_path / "shared.db")
    one = milvus_settings(tmp_path / "one", shared_db)
    two = milvus_settings(tmp_path / "two", shared_db)
    write_notes(one.corpus_dir, dict(list(NOTES.items())[:2]))
    write_notes(two.corpus_dir, dict(list(NOTES.items())[2:]))
    build_index(one, embedder)
    for _ in range(3):  # builds, sweeps and prunes of the other index
        write_notes(two.corpus_dir, {"变化.md": f"# 变化\n\n第 {_} 次修改的笔记内容，换一个版本。\n"})
        build_index(two, embedder)
    assert milvus_prefix(one) != milvus_prefix(two)
    assert Retriever(one, embedder).status().warning is None
    assert Retriever(one, embedder).retrieve("INT8 量化能省多少显存？").hits[0].source == "量化.md"
    assert aliased_collection(shared_db, "", own(one, "dense")) != aliased_collection(shared_db, "", own(two, "dense"))
    report = build_index(one, embedder)
    assert report.unchanged and not report.repaired
    # Every collection in the file belongs to one of the two indexes.
    names = collections(shared_db)
    assert all(n.startswith((milvus_prefix(one), milvus_prefix(two))) for n in names)


def lite_cli(settings, *args: str):
    env = clean_env(RAG_VECTOR_STORE="milvus", RAG_MILVUS_URI=settings.milvus_uri)
    return rag_cli(*args, "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), env=env)


def test_a_garbage_milvus_lite_alias_table_is_rebuilt_and_every_build_works(lite):
    assert lite_cli(lite, "index").returncode == 0
    table = Path(lite.milvus_uri) / "aliases.json"
    table.write_bytes(b"\x00garbage{")
    write_notes(lite.corpus_dir, ADDED)
    for args in (["index"], ["index", "--full"], ["retrieve", "投机采样怎么加速", "--json"]):
        res = lite_cli(lite, *args)
        assert res.returncode == 0 and "Traceback" not in res.stderr, (args, res.stderr)
    assert '"source": "投机.md"' in res.stdout
    assert (table.parent / "aliases.json.damaged").read_bytes() == b"\x00garbage{"
    assert own(lite, "dense") in json.loads(table.read_text(encoding="utf-8"))  # pointed again by the build


def test_a_damaged_milvus_lite_data_file_gives_one_error_line_and_the_next_build_repairs(lite):
    assert lite_cli(lite, "index").returncode == 0
    for schema in Path(lite.milvus_uri).glob("collections/*/schema.json"):
        schema.write_text("garbage", encoding="utf-8")
    asked = lite_cli(lite, "retrieve", "INT8 量化能省多少显存？")
    lines = [ln for ln in asked.stderr.splitlines() if ln.strip()]
    assert asked.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: index version"), asked.stderr
    assert "rag index --full" in lines[0]
    built = lite_cli(lite, "index")
    assert built.returncode == 0 and "Traceback" not in built.stderr and "repaired the index" in built.stdout
    assert lite_cli(lite, "retrieve", "INT8 量化能省多少显存？").returncode == 0


def test_readers_during_milvus_swaps_always_get_a_whole_index(lite, embedder):
    build_index(lite, embedder)
    reader = Retriever(lite, embedder)
    errors: list[BaseException] = []
    answers = 0
    stop = threading.Event()

    def ask() -> None:
        nonlocal answers
        while not stop.is_set():
            try:
                result = reader.retrieve(QUESTIONS[answers % len(QUESTIONS)])
                assert result.hits and all((lite.corpus_dir / h.source).exists() for h in result.hits)
                answers += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=ask)
    thread.start()
    try:
        for i in range(3):
            write_notes(lite.corpus_dir, {f"扩展/{i}.md": f"# 主题{i}\n\n第{i}个主题的要点和常见误区。\n"})
            build_index(lite, embedder)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert answers > 0 and reader.status().files == len(NOTES) + 3


def test_milvus_store_missing_its_package_says_how_to_install(lite, embedder, monkeypatch):
    import rag.index.vectors.milvus_index as milvus_index

    monkeypatch.setitem(sys.modules, "pymilvus", None)  # what an environment without it looks like
    monkeypatch.setattr(milvus_index, "_clients", {})
    with pytest.raises(VectorStoreUnavailable, match="pip install pymilvus milvus-lite"):
        build_index(lite, embedder)
    assert IndexStore(lite.index_dir).current_version() is None


# --- Milvus Lite through its gRPC server (the remote-Milvus code path) -------------------------
@pytest.fixture
def served(milvus_server, tmp_path, request):
    write_notes(tmp_path / "corpus", NOTES)
    prefix = "t" + str(abs(hash(request.node.name)) % 10**8)  # one server, collections apart per test
    return milvus_settings(tmp_path, milvus_server, milvus_prefix=prefix)


def env_for(settings) -> dict[str, str]:
    return clean_env(RAG_VECTOR_STORE="milvus", RAG_MILVUS_URI=settings.milvus_uri,
                     RAG_MILVUS_PREFIX=settings.milvus_prefix)


def cli_args(settings) -> list[str]:
    return ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)]


KILL_IN_WRITE = """
import os, signal, sys
from rag.cli import main

def hook(event, args):
    # The Milvus collections of the new version are filled; its manifest and COMPLETE are not written.
    if event == "open" and str(args[0]).endswith("manifest.json") and "w" in str(args[1]):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
sys.exit(main(["index", *sys.argv[1:]]))
"""


def test_rag_index_and_retrieve_work_through_the_milvus_server(served):
    done = rag_cli("index", *cli_args(served), env=env_for(served))
    assert done.returncode == 0, done.stderr
    asked = rag_cli("retrieve", QUESTIONS[0], "--json", *cli_args(served), env=env_for(served))
    assert asked.returncode == 0, asked.stderr
    assert '"source": "量化.md"' in asked.stdout
    assert "Traceback" not in done.stderr + asked.stderr and "ERROR" not in done.stderr + asked.stderr
    assert IndexStore(served.index_dir).read_manifest().dense_kind == "milvus"


def test_a_build_killed_after_filling_milvus_leaves_the_old_version_serving(served, embedder):
    first = build_index(served, embedder).version
    reader = Retriever(served, embedder)
    before = hit_ids(reader, QUESTIONS[0])
    old_collections = collections(served.milvus_uri)
    alias = aliased_collection(served.milvus_uri, "", own(served, "dense"))
    write_notes(served.corpus_dir, ADDED)

    proc = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, *cli_args(served)], capture_output=True, text=True,
                          env=env_for(served), cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # Half a build: collections filled in Milvus, a folder with no COMPLETE; nobody serves it.
    mine = [c for c in collections(served.milvus_uri) if c.startswith(served.milvus_prefix + "_")]
    assert len(mine) == len([c for c in old_collections if c.startswith(served.milvus_prefix + "_")]) + 2
    assert IndexStore(served.index_dir).current_version() == first
    assert aliased_collection(served.milvus_uri, "", own(served, "dense")) == alias
    assert hit_ids(reader, QUESTIONS[0]) == before
    assert Retriever(served, embedder).status().version == first

    report = build_index(served, embedder)  # the next build succeeds and drops the orphans
    assert report.chunks_embedded == 1
    mine = [c for c in collections(served.milvus_uri) if c.startswith(served.milvus_prefix + "_")]
    assert len(mine) == 4 and all(first.replace("-", "_") in c or report.version.replace("-", "_") in c for c in mine)
    assert reader.retrieve("投机采样怎么加速").hits[0].source == "投机.md"


def test_two_builders_at_once_one_builds_and_the_other_is_refused_or_finds_it_done(served, embedder):
    build_index(served, embedder)
    write_notes(served.corpus_dir, ADDED)
    procs = [subprocess.Popen([sys.executable, "-m", "rag.cli", "index", *cli_args(served)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env_for(served), cwd=REPO_ROOT)
             for _ in range(2)]
    outs = [(p.wait(300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in outs)
    assert all("Traceback" not in err for _, _, err in outs), outs
    updates = [out for rc, out, _ in outs if rc == 0 and out.startswith("update:")]
    assert len(updates) == 1, outs  # exactly one embedded the new note
    assert codes in ([0, 0], [0, 3]), outs  # the other was refused, or ran after and found it up to date
    store = IndexStore(served.index_dir)
    current = store.current_version()
    assert aliased_collection(served.milvus_uri, "", own(served, "dense")).startswith(own(served, current))
    assert Retriever(served, embedder).retrieve("投机采样怎么加速").hits[0].source == "投机.md"


def test_a_replica_process_follows_a_version_switch_without_restart(served, embedder):
    """Two app processes sharing one Milvus and one index folder: one builds, the other, already
    running, answers from the new version at its next question."""
    import json

    build_index(served, embedder)
    replica = subprocess.Popen([sys.executable, "-m", "rag.cli", "retrieve", "--batch", "/dev/stdin", "--k", "1",
                                *cli_args(served)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env_for(served), cwd=REPO_ROOT)
    try:
        def ask(i: int) -> str:
            replica.stdin.write(json.dumps({"id": i, "question": "投机采样怎么加速"}, ensure_ascii=False) + "\n")
            replica.stdin.flush()
            return json.loads(replica.stdout.readline())["hits"][0]["source"]

        assert ask(1) != "投机.md"
        write_notes(served.corpus_dir, ADDED)
        build_index(served, embedder)  # "another replica" builds and switches
        assert ask(2) == "投机.md"
    finally:
        replica.stdin.close()
        assert replica.wait(120) == 0, replica.stderr.read()
