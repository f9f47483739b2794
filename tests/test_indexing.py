"""Incremental index builds: what gets re-embedded when notes change, and when everything does.

One real index is built per module; each test works on its own copy of the corpus and index,
with the real embedder wrapped to count what it is asked to embed.
"""
from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from rag.index.builder import BuildReport, IndexLocked, build_index, chunker_identity
from rag.search.retrieval import IndexMismatch, Retriever
from rag.index.store import IndexStore
from tests.conftest import CountingEmbedder, assert_chunk_spans, file_lines, write_notes
from tests.conftest import make_settings as _make_settings


def make_settings(corpus, index, **overrides):
    """These notes are a few lines a section: every section its own passage, so that an edit
    shows up as exactly the passages it touched (merging small sections is tested in test_chunking)."""
    return _make_settings(corpus, index, chunk_min_chars=0, **overrides)

OPTIMIZERS = """# 优化器

## SGD

随机梯度下降每次用一个小批量估计梯度，沿负梯度方向更新参数。

## Adam

Adam 为每个参数维护一阶矩和二阶矩的滑动平均，自适应地调整每个参数的学习率。

## AdamW

AdamW 把权重衰减从梯度更新中解耦出来，直接作用在参数上，泛化效果更好。
"""

QUESTIONS = """归一化面试题

1、BatchNorm 和 LayerNorm 有什么区别？

BatchNorm 在 batch 维度上统计均值方差，LayerNorm 在每个样本的特征维度上统计。

2、为什么 Transformer 用 LayerNorm？

序列长度不一、batch 很小时 BatchNorm 的统计量不稳定，LayerNorm 不依赖 batch。
"""

CODE = """# 采样

```python
def top_p_sampling(probs, p=0.9):
    order = probs.argsort()[::-1]
    cumulative = probs[order].cumsum()
    keep = order[: (cumulative < p).sum() + 1]
    return keep
```
"""

BASE = {"优化器.md": OPTIMIZERS, "面试/归一化.txt": QUESTIONS, "code/采样.md": CODE}

