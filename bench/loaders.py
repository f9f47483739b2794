"""Which PDF and HTML libraries read notes best: text recovered, reading order, junk, speed.

Documents are made from real notes: two Chinese sample notes (corpus/, or --notes DIR),
two Chinese Markdown articles (--markdown DIR: by default the first two of chapter 01 of
the LLMForEverybody notes beside the repository) and two English ones (this repository's
README and bench/README). Each is written as an HTML page wrapped in site chrome — header, nav
menu, sidebar, comments, footer, inline script and style, once with HTML5 landmarks
(<nav>, <main>, <aside>) and once with only <div class="..."> — and printed to PDF by
Chromium (headless, its default header and footer on: title, date, file URL, page number).

Measured per extractor (mean over the documents):
  recall   share of the source's character bigrams (whitespace removed) found in the output
  lines    share of the source's lines (>= 8 characters, whitespace removed) found whole
  order    of those found, share in source order (longest increasing run of positions)
  junk     chrome markers found in the output (nav, sidebar, comments, footer, script, style;
           for PDF: Chromium's header/footer), total over all documents; 0 is right
  heads    share of source headings that come out as Markdown '#' lines
  ms       mean milliseconds per document (one core, warm)

And a round trip: each sample note's own text printed line for line (long lines wrap at
the paper's edge) and read back; the share of its non-blank lines that come back whole
(exactly, and whitespace aside), for PDFium's visual lines and for the PDF loader.

Run:  python bench/loaders.py [--notes DIR] [--chromium PATH]
Needs: chromium (Debian: apt-get install chromium fonts-wqy-microhei) and the candidate
libraries; a missing one is listed as skipped.
"""
from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Chromium's print header and footer: "11/29/26, 2:21 PM", "file:///...", a "3/12" page counter.
_PRINT_CHROME = re.compile(r"\d{1,2}/\d{1,2}/\d{2}, \d{1,2}:\d{2} [AP]M|file:///|^\s*\d+/\d+\s*$", re.M)
JUNK = ["NAVJUNK", "SIDEJUNK", "COMMENTJUNK", "FOOTJUNK", "trackVisitor", "sidebar-width", "相关推荐JUNK"]


