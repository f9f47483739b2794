"""A damaged index: every file checked on load, readers fall back, `rag index` repairs.

Damage is real: files of a real built index are truncated, overwritten in place or
replaced with garbage on disk, CURRENT is deleted or made a folder. The index has two
versions (the base notes, then one more note), so there is an intact older one to fall
back to. The CLI cases run `rag` in subprocesses and check what a person sees.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from rag.core.errors import RagError
from rag.index.builder import build_index
from rag.search.retrieval import Retriever
from rag.index.store import IndexStore
from rag.index.version_files import COMPLETE_MARKER, MANIFEST, IndexDamaged, IndexNotFound, file_checksum
from tests.conftest import (
    CountingEmbedder,
    clean_env,
    free_port,
    make_settings,
    rag_cli,
    start_rag_serve,
    write_notes,
)

BASE = {
    "量化.md": "# 模型量化\n\nINT8 量化把权重从 fp32 映射到 8 位整数，显存减为四分之一，推理更快。\n",
    "蒸馏.txt": "知识蒸馏\n\n1、温度的作用是什么？\n\n温度越高，教师输出的概率分布越平滑，暗知识越多。\n",
}
ADDED = {"投机.md": "# 投机采样\n\n小模型先起草几个词，大模型一次并行验证，接受的前缀直接输出。\n"}
QUESTION = "INT8 量化能省多少显存？"
DATA_FILES = ["chunks.jsonl", "vectors.npy", "title_vectors.npy", "dense.faiss", "title_dense.faiss", "bm25.npz",
              "bm25_vocab.json"]


@pytest.fixture(scope="module")
def template(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("damage-template")
    settings = make_settings(write_notes(root / "corpus", BASE), root / "index")
    first = build_index(settings, embedder).version
    write_notes(settings.corpus_dir, ADDED)
    second = build_index(settings, embedder).version
    # Completion order is what "newest" means; make it unambiguous at one-second mtime resolution.
    os.utime(Path(settings.index_dir) / "versions" / first / COMPLETE_MARKER, (1000, 1000))
    return root, first, second


@pytest.fixture
def work(template, tmp_path):
    root, first, second = template
    shutil.copytree(root / "corpus", tmp_path / "corpus")
    shutil.copytree(root / "index", tmp_path / "index", copy_function=shutil.copy2)
    return make_settings(tmp_path / "corpus", tmp_path / "index"), first, second


def version_file(settings, version: str, name: str) -> Path:
    return Path(settings.index_dir) / "versions" / version / name


def truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)


def overwrite_middle(path: Path) -> None:
    """Same size, different bytes: only a checksum can tell."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(16 - i for i in range(16))
    path.write_bytes(bytes(data))


def damage(settings, version: str, how: str) -> str:
    """Damage one file of ``version``; returns the file's name."""
    if how == "garbage manifest":
        version_file(settings, version, MANIFEST).write_text("{this is not json", encoding="utf-8")
        return MANIFEST
    name = how.split()[-1]
    if how.startswith("truncated"):
        truncate(version_file(settings, version, name))
    elif how.startswith("overwritten"):
        overwrite_middle(version_file(settings, version, name))
    elif how.startswith("deleted"):
        version_file(settings, version, name).unlink()
    return name


DAMAGES = ["truncated chunks.jsonl", "truncated vectors.npy", "truncated dense.faiss", "truncated bm25.npz",
           "garbage manifest", "overwritten vectors.npy", "overwritten title_dense.faiss",
           "deleted bm25_vocab.json"]


# --- what the build records ---------------------------------------------------------------------
def test_every_file_of_a_version_has_its_size_and_checksum_in_the_manifest(work):
    settings, first, second = work
    store = IndexStore(settings.index_dir)
    manifest = store.read_manifest(second)
    folder = store.versions / second
    assert sorted(manifest.checksums) == sorted(p.name for p in folder.iterdir()
                                                if p.name not in (MANIFEST, COMPLETE_MARKER))
    assert set(DATA_FILES) <= set(manifest.checksums)
    for name, recorded in manifest.checksums.items():
        assert recorded == file_checksum(folder / name)
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    assert marker[MANIFEST] == file_checksum(folder / MANIFEST)


