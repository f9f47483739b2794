"""rag/notes.py on real files: safe uploads, deleting, listing, passages in context, background re-indexing."""
from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.notes import (
    NoteError,
    Reindexer,
    Upload,
    UploadError,
    add_notes,
    check_note_name,
    delete_note,
    highlight_terms,
    list_notes,
    note_path,
    passage_view,
    read_note_lines,
    read_upload,
    term_pattern,
)
from rag.core.settings import Settings
from rag.index.store import IndexStore

EXT = (".md", ".markdown", ".txt")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "existing.md").write_text("# Existing\n\nBM25 ranks passages by term frequency.\n", encoding="utf-8")
    return Settings(corpus_dir=corpus, index_dir=tmp_path / "index", max_upload_bytes=1000, llm_backend="none")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["笔记.md", "注意力机制 (2).markdown", "a b.txt", "Wait... what.md", "x.MD",
                                  "  spaced.md  "])
def test_ordinary_names_are_kept(name):
    assert check_note_name(name, EXT) == name.strip()


@pytest.mark.parametrize("name", [
    "../../evil.md", "../evil.md", "sub/dir.md", "..\\evil.md", "/etc/passwd.md", "C:\\evil.md", "C:evil.md",
    ".hidden.md", ".md", "..", "evil.exe", "script.md.sh", "no-extension", "", "   ", "con.md", "NUL.txt",
    "bad\x00name.md", "line\nbreak.md", "x" * 300 + ".md",
])
def test_hostile_or_invalid_names_are_refused(name):
    with pytest.raises(UploadError) as exc:
        check_note_name(name, EXT)
    assert str(exc.value)  # a message for the user


def test_names_are_normalised_to_nfc():
    decomposed = "cafe\u0301.md"
    assert check_note_name(decomposed, EXT) == "caf\u00e9.md"


# --- adding ------------------------------------------------------------------------------------------
def test_add_several_notes_with_chinese_names(settings):
    report = add_notes(settings, [
        Upload("注意力机制.md", "# 注意力\n\n自注意力计算查询和键的点积。".encode("utf-8")),
        Upload("checkpointing.txt", b"Gradient checkpointing recomputes activations."),
    ])
    assert [a.source for a in report.added] == ["注意力机制.md", "checkpointing.txt"]
    corpus = Path(settings.corpus_dir)
    assert (corpus / "注意力机制.md").read_text(encoding="utf-8").startswith("# 注意力")
    assert (corpus / "checkpointing.txt").exists()
    assert not [p for p in corpus.iterdir() if p.name.startswith(".")]  # no temp files left
    assert "Added 2 notes" in report.summary()


def test_gbk_encoded_note_is_accepted(settings):
    data = "# 混合精度\n\n混合精度训练用 FP16 存储激活。".encode("gb18030")
    report = add_notes(settings, [Upload("混合精度.txt", data)])
    assert report.added and (Path(settings.corpus_dir) / "混合精度.txt").read_bytes() == data


