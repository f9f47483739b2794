"""Notes a hostile or clumsy user leaves in the folder: a file name that is not UTF-8, an HTML
page with a bad byte or nested too deep, PDF pages that all look alike, a huge one-line note.
Each is that note's problem: it is read as well as it can be, or skipped with a reason, and
every other note is indexed. All real files, real builds and real `rag` subprocesses."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from rag.index.builder import build_index
from rag.reading.ingest import shown_name
from rag.index.store import IndexStore
from tests.conftest import clean_env, make_settings, rag_cli, simple_pdf, write_notes
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


# --- decoding and parsing -------------------------------------------------------------------------
def test_a_pdf_of_short_pages_that_look_alike_keeps_its_lines(tmp_path):
    from rag.reading.loaders.pdf import PdfLoader

    pages = [[f"Page {n}", f"Chapter {n}"] for n in range(1, 9)]  # 第N页 章节 N, in a font every PDF has
    doc = PdfLoader().load_bytes(simple_pdf(pages), "lookalike.pdf")
    text = " ".join(doc.lines)
    assert all(line in text for page in pages for line in page), doc.lines


def test_a_pdf_still_loses_a_running_header_that_repeats_above_real_text():
    from rag.reading.loaders.pdf import PdfLoader

    topics = ["attention heads", "layer norms", "optimiser state", "data loading"]
    pages = [["Course notes 2024", f"This lecture covers {topic}.", f"{n}/4"] for n, topic in enumerate(topics, 1)]
    doc = PdfLoader().load_bytes(simple_pdf(pages), "course.pdf")
    assert [ln for ln in doc.lines if ln.strip()] == [page[1] for page in pages]


def test_an_html_page_with_a_declared_charset_and_one_bad_byte_is_read_in_it_and_warned_about(tmp_path):
    page = ('<html><head><meta charset="utf-8"><title>企鹅</title></head><body><h1>绿色企鹅</h1>'
            '<p>CHARSETMARKER 绿色企鹅喜欢吃鱼，也喜欢在冰上滑行。</p></body></html>').encode("utf-8")
    corpus = write_notes(tmp_path / "notes", {**OK_NOTE, "企鹅.html": page.replace("吃".encode(), b"\xff", 1)})
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    assert res.returncode == 0, res.stderr
    assert "warning: 企鹅.html: 1 invalid byte in its utf-8 text was replaced by “\ufffd”" in res.stderr
    chunks = (IndexStore(tmp_path / "index").versions / IndexStore(tmp_path / "index").current_version()
              / "chunks.jsonl").read_text(encoding="utf-8")
    assert "绿色企鹅喜欢\ufffd鱼" in chunks  # the text as written, never mojibake


def test_html_nested_deeper_than_the_parser_goes_keeps_its_text_and_all_text_after_it(tmp_path):
    from rag.reading.loaders.html import HtmlLoader

    for depth in (300, 3000):
        page = ("<html><body><h1>Deep</h1>" + "<div>" * depth + "<p>DEEPMARKER inside.</p>" + "</div>" * depth
                + "<h2>After</h2><p>AFTERMARKER after the nesting.</p></body></html>")
        doc = HtmlLoader().load_bytes(page.encode("utf-8"), "deep.html")
        text = "\n".join(doc.lines)
        assert "DEEPMARKER inside." in text and "## After" in text and "AFTERMARKER" in text, depth
        assert doc.warnings and "read without its layout" in doc.warnings[0]


def test_a_mostly_utf8_markdown_note_with_one_bad_byte_is_not_read_as_gb18030():
    from rag.reading.loaders.text import TextLoader

    data = "# 笔记\n\n这是一篇用 UTF-8 保存的笔记，中间有一个坏字节。\n".encode("utf-8").replace("坏".encode(), b"\xe5\x9d")
    doc = TextLoader().load_bytes(data, "note.md")
    assert doc.encoding == "utf-8" and "这是一篇用 UTF-8 保存的笔记" in doc.text
    assert doc.warnings == ("2 invalid bytes in its utf-8 text were replaced by “\ufffd”",)


# --- notes too big to embed ---------------------------------------------------------------------
def test_a_note_of_more_passages_than_the_limit_is_skipped_with_the_count_and_the_rest_is_indexed(tmp_path):
    line = "自注意力让序列中的每个位置都和其他所有位置计算相关性，再按权重汇总信息。" * 200  # one line, ~7,000 chars
    corpus = write_notes(tmp_path / "notes", {**OK_NOTE, "huge.md": line + "\n"})
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                  env=clean_env(RAG_MAX_NOTE_PASSAGES="5"))
    assert res.returncode == 0, res.stderr
    skipped = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped huge.md: ")]
    assert len(skipped) == 1 and "passages, over the limit of 5 for one note" in skipped[0], res.stderr
    assert "RAG_MAX_NOTE_PASSAGES" in skipped[0]
    assert "embedding passages: 0/1" in res.stderr  # only the small note was embedded
    assert list(IndexStore(tmp_path / "index").read_manifest().files) == ["ok.md"]


def test_an_html_page_declared_gb2312_reads_its_gbk_characters_as_browsers_do():
    from rag.reading.loaders.html import HtmlLoader

    page = '<html><head><meta charset="gb2312"></head><body><p>朱镕基 GBKMARKER 说：“你好”。</p></body></html>'
    doc = HtmlLoader().load_bytes(page.encode("gbk"), "gb.html")  # 镕 is in GBK, not in GB2312
    assert "朱镕基 GBKMARKER 说：“你好”。" in doc.lines and not doc.warnings