# --- readers fall back --------------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_current_version_falls_back_to_the_previous_version(work, embedder, how):
    settings, first, second = work
    name = damage(settings, second, how)
    with pytest.raises(IndexDamaged, match=name.replace(".", r"\.")):
        IndexStore(settings.index_dir).load(second)
    retriever = Retriever(settings, embedder)
    status = retriever.status()
    assert status.version == first
    assert second in status.warning and name in status.warning and "rag index" in status.warning
    assert retriever.retrieve(QUESTION).hits[0].source == "量化.md"


def test_an_intact_index_serves_without_a_warning(work, embedder):
    settings, first, second = work
    status = Retriever(settings, embedder).status()
    assert status.version == second and status.warning is None


def test_a_damaged_index_with_no_intact_version_raises_one_user_facing_error(work, embedder):
    settings, first, second = work
    damage(settings, second, "truncated vectors.npy")
    damage(settings, first, "garbage manifest")
    with pytest.raises(IndexDamaged) as caught:
        Retriever(settings, embedder)
    assert isinstance(caught.value, RagError) and isinstance(caught.value, IndexNotFound)
    assert "rag index --full" in str(caught.value) and caught.value.exit_code == 2


def test_a_deleted_current_pointer_serves_the_newest_intact_version(work, embedder):
    settings, first, second = work
    (Path(settings.index_dir) / "CURRENT").unlink()
    status = Retriever(settings, embedder).status()
    assert status.version == second and "CURRENT" in status.warning


def test_a_version_damaged_under_a_running_reader_keeps_answering(work, embedder):
    settings, first, second = work
    retriever = Retriever(settings, embedder)
    before = [h.chunk.id for h in retriever.retrieve(QUESTION).hits]
    for how in ("garbage manifest", "truncated vectors.npy", "truncated chunks.jsonl"):
        damage(settings, second, how)
    assert [h.chunk.id for h in retriever.retrieve(QUESTION).hits] == before  # the loaded copy serves

    # A rebuild's new version is damaged before this reader loads it: it falls back, no error.
    write_notes(settings.corpus_dir, {"新.md": "# 混合专家\n\n每个词只激活少数专家网络。\n"})
    third = build_index(settings, embedder).version
    damage(settings, third, "truncated dense.faiss")
    assert retriever.retrieve(QUESTION).hits[0].source == "量化.md"
    status = retriever.status()
    assert status.version != third and third in status.warning


def test_every_version_damaged_under_a_running_reader_keeps_the_loaded_one(work, embedder):
    settings, first, second = work
    retriever = Retriever(settings, embedder)
    (Path(settings.index_dir) / "CURRENT").write_text(first)  # a switch the reader will notice
    damage(settings, first, "truncated chunks.jsonl")
    damage(settings, second, "truncated chunks.jsonl")
    assert retriever.retrieve(QUESTION).hits[0].source == "量化.md"
    status = retriever.status()
    assert status.version == second and "still serving" in status.warning


# --- `rag index` repairs --------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated vectors.npy", "garbage manifest", "overwritten dense.faiss"])
def test_index_rebuilds_a_damaged_version_reusing_the_intact_vectors(work, embedder, how):
    settings, first, second = work
    damage(settings, second, how)
    counter = CountingEmbedder(embedder)
    report = build_index(settings, counter)
    # Only the note the intact (older) version lacks is embedded again.
    assert not report.unchanged and report.repaired and second in report.summary()
    assert report.chunks_embedded == 1 and counter.passages and all("投机" in p for p in counter.passages)
    store = IndexStore(settings.index_dir)
    assert store.current_version() == report.version and not (store.versions / second).exists()
    status = Retriever(settings, embedder).status()
    assert status.warning is None and status.files == len(BASE) + len(ADDED)
    assert build_index(settings, counter).unchanged  # and it stays repaired


def test_index_repairs_a_deleted_current_pointer_without_embedding(work, embedder):
    settings, first, second = work
    (Path(settings.index_dir) / "CURRENT").unlink()
    counter = CountingEmbedder(embedder)
    report = build_index(settings, counter)
    assert report.unchanged and report.version == second and counter.passages == []
    assert "CURRENT" in report.summary() and "up to date" in report.summary()
    assert (Path(settings.index_dir) / "CURRENT").read_text() == second
    assert Retriever(settings, embedder).status().warning is None