@pytest.mark.parametrize("upload, words", [
    (Upload("../../evil.md", b"# evil"), "folders"),
    (Upload("photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 2), "not a text note"),
    (Upload("big.md", b"a" * 1001), "at most"),
    (Upload("empty.md", b"   \n"), "empty"),
    (Upload("tool.exe", b"MZ"), "only .md"),
])
def test_bad_upload_changes_nothing(settings, tmp_path, upload, words):
    before = snapshot(tmp_path)
    with pytest.raises(UploadError) as exc:
        add_notes(settings, [upload])
    assert words in str(exc.value)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "evil.md").exists() and not (tmp_path.parent / "evil.md").exists()


def test_one_bad_file_refuses_the_whole_batch(settings, tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(UploadError) as exc:
        add_notes(settings, [Upload("good.md", b"# good note"), Upload("bad.md", b"\x00\x01\x02binary")])
    assert "Nothing was added" in str(exc.value)
    assert snapshot(tmp_path) == before


def test_binary_without_nul_bytes_is_refused(settings):
    noise = bytes([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0e, 0x0f, 0x10]) * 20
    with pytest.raises(UploadError):
        add_notes(settings, [Upload("noise.md", noise)])


def test_duplicate_content_is_detected_by_hash(settings):
    existing = (Path(settings.corpus_dir) / "existing.md").read_bytes()
    report = add_notes(settings, [Upload("copy of existing.md", existing), Upload("new.md", b"# new"),
                                  Upload("new again.md", b"# new")])
    assert [a.source for a in report.added] == ["new.md"]
    assert ("copy of existing.md", "existing.md") in report.duplicates
    assert ("new again.md", "new.md") in report.duplicates
    assert not (Path(settings.corpus_dir) / "copy of existing.md").exists()
    assert "already in your notes" in report.summary()


def test_same_name_different_content_needs_replace(settings):
    target = Path(settings.corpus_dir) / "existing.md"
    old = target.read_bytes()
    with pytest.raises(UploadError) as exc:
        add_notes(settings, [Upload("existing.md", b"# changed")])
    assert "already exists" in str(exc.value)
    assert target.read_bytes() == old
    report = add_notes(settings, [Upload("existing.md", b"# changed")], replace=True)
    assert report.added[0].replaced and target.read_bytes() == b"# changed"


def test_two_files_with_one_name_in_a_batch_are_refused(settings, tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(UploadError):
        add_notes(settings, [Upload("a.md", b"# one"), Upload("a.md", b"# two")])
    assert snapshot(tmp_path) == before


def test_upload_never_writes_through_a_link(settings, tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("secret", encoding="utf-8")
    os.symlink(outside, Path(settings.corpus_dir) / "link.md")
    with pytest.raises(UploadError):
        add_notes(settings, [Upload("link.md", b"# overwrite")], replace=True)
    assert outside.read_text(encoding="utf-8") == "secret"


def test_read_upload_refuses_a_large_file_before_reading_it(tmp_path):
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(UploadError) as exc:
        read_upload(big, "big.md", 1000)
    assert "at most" in str(exc.value)
    small = tmp_path / "small.md"
    small.write_bytes(b"# hi")
    assert read_upload(small, "笔记.md", 1000) == Upload("笔记.md", b"# hi")


# --- deleting and paths ----------------------------------------------------------------------------
def test_delete_a_note(settings):
    assert delete_note(settings, "existing.md") == "existing.md"
    assert not (Path(settings.corpus_dir) / "existing.md").exists()
    with pytest.raises(NoteError):
        delete_note(settings, "existing.md")  # already gone


@pytest.mark.parametrize("source", ["../outside.md", "/etc/passwd", "sub/../../outside.md", ".hidden.md",
                                    "existing", "", "C:\\x.md"])
def test_delete_refuses_paths_outside_or_not_notes(settings, tmp_path, source):
    (tmp_path / "outside.md").write_text("keep", encoding="utf-8")
    (Path(settings.corpus_dir) / ".hidden.md").write_text("keep", encoding="utf-8")
    before = snapshot(tmp_path)
    with pytest.raises(NoteError):
        delete_note(settings, source)
    assert snapshot(tmp_path) == before


def test_delete_refuses_a_folder_link_leading_outside(settings, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "victim.md").write_text("keep", encoding="utf-8")
    os.symlink(elsewhere, Path(settings.corpus_dir) / "linked")
    with pytest.raises(NoteError):
        delete_note(settings, "linked/victim.md")
    assert (elsewhere / "victim.md").exists()


def test_list_notes_with_index_state(settings):
    corpus = Path(settings.corpus_dir)
    (corpus / "sub").mkdir()
    (corpus / "sub" / "b.txt").write_text("b", encoding="utf-8")
    (corpus / ".secret.md").write_text("hidden", encoding="utf-8")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    notes = list_notes(settings)
    assert [n.source for n in notes] == ["existing.md", "sub/b.txt"]
    assert all(n.indexed is None for n in notes)
    later = time.time() + 10
    state = {n.source: n.indexed for n in list_notes(settings, {"existing.md"}, later)}
    assert state == {"existing.md": True, "sub/b.txt": False}
    # Modified after the index was built: no longer indexed as it is.
    state = {n.source: n.indexed for n in list_notes(settings, {"existing.md"}, time.time() - 3600)}
    assert state["existing.md"] is False


# --- a passage in its note ------------------------------------------------------------------------
NOTE = "\n".join([
    "# LoRA 低秩适配",        # 1
    "",                      # 2
    "## 原理",               # 3
    "",                      # 4
    "LoRA 冻结预训练权重，只训练低秩矩阵 A 和 B。",  # 5
    "更新量 ΔW = BA。",      # 6
    "",                      # 7
    "## 缺点",               # 8
    "",                      # 9
    "LoRA 的缺点是秩 r 需要手工选择。",  # 10
    "",                      # 11
])


def test_passage_view_shows_context_and_marks_words(settings):
    (Path(settings.corpus_dir) / "lora.md").write_text(NOTE, encoding="utf-8")
    text = "LoRA 的缺点是秩 r 需要手工选择。"
    view = passage_view(settings, "lora.md", 8, 10, text, "那 LoRA 的缺点呢？", heading="LoRA 低秩适配 > 缺点",
                        context=3)
    numbers = [n for n, _, _ in view.lines]
    assert numbers[0] == 5 and numbers[-1] == 10  # blank context lines at the edges trimmed
    inside = [n for n, _, flag in view.lines if flag]
    assert inside == [8, 9, 10]
    assert "缺点" in view.terms and "LoRA" in view.terms
    assert not view.stale


def test_passage_view_of_a_changed_note_shows_the_indexed_text(settings):
    (Path(settings.corpus_dir) / "lora.md").write_text("# totally different\n", encoding="utf-8")
    view = passage_view(settings, "lora.md", 8, 10, "LoRA 的缺点是秩 r 需要手工选择。", "缺点")
    assert view.stale and view.note and view.lines == [(8, "LoRA 的缺点是秩 r 需要手工选择。", True)]
    gone = passage_view(settings, "deleted.md", 1, 1, "text", "q")
    assert gone.stale and "deleted.md" in (gone.note or "")


def test_read_note_lines_decodes_like_indexing(settings):
    (Path(settings.corpus_dir) / "gbk.txt").write_bytes("第一行\r\n第二行".encode("gb18030"))
    assert read_note_lines(settings, "gbk.txt") == ["第一行", "第二行"]
    with pytest.raises(NoteError):
        note_path(settings, "../corpus/gbk.txt")


def test_term_pattern_matches_whole_english_words_and_chinese_anywhere():
    pattern = term_pattern(["rank", "lo", "缺点"])
    assert [m.group(0) for m in pattern.finditer("BM25 ranks; local LO; 它的缺点是")] == ["ranks", "LO", "缺点"]
    assert term_pattern([]) is None


def test_highlight_terms():
    assert highlight_terms("What does BM25 rank passages by?")[:2] == ["passages", "BM25"]
    assert "the" not in highlight_terms("the passages")
    zh = highlight_terms("混合精度训练有什么缺点？")
    assert "缺点" in zh and "什么" not in zh
    assert zh == sorted(zh, key=lambda t: (-len(t), t))


# --- background re-indexing ----------------------------------------------------------------------
class FakeEmbedder:
    """Deterministic bag-of-characters vectors: indexing without a model, fast."""

    identity = "fake-embedder:1"
    dim = 64

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.calls = 0

    def _vec(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                out[i, int(hashlib.md5(ch.encode()).hexdigest(), 16) % self.dim] += 1
        out += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_passages(self, texts):
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(30)
        return self._vec(texts)

    def embed_queries(self, texts):
        return self._vec(texts)


def test_reindexer_builds_in_the_background_and_reports(settings):
    done = []
    r = Reindexer(settings, embedder=FakeEmbedder(), on_done=done.append)
    assert r.request("first") is True
    assert r.wait(60)
    status = r.status()
    assert not status.running and status.runs == 1 and status.last_error is None
    assert "full build" in status.last_summary and done and done[0].files == 1
    assert IndexStore(settings.index_dir).current_version() == done[0].version
    assert status.notices and "Index updated (first)" in status.notices[-1][1]
    # Nothing changed: the next run says so.
    r.request("again")
    assert r.wait(60)
    assert "up to date" in r.status().last_summary
    r.close()


def test_requests_during_a_build_are_merged_into_one_more_run(settings):
    gate = threading.Event()
    embedder = FakeEmbedder(gate)
    r = Reindexer(settings, embedder=embedder)
    assert r.request("one") is True
    deadline = time.time() + 10
    while r.status().stage != "embedding passages" and time.time() < deadline:
        time.sleep(0.02)
    status = r.status()
    assert status.running and status.progress_text.startswith("embedding passages")
    (Path(settings.corpus_dir) / "new.md").write_text("# new note\n\nThe new note has a sentence of content.", encoding="utf-8")
    assert r.request("two") is False
    assert r.request("three") is False
    assert r.status().pending
    gate.set()
    assert r.wait(60)
    status = r.status()
    assert status.runs == 2 and not status.pending
    assert "Index updated (two)" in status.notices[-1][1]
    assert status.last_summary.startswith("update: 2 files")
    r.close()


def test_a_failed_build_is_reported_and_the_reindexer_keeps_working(settings, tmp_path):
    broken = settings.model_copy(update={"corpus_dir": tmp_path / "missing"})
    r = Reindexer(broken, embedder=FakeEmbedder())
    r.request("broken")
    assert r.wait(30)
    status = r.status()
    assert status.last_error and "Re-indexing failed" in status.notices[-1][1]
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "a.md").write_text("# a\n\ntext", encoding="utf-8")
    r.request("fixed")
    assert r.wait(30)
    assert r.status().last_error is None
    r.close()


# --- cancelling a rebuild ----------------------------------------------------------------------------
def _many_notes(n: int) -> dict[str, str]:
    """``n`` notes of three sections each: about ``3 n`` passages to embed."""
    topics = ["gradient clipping", "learning rate warmup", "weight decay", "label smoothing", "mixed precision"]
    notes = {}
    for i in range(n):
        topic = topics[i % len(topics)]
        notes[f"bulk/{i // 20:02d}/note-{i:03d}.md"] = "\n\n".join(
            f"# {topic} {i}\n\n## Part {j}\n\nNote {i}, part {j}: {topic} in training run {i * 7 + j} keeps the loss "
            f"stable when the batch size grows; this paragraph records the settings of experiment {i}-{j}."
            for j in range(3))
    return notes


def test_cancelling_a_rebuild_leaves_the_previous_version_answering_and_nothing_half_built(tmp_path, embedder):
    from rag.search.retrieval import Retriever
    from tests.conftest import indexed_notes, write_notes

    settings = indexed_notes(tmp_path, {"bm25.md": "# BM25\n\nBM25 ranks passages by term frequency and inverse "
                                                   "document frequency.\n"}, embedder)
    store = IndexStore(settings.index_dir)
    old_version = store.current_version()
    versions_before = sorted(p.name for p in (Path(settings.index_dir) / "versions").iterdir())
    write_notes(settings.corpus_dir, _many_notes(100))  # 300 passages: minutes of embedding on 2 cores

    r = Reindexer(settings, embedder=embedder)
    assert r.cancel() is False  # nothing runs yet
    r.request("many notes")
    deadline = time.time() + 120
    while not (r.status().stage == "embedding passages" and r.status().done > 0) and time.time() < deadline:
        time.sleep(0.05)
    assert r.status().stage == "embedding passages" and 0 < r.status().done < r.status().total
    r.request("queued behind it")  # a queued run is dropped by the cancel too
    assert r.cancel("the user pressed Cancel") is True
    assert r.wait(60), "the cancelled build did not stop at its next batch"

    status = r.status()
    assert not status.running and not status.pending
    assert status.notices[-1][1] == "Re-indexing cancelled (many notes): the previous index still answers."
    assert status.last_error is None
    assert store.current_version() == old_version
    assert sorted(p.name for p in (Path(settings.index_dir) / "versions").iterdir()) == versions_before
    assert not list(Path(settings.index_dir).glob("CURRENT.*.tmp"))
    hit = Retriever(settings, embedder).retrieve("What does BM25 rank passages by?").hits[0]
    assert hit.source == "bm25.md"
    # The next rebuild is not cancelled: the flag went with the cancelled run.
    r.settings = settings.model_copy(update={"corpus_dir": tmp_path / "small"})
    write_notes(tmp_path / "small", {"bm25.md": "# BM25\n\nBM25 ranks passages by term frequency.\n",
                                     "adam.md": "# Adam\n\nAdam keeps running averages of gradients.\n"})
    r.request("after the cancel")
    assert r.wait(120)
    assert "Index updated (after the cancel)" in r.status().notices[-1][1]
    assert store.current_version() != old_version
    r.close()


def test_cancelling_a_rebuild_that_waits_for_another_builds_lock_stops_the_wait(settings):
    store = IndexStore(settings.index_dir)
    r = Reindexer(settings, embedder=FakeEmbedder())
    r.retry_first_s = r.retry_max_s = 30.0  # without the cancel, the wait would outlast the test's deadline
    with store.lock():  # another `rag index` holds the index
        r.request("waiting")
        deadline = time.time() + 10
        while r.status().stage != "waiting for another build to finish" and time.time() < deadline:
            time.sleep(0.02)
        assert r.status().stage == "waiting for another build to finish"
        started = time.monotonic()
        assert r.cancel() is True
        assert r.wait(5), "the cancel did not end the wait for the lock"
        assert time.monotonic() - started < 5
    assert r.status().notices[-1][1] == "Re-indexing cancelled (waiting): the previous index still answers."
    assert store.current_version() is None
    # The wake-up was for that run only: the next one builds.
    r.request("again")
    assert r.wait(60) and "Index updated (again)" in r.status().notices[-1][1]
    r.close()
