"""Notes a hostile or clumsy user leaves in the folder: a file name that is not UTF-8, an HTML
page with a bad byte or nested too deep, PDF pages that all look alike, a huge one-line note.
Each is that note's problem: it is read as well as it can be, or skipped with a reason, and
every other note is indexed. All real files, real builds and real `rag` subprocesses."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from rag.indexing import build_index
from rag.ingest import shown_name
from rag.store import IndexStore
from tests.conftest import clean_env, make_settings, rag_cli, write_notes
from ui.watcher import CorpusWatcher

GBK_NAME = "笔记".encode("gbk") + b".md"  # what unzip writes for a zip made on Chinese Windows
OK_NOTE = {"ok.md": "# SimCSE\n\nSimCSE uses dropout noise as data augmentation for contrastive embeddings.\n"}


def gbk_named_note(corpus: Path) -> Path:
    path = corpus / os.fsdecode(GBK_NAME)
    path.write_text("# 笔记\n\nGBKNAMEMARKER 文件名是 GBK 编码的笔记。\n", encoding="utf-8")
    return path


# --- file names -------------------------------------------------------------------------------
def test_a_note_whose_file_name_is_not_utf8_is_skipped_by_its_escaped_name_and_the_rest_is_indexed(tmp_path):
    corpus = write_notes(tmp_path / "notes", OK_NOTE)
    gbk_named_note(corpus)
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr
    skipped = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped ")]
    assert skipped == ["skipped \\xb1ʼ\\xc7.md: the file name is not UTF-8 text; rename the file, "
                       "e.g. to “笔记.md” (the name read as GBK)"]
    manifest = IndexStore(tmp_path / "index").read_manifest()
    assert list(manifest.files) == ["ok.md"]
    assert manifest.skipped == {"\\xb1ʼ\\xc7.md": skipped[0].split(": ", 1)[1]}


def test_the_watcher_reports_a_name_that_is_not_utf8_escaped_and_keeps_watching(tmp_path, embedder):
    corpus = write_notes(tmp_path / "notes", OK_NOTE)
    seen: list[list[str]] = []
    fired = threading.Event()

    def on_change(names: list[str]) -> None:
        seen.append(names)
        build_index(make_settings(corpus, tmp_path / "index"), embedder)  # what `rag serve` does next
        fired.set()

    watcher = CorpusWatcher(corpus, (".md",), on_change, debounce_s=0.2).start()
    try:
        gbk_named_note(corpus)
        assert fired.wait(20), "the watcher never reported the new note"
        fired.clear()
        (corpus / "later.md").write_text("# later\n\nLATERMARKER a note saved after the bad one.\n", encoding="utf-8")
        assert fired.wait(20), "the watcher stopped after the note with a non-UTF-8 name"
    finally:
        watcher.stop()
    names = [n for batch in seen for n in batch]
    assert shown_name(os.fsdecode(GBK_NAME)) in names and "later.md" in names
    assert all(n.encode("utf-8") for n in names)  # printable, storable, sendable to the page
    assert "later.md" in IndexStore(tmp_path / "index").read_manifest().files