# --- through the `rag` command --------------------------------------------------------------------
def args(settings) -> list[str]:
    return ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)]


@pytest.mark.parametrize("how", ["truncated chunks.jsonl", "truncated vectors.npy", "truncated dense.faiss",
                                 "truncated bm25.npz", "garbage manifest"])
def test_rag_retrieve_on_a_damaged_index_answers_from_the_previous_version_with_a_warning(work, how):
    settings, first, second = work
    name = damage(settings, second, how)
    done = rag_cli("retrieve", QUESTION, "--json", *args(settings))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert second in done.stderr and name in done.stderr and first in done.stderr
    assert json.loads(done.stdout)["hits"][0]["source"] == "量化.md"


def test_rag_retrieve_with_nothing_intact_prints_one_line_and_exit_code_2(work):
    settings, first, second = work
    damage(settings, second, "truncated vectors.npy")
    damage(settings, first, "truncated chunks.jsonl")
    done = rag_cli("retrieve", QUESTION, *args(settings))
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr and "rag index --full" in done.stderr
    assert len([ln for ln in done.stderr.splitlines() if ln.startswith("error:")]) == 1


def test_rag_index_after_damage_rebuilds_and_says_so(work):
    settings, first, second = work
    damage(settings, second, "truncated bm25.npz")
    done = rag_cli("index", *args(settings))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("repaired the index") and "update:" in done.stdout
    after = rag_cli("retrieve", QUESTION, "--json", *args(settings))
    assert after.returncode == 0 and "WARNING" not in after.stderr, after.stderr


@pytest.mark.parametrize("state", ["garbage manifest", "garbage COMPLETE", "garbage CURRENT", "CURRENT a folder",
                                   "versions a file", "everything truncated"])
def test_rag_index_full_works_whatever_is_on_disk(work, state):
    settings, first, second = work
    index_dir = Path(settings.index_dir)
    if state == "garbage manifest":
        damage(settings, second, state)
    elif state == "garbage COMPLETE":
        version_file(settings, second, COMPLETE_MARKER).write_bytes(b"\x00\xff garbage")
    elif state == "garbage CURRENT":
        (index_dir / "CURRENT").write_bytes(b"\xff\xfe../../etc\n")
    elif state == "CURRENT a folder":
        (index_dir / "CURRENT").unlink()
        (index_dir / "CURRENT").mkdir()
    elif state == "versions a file":
        shutil.rmtree(index_dir / "versions")
        (index_dir / "CURRENT").unlink()
        (index_dir / "versions").write_text("not a folder")
    else:
        for version in (first, second):
            for path in (index_dir / "versions" / version).iterdir():
                truncate(path)
    done = rag_cli("index", "--full", *args(settings))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stdout.startswith("full build:")
    after = rag_cli("retrieve", QUESTION, "--json", *args(settings))
    assert after.returncode == 0, after.stderr
    assert "WARNING" not in after.stderr and json.loads(after.stdout)["hits"][0]["source"] == "量化.md"


def test_rag_index_without_full_also_recovers_when_nothing_is_intact(work):
    settings, first, second = work
    for version in (first, second):
        damage(settings, version, "garbage manifest")
    done = rag_cli("index", *args(settings))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("repaired the index") and "full build" in done.stdout
    assert sorted(p.name for p in (Path(settings.index_dir) / "versions").iterdir()) == [
        IndexStore(settings.index_dir).current_version()]


def test_rag_serve_starts_on_a_damaged_index_and_says_what_it_serves(work):
    settings, first, second = work
    damage(settings, second, "truncated vectors.npy")
    env = clean_env(RAG_LLM_BACKEND="none", RAG_WATCH_CORPUS="false", GRADIO_ANALYTICS_ENABLED="False")
    proc, text = start_rag_serve(["--port", str(free_port()), *args(settings)], env)
    try:
        assert "Notes chat on" in text, text
        assert "Traceback" not in text
        assert f"Serving the older version {first}" in text and "vectors.npy" in text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
