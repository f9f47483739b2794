"""Issue 9: a change saved while another process builds the index is not dropped.

The other build is real: another process holds the index lock (as `rag index` does), or
a real `rag index --full` runs in a subprocess. The watcher is the real watchdog observer
and the rebuild the real Reindexer with the real embedder.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.index.builder import build_index
from rag.notes import Reindexer
from rag.search.retrieval import Retriever
from rag.index.store import IndexStore
from tests.conftest import REPO_ROOT, clean_env, make_settings, write_notes
from ui.watcher import CorpusWatcher

NOTES = {f"note{i}.md": f"# 笔记 {i}\n\n第{i}篇笔记：讲的是检索增强生成中的第{i}个细节，内容足够长可以成为一段。\n"
         for i in range(4)}
NEW_NOTE = "# 新笔记\n\nLOCKRACEMARKER 这是在另一个构建运行时保存的笔记，它必须进入索引。\n"


class LockHolder:
    """Another process holding the index build lock, as a running `rag index` does."""

    def __init__(self, index_dir: Path) -> None:
        code = ("import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
                "print('held', flush=True); sys.stdin.read()")
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(Path(index_dir) / ".lock")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(tmp_path, embedder):
    corpus = write_notes(tmp_path / "notes", NOTES)
    settings = make_settings(corpus, tmp_path / "index", watch_debounce_s=0.3)
    build_index(settings, embedder)
    reindexer = Reindexer(settings, embedder=embedder)
    reindexer.retry_first_s = 0.2
    reindexer.retry_max_s = 1.0
    watcher = CorpusWatcher(corpus, settings.extensions, lambda names: reindexer.request(f"changed: {names}"),
                            settings.watch_debounce_s).start()
    yield settings, reindexer
    watcher.stop()
    reindexer.close()


def indexed_sources(settings) -> set[str]:
    return set(IndexStore(settings.index_dir).read_manifest().files)


def test_a_note_saved_while_another_process_holds_the_lock_is_indexed_once_it_is_released(served, embedder):
    settings, reindexer = served
    holder = LockHolder(settings.index_dir)
    try:
        (Path(settings.corpus_dir) / "saved-meanwhile.md").write_text(NEW_NOTE, encoding="utf-8")
        wait_for(lambda: reindexer.status().stage == "waiting for another build to finish", 30,
                 "the rebuild to find the index locked")
        time.sleep(1.5)  # several retries while the other build still runs
        status = reindexer.status()
        assert status.running and status.last_error is None
        assert any("Another build is running" in text for _, text in status.notices)
        assert "saved-meanwhile.md" not in indexed_sources(settings)
    finally:
        holder.release()
    assert reindexer.wait(60)
    assert "saved-meanwhile.md" in indexed_sources(settings)
    assert reindexer.status().last_error is None
    hit = Retriever.from_settings(settings, embedder).retrieve("LOCKRACEMARKER").hits[0]
    assert hit.source == "saved-meanwhile.md"


def test_a_note_saved_during_a_real_full_build_in_another_process_gets_in(tmp_path, embedder):
    # Enough notes that `rag index --full` (model load + embedding) takes a while.
    bulk = {f"bulk/{i:03d}.md": f"# 批量 {i}\n\n" + "这是一段用于拖慢构建的笔记内容。" * 20 + f" 编号{i}\n"
            for i in range(60)}
    corpus = write_notes(tmp_path / "notes", {**NOTES, **bulk})
    settings = make_settings(corpus, tmp_path / "index", watch_debounce_s=0.3)
    build_index(settings, embedder)
    reindexer = Reindexer(settings, embedder=embedder)
    reindexer.retry_first_s, reindexer.retry_max_s = 0.2, 1.0
    watcher = CorpusWatcher(corpus, settings.extensions, lambda names: reindexer.request(f"changed: {names}"),
                            settings.watch_debounce_s).start()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "index", "--full", "--corpus", str(corpus),
                             "--index", str(settings.index_dir)], cwd=REPO_ROOT, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # "reading notes" is printed once the other build holds the lock and has listed the folder.
        for line in proc.stderr:
            if line.startswith("reading notes"):
                break
        (corpus / "saved-meanwhile.md").write_text(NEW_NOTE, encoding="utf-8")
        rest = proc.stderr.read()
        assert proc.wait(300) == 0, rest
        assert reindexer.wait(120)
        assert "saved-meanwhile.md" in indexed_sources(settings)
        status = reindexer.status()
        assert status.last_error is None
        # The race was real: the watcher's rebuild found the other build holding the lock.
        assert any("Another build is running" in text for _, text in status.notices), status.notices
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.stop()
        reindexer.close()


def test_the_watcher_reports_a_change_again_when_its_handler_failed(tmp_path):
    corpus = write_notes(tmp_path / "notes", {"a.md": "# a\n\ntext"})
    calls: list[list[str]] = []
    done = threading.Event()

    def flaky(names: list[str]) -> None:
        calls.append(names)
        if len(calls) < 3:
            raise RuntimeError("index busy")
        done.set()

    watcher = CorpusWatcher(corpus, (".md",), flaky, debounce_s=0.1, retry_first_s=0.1, retry_max_s=0.2).start()
    try:
        (corpus / "b.md").write_text("# b\n\nnew", encoding="utf-8")
        assert done.wait(20), calls
        assert all("b.md" in names for names in calls)
    finally:
        watcher.stop()


def test_closing_the_reindexer_ends_a_wait_for_the_lock(tmp_path, embedder):
    corpus = write_notes(tmp_path / "notes", NOTES)
    settings = make_settings(corpus, tmp_path / "index")
    holder = LockHolder(settings.index_dir)
    try:
        reindexer = Reindexer(settings, embedder=embedder)
        reindexer.request("locked")
        wait_for(lambda: reindexer.status().stage == "waiting for another build to finish", 30, "the wait")
        started = time.monotonic()
        reindexer.close(timeout=10)
        assert reindexer.wait(5) and time.monotonic() - started < 5
    finally:
        holder.release()