# --- documents ---------------------------------------------------------------------------
def note_blocks(text: str, markdown: bool) -> list[tuple[str, str]]:
    """A note as (kind, text) blocks: ('h1'..'h3', 'p', 'li', 'pre')."""
    blocks: list[tuple[str, str]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        s = line.strip()
        if not s or s == "Bootstrap":
            i += 1
            continue
        if s.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append(("pre", "\n".join(lines[i + 1 : j])))
            i = j + 1
            continue
        m = re.match(r"^(#{1,6})\s+(.*)$", s) if markdown else None
        if m:
            blocks.append((f"h{min(len(m.group(1)), 3)}", m.group(2).strip()))
        elif not markdown and re.match(r"^\d{1,2}[、.]\S", s) and len(s) <= 60:
            blocks.append(("h2", s))
        elif re.match(r"^([-*•]|\d+\.)\s+", s):
            blocks.append(("li", re.sub(r"^([-*•]|\d+\.)\s+", "", s)))
        elif s.startswith("|") or s.startswith("!["):
            pass  # tables and images: left out of the test pages
        else:
            blocks.append(("p", re.sub(r"[*`]|\[([^\]]*)\]\([^)]*\)", r"\1", s)))
        i += 1
    return [(k, t) for k, t in blocks if t.strip()]


def article_html(title: str, blocks: list[tuple[str, str]]) -> str:
    out = [f"<h1>{html.escape(title)}</h1>"]
    in_list = False
    for kind, text in blocks:
        if kind == "li" and not in_list:
            out.append("<ul>")
            in_list = True
        if kind != "li" and in_list:
            out.append("</ul>")
            in_list = False
        out.append(f"<{kind}>{html.escape(text)}</{kind}>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


STYLE = "<style>body{font-family:'WenQuanYi Micro Hei',sans-serif} .sidebar-width{width:200px}</style>"
SCRIPT = "<script>function trackVisitor(){ return document.cookie; } trackVisitor();</script>"


def page_html(title: str, article: str, semantic: bool) -> str:
    nav = "<a href='/'>首页 NAVJUNK</a> <a href='/a'>归档</a> <a href='/b'>About</a> <a href='/c'>Tags</a>"
    side = "<h3>热门文章</h3><ul><li>SIDEJUNK 一篇别的文章</li><li>Another post</li></ul>"
    comments = "<h3>评论</h3><p>COMMENTJUNK 写得很好，收藏了！</p><p>相关推荐JUNK</p>"
    foot = "<p>© 2024 Some Blog · FOOTJUNK · 备案号 12345</p>"
    if semantic:
        body = (f"<header><div class='logo'>My Blog</div><nav>{nav}</nav></header>"
                f"<main><article>{article}</article><section class='comments'>{comments}</section></main>"
                f"<aside>{side}</aside><footer>{foot}</footer>")
    else:
        body = (f"<div id='top'><div class='menu'>{nav}</div></div>"
                f"<div class='wrap'><div class='post-content'>{article}</div>"
                f"<div id='comments'>{comments}</div></div>"
                f"<div class='sidebar'>{side}</div><div class='site-footer'>{foot}</div>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body>{body}{SCRIPT}</body></html>")


def print_pdf(chromium: str, html_path: Path, pdf_path: Path) -> None:
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--print-to-pdf={pdf_path}", html_path.as_uri()],
                   check=True, capture_output=True, timeout=120)


def make_documents(notes: Path, markdown: Path | None, chromium: str | None, folder: Path) -> list[dict]:
    sources = []
    zh = sorted(notes.glob("*.txt"))[:2]
    sources += [(p.stem, p.read_text(encoding="utf-8"), False, "zh") for p in zh]
    if markdown and markdown.is_dir():
        for path in sorted(markdown.rglob("*.md"))[:2]:
            sources.append((path.stem, path.read_text(encoding="utf-8"), True, "zh"))
    for path in (ROOT / "README.md", ROOT / "bench/README.md"):
        sources.append((path.parent.name + "-" + path.stem, path.read_text(encoding="utf-8"), True, "en"))
    docs = []
    for i, (title, text, markdown, lang) in enumerate(sources):
        blocks = note_blocks(text, markdown)
        article = article_html(title, blocks)
        ref_lines = [title] + [t for _, t in blocks]
        headings = [title] + [t for k, t in blocks if k.startswith("h")]
        doc = {"title": title, "lang": lang, "ref": ref_lines, "headings": headings, "html": {}}
        for semantic in (True, False):
            path = folder / f"doc{i}-{'sem' if semantic else 'div'}.html"
            path.write_text(page_html(title, article, semantic), encoding="utf-8")
            doc["html"]["landmarks" if semantic else "divs"] = path
        if chromium:
            plain = folder / f"doc{i}-print.html"
            plain.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                             f"{STYLE}</head><body>{article}</body></html>", encoding="utf-8")
            doc["pdf"] = folder / f"doc{i}.pdf"
            print_pdf(chromium, plain, doc["pdf"])
        docs.append(doc)
    return docs


# --- scoring -------------------------------------------------------------------------------
def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _bigrams(text: str) -> Counter:
    s = _squash(text)
    return Counter(s[i : i + 2] for i in range(len(s) - 1))


def _lis(seq: list[int]) -> int:
    import bisect

    tails: list[int] = []
    for x in seq:
        k = bisect.bisect_left(tails, x)
        tails[k:k + 1] = [x]
    return len(tails)