DROPOUT = """# Dropout

训练时以概率 p 随机把神经元的输出置零，推理时不丢弃，相当于对很多子网络做了集成。

## 为什么能防止过拟合

神经元不能依赖某几个特定的同伴，被迫学到更鲁棒的特征。
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("indexing-template")
    settings = make_settings(write_notes(root / "corpus", BASE), root / "index")
    report = build_index(settings, embedder)
    assert report.full_rebuild and report.chunks_embedded == report.chunks
    return root


@pytest.fixture
def work(template, tmp_path, embedder):
    """A private copy of the built corpus and index, and a counting wrapper around the real embedder."""
    shutil.copytree(template / "corpus", tmp_path / "corpus")
    shutil.copytree(template / "index", tmp_path / "index")
    settings = make_settings(tmp_path / "corpus", tmp_path / "index")
    return settings, CountingEmbedder(embedder)


def loaded(settings, version=None):
    return IndexStore(settings.index_dir).load(version)


def vectors_by_hash(index) -> dict[str, np.ndarray]:
    return {c.content_hash: index.vectors[i] for i, c in enumerate(index.chunks)}


def assert_index_matches_disk(settings) -> None:
    index = loaded(settings)
    sources = {c.source for c in index.chunks}
    assert sources == set(index.manifest.files)
    for source in sources:
        assert_chunk_spans([c for c in index.chunks if c.source == source], file_lines(settings.corpus_dir / source))
    assert index.vectors.shape == (len(index.chunks), index.manifest.dim) == index.title_vectors.shape
    assert index.dense.ntotal == index.title_dense.ntotal == len(index.chunks)
    assert index.bm25.weights.shape[0] == len(index.chunks)


def test_base_index_covers_every_note(template):
    settings = make_settings(template / "corpus", template / "index")
    index = loaded(settings)
    assert set(index.manifest.files) == set(BASE)
    assert index.manifest.chunk_count == len(index.chunks) >= 6
    assert_index_matches_disk(settings)


def test_editing_a_note_reembeds_only_its_changed_chunk(work):
    settings, counter = work
    before = loaded(settings)
    path = settings.corpus_dir / "优化器.md"
    path.write_text(OPTIMIZERS.replace(
        "随机梯度下降每次用一个小批量估计梯度，沿负梯度方向更新参数。",
        "随机梯度下降每次用一个小批量估计梯度，沿负梯度方向更新参数。\n动量法在此基础上累积历史梯度，减少来回震荡。",
    ), encoding="utf-8")

    report = build_index(settings, counter)

    assert not report.full_rebuild and not report.unchanged
    assert (report.files_changed, report.files_removed, report.chunks_embedded) == (1, 0, 1)
    assert len(counter.passages) == 1 and "动量法" in counter.passages[0]
    after = loaded(settings)
    assert after.manifest.version == report.version != before.manifest.version
    assert len(after.chunks) == len(before.chunks) == report.chunks
    # The sections below the edit moved down a line: same vectors, new line numbers.
    old_adam = next(c for c in before.chunks if c.heading == "优化器 > Adam")
    new_adam = next(c for c in after.chunks if c.heading == "优化器 > Adam")
    assert new_adam.line_start == old_adam.line_start + 1 and new_adam.content_hash == old_adam.content_hash
    old_vectors = vectors_by_hash(before)
    for i, chunk in enumerate(after.chunks):
        if chunk.content_hash in old_vectors:
            assert np.array_equal(after.vectors[i], old_vectors[chunk.content_hash])
    assert_index_matches_disk(settings)


def test_adding_a_note_embeds_only_it_and_an_open_retriever_sees_it(work):
    settings, counter = work
    retriever = Retriever(settings, counter.inner)  # opened on the old version
    old_version = retriever.status().version
    write_notes(settings.corpus_dir, {"正则化/Dropout.md": DROPOUT})

    report = build_index(settings, counter)

    new_chunks = [c for c in loaded(settings).chunks if c.source == "正则化/Dropout.md"]
    assert len(new_chunks) == 2
    assert (report.files, report.files_changed, report.chunks_embedded) == (len(BASE) + 1, 1, 2)
    assert sorted(counter.passages) == sorted(c.embedding_text() for c in new_chunks)
    # The retriever follows the CURRENT swap without being reopened.
    hit = retriever.retrieve("Dropout 为什么能防止过拟合？").hits[0]
    assert hit.source == "正则化/Dropout.md"
    assert retriever.status().version == report.version != old_version
    assert_index_matches_disk(settings)


def test_deleting_a_note_removes_its_chunks(work):
    settings, counter = work
    retriever = Retriever(settings, counter.inner)
    assert retriever.retrieve("BatchNorm 和 LayerNorm 的区别").hits[0].source == "面试/归一化.txt"
    (settings.corpus_dir / "面试/归一化.txt").unlink()

    report = build_index(settings, counter)

    assert (report.files, report.files_changed, report.files_removed, report.chunks_embedded) == (len(BASE) - 1, 0, 1, 0)
    assert counter.passages == []
    index = loaded(settings)
    assert all(c.source != "面试/归一化.txt" for c in index.chunks)
    assert "面试/归一化.txt" not in index.manifest.files
    hits = retriever.retrieve("BatchNorm 和 LayerNorm 的区别", k=10).hits
    assert hits and all(h.source != "面试/归一化.txt" for h in hits)
    assert all(t not in index.bm25.vocab for t in ("batchnorm", "layernorm"))
    assert_index_matches_disk(settings)


def test_renaming_a_note_reuses_its_vectors(work):
    settings, counter = work
    before = loaded(settings)
    target = settings.corpus_dir / "归档/二〇二四/优化器笔记.md"
    target.parent.mkdir(parents=True)
    os.rename(settings.corpus_dir / "优化器.md", target)

    report = build_index(settings, counter)

    assert report.chunks_embedded == 0 and counter.passages == []
    assert (report.files_changed, report.files_removed, report.full_rebuild) == (1, 1, False)
    after = loaded(settings)
    moved = [c for c in after.chunks if c.source == "归档/二〇二四/优化器笔记.md"]
    assert len(moved) == sum(c.source == "优化器.md" for c in before.chunks) == 3
    assert all(c.source != "优化器.md" for c in after.chunks)
    old_vectors = vectors_by_hash(before)
    assert all(np.array_equal(after.vectors[i], old_vectors[c.content_hash]) for i, c in enumerate(after.chunks))
    hit = Retriever(settings, counter.inner).retrieve("AdamW 的权重衰减").hits[0]
    assert hit.source == "归档/二〇二四/优化器笔记.md"
    assert_index_matches_disk(settings)


def test_unchanged_corpus_is_up_to_date_and_embeds_nothing(work):
    settings, counter = work
    store = IndexStore(settings.index_dir)
    version = store.current_version()
    folders = sorted(p.name for p in store.versions.iterdir())
    for path in settings.corpus_dir.rglob("*.md"):
        os.utime(path, (1, 1))  # a new mtime is not a change

    report = build_index(settings, counter)

    assert report.unchanged and report.version == version
    assert report.chunks_embedded == 0 and counter.passages == []
    assert report.summary().startswith("index is up to date")
    assert store.current_version() == version
    assert sorted(p.name for p in store.versions.iterdir()) == folders


def test_changed_embedder_forces_a_full_rebuild(work, st_embedder):
    settings, counter = work
    n_chunks = len(loaded(settings).chunks)

    report = build_index(settings, st_embedder)

    assert report.full_rebuild and report.chunks_embedded == report.chunks == n_chunks
    manifest = IndexStore(settings.index_dir).read_manifest()
    assert manifest.embedder == st_embedder.identity != counter.identity
    assert report.summary().startswith("full build")
    with pytest.raises(IndexMismatch, match="rag index"):
        Retriever(settings, counter.inner)
    hit = Retriever(settings, st_embedder).retrieve("top_p_sampling").hits[0]
    assert "def top_p_sampling" in hit.text
    # And back: the old vectors are not reused for the other model.
    back = build_index(settings, counter)
    assert back.full_rebuild and back.chunks_embedded == n_chunks == len(counter.passages)


@pytest.mark.parametrize("change", [{"chunk_max_chars": 300}, {"chunk_target_chars": 200}, {"code_max_chars": 600}])
def test_changed_chunker_settings_force_a_full_rebuild(work, change):
    settings, counter = work
    changed = settings.model_copy(update=change)
    assert chunker_identity(changed) != chunker_identity(settings)

    report = build_index(changed, counter)

    assert report.full_rebuild and report.chunks_embedded == report.chunks == len(counter.passages)
    assert IndexStore(settings.index_dir).read_manifest().chunker == chunker_identity(changed)


def test_full_flag_re_embeds_everything(work):
    settings, counter = work
    report = build_index(settings, counter, full=True)
    assert report.full_rebuild and report.chunks_embedded == report.chunks == len(counter.passages) > 0


def test_empty_corpus_builds_an_empty_index(tmp_path, embedder):
    settings = make_settings(write_notes(tmp_path / "corpus", {}), tmp_path / "index")
    report = build_index(settings, embedder)
    assert (report.files, report.chunks, report.chunks_embedded) == (0, 0, 0)
    result = Retriever(settings, embedder).retrieve("LoRA 是什么？")
    assert result.hits == [] and result.relevant is False
    assert build_index(settings, embedder).unchanged


def test_deleting_every_note_empties_the_index(work):
    settings, counter = work
    retriever = Retriever(settings, counter.inner)
    for path in list(settings.corpus_dir.rglob("*.*")):
        path.unlink()
    report = build_index(settings, counter)
    assert (report.files, report.chunks, report.files_removed) == (0, 0, len(BASE))
    result = retriever.retrieve("Adam 优化器")
    assert result.hits == [] and result.relevant is False


def test_a_file_deleted_while_the_build_reads_notes_is_skipped(work):
    settings, counter = work
    write_notes(settings.corpus_dir, {"正则化/Dropout.md": DROPOUT})
    doomed = settings.corpus_dir / "正则化/Dropout.md"
    stages: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        stages.append(stage)
        if stage == "reading notes" and done == 0:
            doomed.unlink()  # hashed already, gone before it is read

    report = build_index(settings, counter, progress=progress)

    assert [s.source for s in report.skipped] == ["正则化/Dropout.md"]
    assert "cannot read" in report.skipped[0].reason
    assert report.chunks_embedded == 0 and report.files == len(BASE)
    assert {"reading notes", "embedding passages", "writing index"} <= set(stages)
    assert_index_matches_disk(settings)
    # The next build knows the file is gone.
    again = build_index(settings, counter)
    assert again.skipped == [] and "正则化/Dropout.md" not in IndexStore(settings.index_dir).read_manifest().skipped


def test_build_while_another_holds_the_lock_raises_index_locked(work):
    settings, counter = work
    write_notes(settings.corpus_dir, {"正则化/Dropout.md": DROPOUT})
    version = IndexStore(settings.index_dir).current_version()
    with IndexStore(settings.index_dir).lock():
        with pytest.raises(IndexLocked, match="already building"):
            build_index(settings, counter)
    assert counter.passages == [] and IndexStore(settings.index_dir).current_version() == version
    assert build_index(settings, counter).chunks_embedded == 2  # free again once released


def test_old_versions_are_pruned_to_the_configured_number(work):
    settings, counter = work
    settings = settings.model_copy(update={"keep_old_versions": 1})
    versions = []
    for i in range(3):
        write_notes(settings.corpus_dir, {f"新增/{i}.md": f"# 第{i}条\n\n第{i}条笔记的内容。\n"})
        versions.append(build_index(settings, counter).version)
    store = IndexStore(settings.index_dir)
    assert sorted(p.name for p in store.versions.iterdir()) == sorted(versions[-2:])
    assert store.current_version() == versions[-1]
    assert counter.passages and len(counter.passages) == 3


def test_readers_during_a_build_always_get_a_whole_index(work):
    settings, counter = work
    retriever = Retriever(settings, counter.inner)
    old_version = retriever.status().version
    write_notes(settings.corpus_dir, {"正则化/Dropout.md": DROPOUT})
    done = threading.Event()
    seen: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def read() -> None:
        while not done.is_set() or not seen:
            try:
                result = retriever.retrieve("Dropout 和 Adam", k=3)
                seen.append((retriever.status().version, len(result.hits)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        report = build_index(settings, counter)
    finally:
        done.set()
        reader.join(timeout=120)
    assert not errors, errors
    assert {v for v, _ in seen} <= {old_version, report.version}
    assert all(n == 3 for _, n in seen)
    assert retriever.retrieve("Dropout 为什么能防止过拟合？").hits[0].source == "正则化/Dropout.md"


def test_report_summary_names_what_happened(work):
    settings, counter = work
    write_notes(settings.corpus_dir, {"正则化/Dropout.md": DROPOUT, "坏文件.md": b"\x00\x01binary"})
    report = build_index(settings, counter)
    assert isinstance(report, BuildReport)
    summary = report.summary()
    assert summary.startswith("update:")
    assert f"{len(BASE) + 1} files" in summary and "1 skipped" in summary and "2 embedded" in summary
    assert report.version in summary
