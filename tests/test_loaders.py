"""Note formats read by their loaders, on real files.

tests/data/formats/训练技巧.pdf was printed by Chromium from 训练技巧.html beside it
(``chromium --headless --no-sandbox --disable-gpu --print-to-pdf=训练技巧.pdf URL``, the page
served from localhost so that no local path is printed; Chromium's own header and footer
left on: date, title, URL, "1/3"): three pages, one topic a page, Chinese with an
English paragraph and a code block, in the WenQuanYi Micro Hei font. 博客-注意力.html is a blog page with
its site chrome: header, nav, breadcrumb, comments, sidebar, footer, scripts and styles.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pypdfium2
import pytest

from rag.reading.chunking import chunk_document
from rag.reading.ingest import Document, IngestError
from rag.reading.loaders import load_document
from rag.reading.loaders import (MissingDependency, loader_for, page_lines, page_span, register, registered_suffixes,
                         unregister)
from rag.reading.loaders.html import HtmlLoader
from rag.reading.loaders.pdf import PdfLoader
from rag.reading.loaders.text import TextLoader
from rag.notes import Upload, UploadError, add_notes, passage_view, read_note_lines
from rag.index.store import IndexStore
from tests.conftest import assert_chunk_spans, make_settings, rag_cli

DATA = Path(__file__).parent / "data" / "formats"
PDF = DATA / "训练技巧.pdf"
PDF_SOURCE = DATA / "训练技巧.html"
PAGE = DATA / "博客-注意力.html"
# One sentence of each printed page, as the HTML source has it.
ON_PAGE = {
    1: "为了避免 FP16 的下溢问题，训练时通常会使用损失缩放",
    2: "梯度检查点用重新计算换取显存",
    3: "ZeRO partitions optimizer states, gradients and parameters across data-parallel workers",
}
CHROME_WORDS = ["首页", "归档", "关于我", "热门文章", "评论", "收藏了", "京ICP备", "订阅本站", "dataLayer", "gtag",
                "hljs", "float: right", "tracking pixel", "某某的技术博客", "发布于"]


def _line_of(doc: Document, needle: str) -> int:
    """1-based line of the Document holding ``needle``."""
    return next(i for i, line in enumerate(doc.lines, 1) if needle in line)


# --- the registry ------------------------------------------------------------------------------
def test_the_registry_picks_the_loader_by_suffix_whatever_its_case():
    assert isinstance(loader_for("notes/a.md"), TextLoader)
    assert isinstance(loader_for("a.markdown"), TextLoader) and isinstance(loader_for("a.TXT"), TextLoader)
    assert isinstance(loader_for(Path("论文/attention.PDF")), PdfLoader)
    assert isinstance(loader_for("page.html"), HtmlLoader) and isinstance(loader_for("page.htm"), HtmlLoader)
    assert loader_for("a.pdf") is loader_for("b.pdf")  # one instance per format


def test_an_unknown_suffix_is_refused_with_the_known_ones_listed():
    with pytest.raises(IngestError) as exc:
        loader_for("slides.pptx")
    assert ".pptx" in str(exc.value) and ".pdf" in str(exc.value) and ".md" in str(exc.value)


def test_a_new_format_is_one_registered_loader(tmp_path):
    class CsvLoader(TextLoader):
        name = "csv"

    register((".csv",), CsvLoader)
    try:
        (tmp_path / "t.csv").write_text("a,b\n1,2\n", encoding="utf-8")
        assert ".csv" in registered_suffixes()
        assert load_document(tmp_path / "t.csv", "t.csv", 10_000).lines == ("a,b", "1,2", "")
    finally:
        unregister((".csv",))
    with pytest.raises(IngestError, match="no loader"):
        loader_for("t.csv")


def test_a_missing_pdf_library_fails_with_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # makes `import pypdfium2` raise ImportError
    with pytest.raises(MissingDependency) as exc:
        PdfLoader().load_bytes(PDF.read_bytes(), "训练技巧.pdf")
    assert "pip install pypdfium2" in str(exc.value)
    assert isinstance(exc.value, IngestError)  # indexing skips the file with this reason, and goes on


def test_text_notes_load_as_before_through_the_registry(tmp_path):
    note = tmp_path / "a.md"
    note.write_bytes("# 标题\r\n\r\n正文\r\n".encode("gb18030"))
    doc = load_document(note, "a.md", 10_000)
    assert doc.lines == ("# 标题", "", "正文", "") and doc.encoding == "gb18030" and doc.pages is None


def test_the_size_limit_holds_for_every_format(tmp_path):
    with pytest.raises(IngestError, match="over the"):
        load_document(PDF, "训练技巧.pdf", 1000)


# --- PDF -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pdf_doc() -> Document:
    return load_document(PDF, "训练技巧.pdf", 10_000_000)


def test_each_pdf_line_knows_its_page(pdf_doc):
    assert pdf_doc.pages is not None and len(pdf_doc.pages) == len(pdf_doc.lines)
    assert list(pdf_doc.pages) == sorted(pdf_doc.pages) and set(pdf_doc.pages) == {1, 2, 3}
    for page, sentence in ON_PAGE.items():
        assert pdf_doc.pages[_line_of(pdf_doc, sentence) - 1] == page, sentence


def test_pdf_text_is_the_pages_text_without_the_print_header_and_footer(pdf_doc):
    text = pdf_doc.text
    for page in ("1/3", "2/3", "3/3"):
        assert page not in text
    assert "file://" not in text and "训练技巧笔记" not in text  # footer URL and header title
    # Nothing of the source is lost: every paragraph of the HTML is in the PDF's text.
    import lxml.html

    source = lxml.html.parse(str(PDF_SOURCE)).getroot()
    squashed = "".join(text.split())
    for el in source.iter("p", "h1", "h2"):
        assert "".join(el.text_content().split()) in squashed, el.text_content()[:40]


def test_a_paragraph_wrapped_over_several_pdf_lines_is_one_line_again(pdf_doc):
    # The first paragraph fills three printed lines; a Chinese word cut at a line end would
    # be two words to the keyword index.
    line = pdf_doc.lines[_line_of(pdf_doc, "混合精度训练在前向") - 1]
    assert "再在更新参数之前把梯度除回去。" in line
    assert pdf_doc.lines[_line_of(pdf_doc, "ZeRO partitions") - 1].endswith("full replica of the training state.")


def test_code_in_a_pdf_keeps_its_indentation_and_stays_one_passage(pdf_doc):
    start = _line_of(pdf_doc, "def zero_stage(config):")
    assert pdf_doc.lines[start - 1 : start + 3] == (
        "def zero_stage(config):", "    if config.offload:", "        return 3", "    return 2")
    code = next(c for c in chunk_document(pdf_doc) if "def zero_stage" in c.text)
    assert "        return 3" in code.text and code.page == 3


def test_pdf_text_matches_an_independent_reading_of_each_page(pdf_doc):
    """Page by page, the Document holds exactly what PDFium reads on that page (whitespace and
    the '#' marks of headings aside)."""
    pdf = pypdfium2.PdfDocument(PDF.read_bytes())
    try:
        for number in (1, 2, 3):
            raw = "".join(pdf[number - 1].get_textpage().get_text_range().split())
            ours = "".join(re.sub(r"^#+ ", "", pdf_doc.lines[i]) for i in page_lines(pdf_doc.pages, number))
            ours = "".join(ours.split())
            assert ours and ours in raw
    finally:
        pdf.close()


def test_pdf_passages_carry_their_page_and_exact_lines_within_it(pdf_doc):
    chunks = chunk_document(pdf_doc)
    assert_chunk_spans(chunks, list(pdf_doc.lines))
    for chunk in chunks:
        assert chunk.page == pdf_doc.pages[chunk.line_start - 1]
        span = page_span(pdf_doc.pages, chunk.line_start, chunk.line_end)
        own = page_lines(pdf_doc.pages, span.page)
        # Line n of the page is the n-th line the loader made of that page.
        assert pdf_doc.lines[own.start + span.line_start - 1] == pdf_doc.lines[chunk.line_start - 1]
    by_heading: dict = {}
    for c in chunks:
        by_heading.setdefault(c.heading, c)  # the first passage of each section
    # Headings come from the font sizes: h1 sections with their h2 inside.
    assert list(by_heading) == ["混合精度训练", "混合精度训练 > 优缺点", "梯度检查点", "梯度检查点 > 代价", "ZeRO 优化器"]
    assert by_heading["梯度检查点"].page == 2 and by_heading["梯度检查点 > 代价"].page == 2
    assert by_heading["ZeRO 优化器"].page == 3
    zero = page_span(pdf_doc.pages, by_heading["ZeRO 优化器"].line_start, by_heading["ZeRO 优化器"].line_end)
    assert zero.line_start == 1  # the section starts the third page


def test_a_passage_spanning_two_pages_reports_the_first():
    pages = (1, 1, 1, 2, 2, 3)
    assert page_span(pages, 2, 5) == page_span(pages, 2, 5)
    span = page_span(pages, 3, 5)
    assert (span.page, span.line_start, span.line_end) == (1, 3, 5)
    assert page_span(pages, 4, 4).line_start == 1 and page_span(pages, 6, 6).page == 3


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_a_pdf_printed_now_by_chromium_reads_the_same(tmp_path, pdf_doc):
    out = tmp_path / "fresh.pdf"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--print-to-pdf={out}", PDF_SOURCE.as_uri()], check=True, capture_output=True, timeout=120)
    fresh = PdfLoader().load(out, "fresh.pdf")
    assert fresh.lines == pdf_doc.lines and fresh.pages == pdf_doc.pages


def test_a_text_file_named_pdf_is_not_read_as_a_pdf():
    with pytest.raises(IngestError, match="%PDF"):
        PdfLoader().load_bytes("# 其实是文本\n".encode(), "fake.pdf")
    with pytest.raises(IngestError, match="not a readable PDF"):
        PdfLoader().load_bytes(b"%PDF-1.7\n" + b"garbage " * 200, "broken.pdf")


# --- HTML ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def html_doc() -> Document:
    return load_document(PAGE, "博客-注意力.html", 10_000_000)


def test_html_keeps_the_article_and_drops_the_site_chrome(html_doc):
    text = html_doc.text
    for word in CHROME_WORDS:
        assert word not in text, word
    for kept in ("注意力机制让模型在生成每个词时", "softmax 不会进入饱和区", "Multi-head attention runs several",
                 "- 每个头关注不同的子空间", "标准注意力 | O(n²·d)"):
        assert kept in text, kept
    assert html_doc.pages is None


def test_html_headings_become_markdown_sections_the_chunker_finds(html_doc):
    assert [ln for ln in html_doc.lines if ln.startswith("#")] == [
        "# 注意力机制笔记", "## 缩放点积注意力", "## 多头注意力", "### 复杂度"]
    headings = [c.heading for c in chunk_document(html_doc)]
    assert "注意力机制笔记 > 多头注意力 > 复杂度" in headings
    code = next(c for c in chunk_document(html_doc) if "def attention" in c.text)
    assert "scores = q @ k.T" in code.text and code.heading.endswith("def attention")
    assert_chunk_spans(chunk_document(html_doc), list(html_doc.lines))


def test_an_html_page_without_landmarks_loses_its_chrome_by_class_names():
    page = ("<html><head><title>T</title></head><body><div id='top'><div class='menu'>首页 归档</div></div>"
            "<div class='post-content'><h2>正文标题</h2><p>真正的内容在这里。</p></div>"
            "<div id='comments'>评论：写得好</div><div class='sidebar'>热门文章</div>"
            "<div class='site-footer'>京ICP备</div><script>var x = 1;</script></body></html>")
    doc = HtmlLoader().load_bytes(page.encode(), "p.html")
    assert doc.lines == ("# T", "", "## 正文标题", "", "真正的内容在这里。")


def test_a_manuals_next_previous_up_bar_is_navigation_not_text():
    # The bars of a texinfo manual (libffi's, as Debian ships it): the top one's links carry rel="next",
    # the bottom one's only its [Index] link does.
    bar = ('<div class="header"><p>Next: <a href="Structures.html" accesskey="n" rel="next">Structures</a>, '
           'Previous: <a href="Primitive-Types.html" rel="prev">Primitive Types</a>, Up: <a href="Types.html" '
           'rel="up">Types</a> &nbsp; [<a href="Index.html" title="Index" rel="index">Index</a>]</p></div>')
    bottom = bar.replace(' accesskey="n" rel="next"', "").replace(' rel="prev"', "").replace(' rel="up"', "")
    page = (f"<html><head><title>Size and Alignment</title></head><body>{bar}<h4>2.3.3 Size and Alignment</h4>"
            "<p>libffi will set the size and alignment fields of an ffi_type object for you.</p>"
            f"<p>See <a href='Structures.html' rel='next'>Structures</a> for how a struct is laid out.</p>{bottom}"
            "</body></html>")
    assert HtmlLoader().load_bytes(page.encode(), "s.html").lines == (
        "# Size and Alignment", "", "#### 2.3.3 Size and Alignment", "",
        "libffi will set the size and alignment fields of an ffi_type object for you.", "",
        "See Structures for how a struct is laid out.")


def test_two_highlighted_code_blocks_in_one_pre_are_two_lines_and_inline_code_runs_on():
    # Node.js's pages: the same example as an ES module and as CommonJS, one <code> right after the other.
    page = ("<html><body><p>It can be accessed using:</p><pre><code class='language-js mjs'>import path from 'node:path';"
            "</code><code class='language-js cjs'>const path = require('node:path');</code></pre>"
            "<pre><code>define</code> <var>name</var> <code>(</code> <var>parameters</var> <code>)</code></pre></body></html>")
    assert HtmlLoader().load_bytes(page.encode(), "p.html").lines == (
        "It can be accessed using:", "", "```", "import path from 'node:path';", "const path = require('node:path');",
        "```", "", "```", "define name ( parameters )", "```")


def test_ordered_lists_keep_their_numbers_and_line_breaks_stay():
    page = ("<html><body><h2>步骤</h2><ol start='3'><li>冻结底层权重</li><li>替换顶层分类器</li></ol>"
            "<ul><li>无序项</li></ul><p>第一行<br>第二行</p></body></html>")
    assert HtmlLoader().load_bytes(page.encode(), "s.html").lines == (
        "## 步骤", "", "3. 冻结底层权重", "4. 替换顶层分类器", "", "- 无序项", "", "第一行", "第二行")


def test_a_gbk_html_page_is_decoded_like_a_note():
    page = "<html><body><h1>标题</h1><p>国标编码的网页</p></body></html>".encode("gb18030")
    assert HtmlLoader().load_bytes(page, "g.html").lines == ("# 标题", "", "国标编码的网页")


# --- uploads and the source view ---------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "corpus", tmp_path / "index", max_upload_bytes=2_000_000)


def test_upload_accepts_a_real_pdf_and_a_real_html_page(settings):
    report = add_notes(settings, [Upload(PDF.name, PDF.read_bytes()), Upload(PAGE.name, PAGE.read_bytes())])
    assert sorted(a.source for a in report.added) == sorted([PDF.name, PAGE.name])
    assert (Path(settings.corpus_dir) / PDF.name).read_bytes() == PDF.read_bytes()


@pytest.mark.parametrize("upload, words", [
    (Upload("假的.pdf", "# 其实是一篇 Markdown 笔记\n\n正文。\n".encode()), "does not start with %PDF"),
    (Upload("坏的.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 4), "not a readable PDF"),
    (Upload("图片.html", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 2), "not a readable HTML page"),
    (Upload("纯文本.html", "只是一行字，没有任何标签".encode()), "no HTML tags"),
])
def test_upload_refuses_a_file_whose_content_is_not_its_format(settings, upload, words):
    with pytest.raises(UploadError) as exc:
        add_notes(settings, [upload])
    assert words in str(exc.value)
    assert not list(Path(settings.corpus_dir).iterdir())


def test_one_fake_pdf_refuses_the_whole_batch(settings):
    with pytest.raises(UploadError) as exc:
        add_notes(settings, [Upload("good.md", b"# good"), Upload(PDF.name, PDF.read_bytes()),
                             Upload("fake.pdf", b"just text renamed")])
    assert "Nothing was added" in str(exc.value)
    assert not list(Path(settings.corpus_dir).iterdir())


def test_the_source_view_shows_a_pdf_passage_on_its_page_with_the_match(settings, pdf_doc):
    add_notes(settings, [Upload(PDF.name, PDF.read_bytes())])
    chunk = next(c for c in chunk_document(pdf_doc) if c.heading == "梯度检查点 > 代价")
    view = passage_view(settings, PDF.name, chunk.line_start, chunk.line_end, chunk.text, "梯度检查点要多花多少计算时间？",
                        heading=chunk.heading)
    assert not view.stale and view.page == 2 and view.heading.startswith("page 2")
    page_two = [pdf_doc.lines[i] for i in page_lines(pdf_doc.pages, 2)]
    shown = [text for _, text, _ in view.lines]
    assert shown == page_two[: len(shown)] and "梯度检查点" in shown[0]  # the whole page from its top
    numbers = [n for n, _, _ in view.lines]
    assert numbers == list(range(1, len(numbers) + 1))  # numbered within the page
    inside = [(n, text) for n, text, marked in view.lines if marked]
    assert inside[0][0] == view.line_start and inside[-1][0] == view.line_end
    assert any("三分之一的计算时间" in text for _, text in inside)
    assert {"计算", "时间"} <= set(view.terms)  # the question's words found in the passage


def test_the_source_view_of_an_html_note_shows_the_lines_that_were_indexed(settings, html_doc):
    add_notes(settings, [Upload(PAGE.name, PAGE.read_bytes())])
    assert read_note_lines(settings, PAGE.name) == list(html_doc.lines)
    chunk = next(c for c in chunk_document(html_doc) if "Multi-head" in c.text)
    view = passage_view(settings, PAGE.name, chunk.line_start, chunk.line_end, chunk.text, "multi-head attention")
    assert not view.stale and view.page is None
    assert any(marked and "Multi-head attention" in text for _, text, marked in view.lines)


# --- an index over mixed formats ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "解码.md").write_text("# 解码\n\n## 束搜索\n\n束搜索每一步保留得分最高的几条候选序列。\n", encoding="utf-8")
    shutil.copy(PDF, corpus / PDF.name)
    shutil.copy(PAGE, corpus / PAGE.name)
    built = rag_cli("index", "--corpus", str(corpus), "--index", str(root / "index"))
    assert built.returncode == 0, built.stderr
    return root, corpus, root / "index"


def test_rag_retrieve_json_gives_a_pdf_hit_its_page_and_leaves_other_hits_as_they_were(mixed_index):
    root, corpus, index = mixed_index
    out = rag_cli("retrieve", "梯度检查点是怎么节省显存的？", "--json", "--corpus", str(corpus), "--index", str(index))
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)["hits"] if out.stdout.lstrip().startswith("{") else json.loads(out.stdout)
    top = hits[0]
    assert top["source"] == PDF.name and top["page"] == 2, top
    assert "重新计算" in top["text"]
    base = {"rank", "score", "source", "heading", "line_start", "line_end", "text"}
    for hit in hits:
        assert base <= set(hit)
        assert ("page" in hit) == hit["source"].endswith(".pdf"), hit
    html_out = rag_cli("retrieve", "多头注意力的复杂度", "--json", "--corpus", str(corpus), "--index", str(index))
    html_hits = json.loads(html_out.stdout)
    html_hits = html_hits["hits"] if isinstance(html_hits, dict) else html_hits
    assert html_hits[0]["source"] == PAGE.name and "page" not in html_hits[0]


def test_an_index_written_before_pages_existed_still_loads(mixed_index, tmp_path):
    root, corpus, index = mixed_index
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    for path in copy.rglob("chunks.jsonl"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for row in rows:
            row.pop("page", None)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        # As written before checksums existed too (format 1): an empty COMPLETE, no checksums.
        manifest = json.loads((path.parent / "manifest.json").read_text(encoding="utf-8"))
        manifest.update(format=1, checksums={})
        (path.parent / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        (path.parent / "COMPLETE").write_bytes(b"")
    loaded = IndexStore(copy).load()
    assert loaded.chunks and all(c.page is None for c in loaded.chunks)
    fresh = IndexStore(index).load()
    assert {c.page for c in fresh.chunks if c.source == PDF.name} == {1, 2, 3}


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_a_one_page_pdf_saved_by_a_browser_loses_its_print_header_and_footer_and_nothing_else(tmp_path):
    page = tmp_path / "one page.html"
    page.write_text("<html><body><h1>KV cache</h1><p>The KV cache stores keys and values of earlier tokens.</p>"
                    "<h2>Paging</h2><p>PagedAttention splits it into blocks.</p></body></html>", encoding="utf-8")
    out = tmp_path / "one.pdf"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--print-to-pdf={out}", page.as_uri()], check=True, capture_output=True, timeout=120)
    lines = [line for line in PdfLoader().load(out, "one.pdf").lines if line.strip()]
    assert lines == ["# KV cache", "The KV cache stores keys and values of earlier tokens.", "## Paging",
                     "PagedAttention splits it into blocks."], lines


def _print(tmp_path, html: str) -> Path:
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    out = tmp_path / "page.pdf"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--print-to-pdf={out}", page.as_uri()], check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_headings_a_browser_draws_last_still_head_their_sections(tmp_path):
    # Positioned headings are painted after the text (Node.js's API pages): PDFium gave "# KV cache" and
    # "# Paging" after both paragraphs, so the passages were named by the wrong heading.
    out = _print(tmp_path, "<html><head><style>h2 { position: relative; }</style></head><body><h2>KV cache</h2>"
                           "<p>The KV cache stores keys and values of earlier tokens.</p><h2>Paging</h2>"
                           "<p>PagedAttention splits it into blocks.</p></body></html>")
    lines = [line for line in PdfLoader().load(out, "page.pdf").lines if line.strip()]
    assert lines == ["# KV cache", "The KV cache stores keys and values of earlier tokens.", "# Paging",
                     "PagedAttention splits it into blocks."], lines


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_a_page_of_two_columns_is_read_column_by_column_not_across(tmp_path):
    text = " ".join(f"Left {i}." for i in range(1, 40)) + " Right starts here. " + " ".join(f"Right {i}." for i in range(1, 40))
    out = _print(tmp_path, f"<html><body><div style='columns:2; column-gap:40px'>{text}</div></body></html>")
    read = " ".join(line.strip() for line in PdfLoader().load(out, "page.pdf").lines if line.strip())
    assert read.index("Left 39.") < read.index("Right starts here.") < read.index("Right 1.")


def test_a_date_line_stays_on_a_page_without_a_browser_footer():
    from rag.reading.loaders.pdf import _drop_print_chrome

    journal = [("2026/12/5 11:07", 12.0), ("今天试了 LoRA 的秩 8。", 12.0)]
    assert _drop_print_chrome(journal) == journal
    printed = journal + [("file:///home/me/notes/lora.html 1/1", 8.0)]
    assert [text for text, _ in _drop_print_chrome(printed)] == ["", "今天试了 LoRA 的秩 8。", ""]