def score(ref_lines: list[str], headings: list[str], out: str) -> dict:
    ref = "\n".join(ref_lines)
    rb, ob = _bigrams(ref), _bigrams(out)
    recall = sum((rb & ob).values()) / max(sum(rb.values()), 1)
    flat = _squash(out)
    positions = []
    long_lines = [_squash(line) for line in ref_lines if len(_squash(line)) >= 8]
    for line in long_lines:
        pos = flat.find(line)
        if pos >= 0:
            positions.append(pos)
    found = len(positions) / max(len(long_lines), 1)
    order = _lis(positions) / max(len(positions), 1)
    junk = sum(out.count(marker) for marker in JUNK) + len(_PRINT_CHROME.findall(out))
    md_heads = {_squash(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", out, re.M)}
    heads = sum(_squash(h) in md_heads for h in headings) / max(len(headings), 1)
    return {"recall": recall, "lines": found, "order": order, "junk": junk, "heads": heads}


# --- candidates ------------------------------------------------------------------------------
def pdf_candidates() -> dict:
    def pypdf_(data):
        import io

        import pypdf

        return "\n".join(p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(data)).pages)

    def pdfminer_(data):
        import io

        from pdfminer.high_level import extract_text

        return extract_text(io.BytesIO(data))

    def pdfplumber_(data):
        import io

        import pdfplumber

        with pdfplumber.open(io.BytesIO(data)) as pdf:
            return "\n".join(p.extract_text() or "" for p in pdf.pages)

    def pypdfium2_(data):
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        try:
            return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
        finally:
            pdf.close()

    def pymupdf_(data):
        import pymupdf

        with pymupdf.open(stream=data, filetype="pdf") as pdf:
            return "\n".join(p.get_text() for p in pdf)

    def project(data):
        from rag.reading.loaders.pdf import PdfLoader

        return PdfLoader().load_bytes(data, "x.pdf").text

    return {"pypdf": pypdf_, "pdfminer.six": pdfminer_, "pdfplumber": pdfplumber_, "pypdfium2": pypdfium2_,
            "pymupdf (AGPL)": pymupdf_, "rag PdfLoader": project}


def html_candidates() -> dict:
    def trafilatura_(text):
        import trafilatura

        return trafilatura.extract(text, output_format="markdown", include_formatting=True,
                                   include_comments=False, favor_recall=True) or ""

    def readability_(text):
        import lxml.html
        from readability import Document

        summary = Document(text).summary(html_partial=True)
        from rag.reading.loaders.html import html_to_lines

        return "\n".join(html_to_lines(lxml.html.fromstring(summary)))

    def bs4_text(text):
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(text, "lxml")
        for tag in soup(["script", "style"]):
            tag.decompose()
        return soup.get_text("\n")

    def selectolax_(text):
        from selectolax.lexbor import LexborHTMLParser

        tree = LexborHTMLParser(text)
        for tag in tree.css("script, style, nav, header, footer, aside"):
            tag.decompose()
        node = tree.css_first("main") or tree.body
        return node.text(separator="\n")

    def inscriptis_(text):
        from inscriptis import get_text

        return get_text(text)

    def project(text):
        from rag.reading.loaders.html import HtmlLoader

        return HtmlLoader().load_bytes(text.encode("utf-8"), "x.html").text

    return {"trafilatura (md)": trafilatura_, "readability-lxml": readability_, "beautifulsoup4 (text)": bs4_text,
            "selectolax (landmarks)": selectolax_, "inscriptis": inscriptis_, "rag HtmlLoader": project}


def run(candidates: dict, items: list[tuple[dict, bytes | str]], with_heads: bool) -> list[tuple]:
    rows = []
    for name, fn in candidates.items():
        try:
            fn(items[0][1])  # warm-up: imports, caches
        except ImportError as exc:
            rows.append((name, f"skipped: {exc}"))
            continue
        scores, total = [], 0.0
        for doc, data in items:
            t0 = time.perf_counter()
            out = fn(data)
            total += time.perf_counter() - t0
            scores.append(score(doc["ref"], doc["headings"], out))
        mean = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
        junk = sum(s["junk"] for s in scores)
        rows.append((name, mean["recall"], mean["lines"], mean["order"], junk,
                     mean["heads"] if with_heads else None, 1000 * total / len(items)))
    return rows


def print_table(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"| {'extractor':24} | recall | lines | order | junk | heads |     ms |")
    print(f"|{'-' * 26}|--------|-------|-------|------|-------|--------|")
    for row in rows:
        if isinstance(row[1], str):
            print(f"| {row[0]:24} | {row[1]}")
            continue
        name, recall, lines, order, junk, heads, ms = row
        h = f"{heads:5.2f}" if heads is not None else "    –"
        print(f"| {name:24} | {recall:6.3f} | {lines:5.2f} | {order:5.2f} | {junk:4d} | {h} | {ms:6.1f} |")


def write_format_corpora(notes: Path, out: Path, chromium: str | None) -> None:
    """Every note of ``notes`` as an HTML page in site chrome (out/html) and, with Chromium, as
    that page printed (out/pdf) and as its own text printed line for line (out/pdf-text): the
    same notes in other formats, for `rag index` + `rag eval`."""
    (out / "html").mkdir(parents=True, exist_ok=True)
    (out / "pdf").mkdir(parents=True, exist_ok=True)
    for path in sorted(notes.glob("*.txt")) + sorted(notes.glob("*.md")):
        title = path.stem
        article = article_html(title, note_blocks(path.read_text(encoding="utf-8"), path.suffix == ".md"))
        (out / "html" / f"{title}.html").write_text(page_html(title, article, semantic=False), encoding="utf-8")
        if chromium:
            plain = out / f"{title}.print.html"
            plain.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                             f"{STYLE}</head><body>{article}</body></html>", encoding="utf-8")
            print_pdf(chromium, plain, out / "pdf" / f"{title}.pdf")
            # The note's own text, line for line, printed as it is (long lines wrap): what the
            # PDF loader must give back unchanged, whatever the HTML conversion above does.
            (out / "pdf-text").mkdir(exist_ok=True)
            plain.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                             f"{STYLE}</head><body><pre style=\"white-space: pre-wrap; font-family: inherit\">"
                             f"{html.escape(path.read_text(encoding='utf-8'))}</pre></body></html>", encoding="utf-8")
            print_pdf(chromium, plain, out / "pdf-text" / f"{title}.pdf")
            plain.unlink()


def text_pdf(chromium: str, path: Path, folder: Path) -> Path:
    """A note's own text printed line for line (long lines wrap at the paper's edge)."""
    title = path.stem
    page = folder / f"{title}.text.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"{STYLE}</head><body><pre style=\"white-space: pre-wrap; font-family: inherit\">"
                    f"{html.escape(path.read_text(encoding='utf-8'))}</pre></body></html>", encoding="utf-8")
    out = folder / f"{title}.text.pdf"
    print_pdf(chromium, page, out)
    return out


def round_trip(notes: Path, chromium: str, folder: Path) -> None:
    """Print each sample note's text to PDF and read it back: how many of its lines come back whole."""
    import pypdfium2

    from rag.reading.loaders import load_document

    def raw_lines(data: bytes) -> list[str]:
        pdf = pypdfium2.PdfDocument(data)
        try:
            return [ln for i in range(len(pdf)) for ln in pdf[i].get_textpage().get_text_range().splitlines()]
        finally:
            pdf.close()

    totals = {"pypdfium2 (visual lines)": [0, 0, 0], "rag PdfLoader": [0, 0, 0]}
    for path in sorted(notes.glob("*.txt")):
        source = [ln.strip() for ln in load_document(path, path.name, 1 << 30).lines if ln.strip()]
        data = text_pdf(chromium, path, folder).read_bytes()
        outputs = {"pypdfium2 (visual lines)": raw_lines(data),
                   "rag PdfLoader": list(load_document(folder / f"{path.stem}.text.pdf", "x.pdf", 1 << 30).lines)}
        for name, lines in outputs.items():
            exact, squashed = {ln.strip() for ln in lines}, {_squash(ln) for ln in lines}
            totals[name][0] += len(source)
            totals[name][1] += sum(ln in exact for ln in source)
            totals[name][2] += sum(_squash(ln) in squashed for ln in source)
    print("\nPDF round trip: the sample notes' own text printed by Chromium and read back "
          f"({totals['rag PdfLoader'][0]} non-blank lines)")
    print(f"| {'reader':24} | lines whole | whitespace aside |")
    print(f"|{'-' * 26}|-------------|------------------|")
    for name, (n, exact, squashed) in totals.items():
        print(f"| {name:24} | {exact / n:11.3f} | {squashed / n:16.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=Path, default=ROOT / "corpus")
    ap.add_argument("--markdown", type=Path, default=ROOT.parent / "shared/corpora/LLMForEverybody/01-第一章-预训练",
                    help="a folder of Chinese Markdown notes; the first two are used")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    ap.add_argument("--keep", type=Path, help="write the test documents here instead of a temp folder")
    ap.add_argument("--corpus-out", type=Path,
                    help="only write the notes of --notes as HTML and PDF under this folder (for rag eval)")
    args = ap.parse_args()
    if args.corpus_out:
        write_format_corpora(args.notes, args.corpus_out, args.chromium)
        print(f"wrote {args.corpus_out}/html and {args.corpus_out}/pdf")
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-loaders-"))
    folder.mkdir(parents=True, exist_ok=True)
    docs = make_documents(args.notes, args.markdown, args.chromium, folder)
    print(f"{len(docs)} documents ({sum(d['lang'] == 'zh' for d in docs)} Chinese, "
          f"{sum(d['lang'] == 'en' for d in docs)} English) in {folder}")
    if args.chromium:
        items = [(d, d["pdf"].read_bytes()) for d in docs]
        import pypdfium2

        pages = sum(len(pypdfium2.PdfDocument(data)) for _, data in items)
        print(f"PDFs printed by Chromium: {pages} pages, {sum(len(b) for _, b in items) // 1024} KB")
        print_table("PDF text extraction (heads: Markdown headings from font sizes)", run(pdf_candidates(), items, with_heads=True))
        round_trip(args.notes, args.chromium, folder)
    else:
        print("no chromium: PDF comparison skipped")
    for layout in ("landmarks", "divs"):
        items = [(d, d["html"][layout].read_text(encoding="utf-8")) for d in docs]
        print_table(f"HTML main-content extraction, page chrome as {layout}", run(html_candidates(), items, True))


if __name__ == "__main__":
    main()
