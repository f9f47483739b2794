"""PDF notes: the text of each page, as lines, with the page of every line.

Library: pypdfium2 (Google's PDFium; Apache-2.0/BSD-3, binary wheels for Linux, macOS and
Windows). Measured with bench/loaders.py on six real notes (four Chinese, two English)
printed by Chromium, 38 pages: pypdf, pdfminer.six, pdfplumber, pypdfium2 and pymupdf all
recover 0.999 of the text's character bigrams, 0.98-0.99 of the lines whole and in order,
so speed and licence decide: pypdfium2 66 ms a document, pymupdf 194 ms (and AGPL, which
a self-hosted app cannot ship), pypdf 601 ms, pdfminer.six 731 ms, pdfplumber 1190 ms.
PDFium also gives each character's box and font size, which the rules below need. None
of the five drops the print header and footer (38-114 junk lines); this loader drops all.

What the Document holds:
- Pages in order; each page's visual lines top to bottom (PDFium's drawing order where a page has
  lines side by side: columns, table cells), with lines that only wrap a paragraph joined
  back (a Chinese word cut by a line end is no longer two words for the keyword index),
  a blank line at a paragraph gap, and a blank line ending each page.
- Indentation rebuilt from each line's left edge (PDFs store positions, not spaces), so
  code keeps its shape for the chunker.
- Running headers and footers (the same line, digits aside, among the first or last lines
  of most pages: a title, a date, a URL, "3/12") are dropped.
- Short lines set larger than the body text are Markdown headings ("#" for the largest
  size, "##" for the next...), so the chunker nests sections as for Markdown notes.
- ``pages[i]`` is the 1-based page of ``lines[i]``; page-relative line numbers come from
  ``rag.reading.loaders.base.page_span``.
- Scraped-page clutter is blanked by ``rag.reading.ingest.clean_lines``, like any note (that is
  the 0.996 bigram recall against the raw extractors' 0.999: a sample note's tip jar).

Checked end to end: the five sample notes printed from their own text come back with
0.957 of their lines whole (PDFium's visual lines: 0.568), and `rag eval` on those PDFs
gives the text notes' recall@5 (0.960) and recall@3000ch (0.980); bench/README.md.

Known limits: scanned PDFs (no text layer) are refused; multi-column layouts come out in
PDFium's order; rebuilt indentation is proportional, not the original count of spaces; a
line that ends a sentence exactly at the margin stays apart from the next (no word is cut).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from rag.reading import ingest
from rag.reading.ingest import Document, IngestError
from rag.core.text import CJK_OR_PUNCT_CHAR, HAN_CHAR
from rag.reading.loaders.base import Loader, MissingDependency

PDF_MAGIC = b"%PDF-"
# A header or footer line is one of the first or last few lines of a page...
RUNNING_LINE_WINDOW = 3
# ...and (digits aside) the same on at least this share of the pages (and on two at least).
RUNNING_LINE_SHARE = 0.6
# The first word of a line: a Latin/number run with its punctuation, or one character with
# the closing punctuation that may not start a line (so "能。" wraps as one).
_FIRST_WORD = re.compile(r"[A-Za-z0-9_\-.,:;!?'\"()/<>@#%&+=*\[\]{}|~`$^]+|.[。，、；：？！”’）》」』】,.;:?!)]*")
# Baseline distance, in median line pitches: up to LINE_GAP a line continues the one above;
# over PARAGRAPH_GAP a paragraph (or heading) gap lies between them (Chromium's <p> margin
# of 1em gives 1.8-2.2 pitches, a wrapped line exactly 1).
LINE_GAP = 1.3
# A baseline distance counts as common at this share of the most common one's count.
COMMON_PITCH_SHARE = 0.2
PARAGRAPH_GAP = 1.5
# A heading is a line of at most HEADING_MAX_CHARS set at least HEADING_SIZE_RATIO times the
# body text's size (Chromium's h3 is 1.17x, h2 1.5x, h1 2x the body).
HEADING_SIZE_RATIO = 1.1
# Rebuilt indentation stops here: deeper is layout (centred text), not structure.
MAX_INDENT = 16
HEADING_MAX_CHARS = 80
# Two lines whose baselines are closer than this share of the font size sit on one line of the page.
SAME_LINE = 0.5
_ENDS_UNIT = re.compile(r"[。！？!?；;：:)）\]】}{]\s*$")
_LIST_ITEM = re.compile(r"^\s*([-•*·]|\d{1,3}[.)、]|[a-zA-Z][.)])\s")
_DIGITS = re.compile(r"\d+")
# A browser's print footer (the page's address and "page/pages") and header date ("12/5/26, 11:07 AM",
# "2026/12/5 11:07").
_PRINTED_URL = re.compile(r"^(?:https?|file)://\S+\s+\d{1,4}\s*/\s*\d{1,4}$")
_PRINTED_AT = re.compile(r"^\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4},?\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp]\.?[Mm]\.?)?$")


def _raw():
    import pypdfium2.raw

    return pypdfium2.raw


def _pdfium():
    try:
        import pypdfium2
    except ImportError:
        raise MissingDependency("PDF notes", "pypdfium2") from None
    return pypdfium2


class PdfLoader(Loader):
    name = "pdf"
    suffixes = (".pdf",)

    def load_bytes(self, data: bytes, source: str) -> Document:
        if not data.lstrip()[:5] == PDF_MAGIC:
            raise IngestError("not a PDF (it does not start with %PDF)")
        pages_lines = self.page_lines(data)
        lines: list[str] = []
        pages: list[int] = []
        for number, page in enumerate(pages_lines, 1):
            body = list(page)
            while body and not body[-1].strip():
                body.pop()
            body.append("")  # a page ends a paragraph
            lines.extend(body)
            pages.extend([number] * len(body))
        cleaned = ingest.clean_lines(lines)
        return Document(source, tuple(cleaned), ingest.file_hash(data), "pdf", pages=tuple(pages))

    def page_lines(self, data: bytes) -> list[list[str]]:
        """Each page's lines in reading order, wrapped lines joined."""
        pdfium = _pdfium()
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise IngestError(f"not a readable PDF ({exc})") from None
        try:
            if len(pdf) == 0:
                raise IngestError("the PDF has no pages")
            out, widths = [], []
            for i in range(len(pdf)):
                page = pdf[i]
                textpage = page.get_textpage()
                try:
                    out.append(_reading_order(_visual_lines(textpage)))
                    widths.append(page.get_width())
                finally:
                    textpage.close()
                    page.close()
            pages = _drop_running_lines(out)
            # Pages share their margins: the left edge is where most lines of the document
            # start (a page whose every line is indented, a long list, keeps its indentation).
            lefts = Counter(round(ln.left) for page in pages for ln in page if ln.left is not None and ln.width > 0)
            left = float(max(lefts, key=lambda x: (lefts[x], -x))) if lefts else 0.0
            # Indentation is counted in the document's typical Latin character width.
            latin = sorted(ln.width for page in pages for ln in page if ln.width > 0 and ln.text.strip().isascii())
            unit = latin[len(latin) // 2] if latin else 0.0
            return _mark_headings([_drop_print_chrome(_layout(page, left, unit, width - left))
                                   for page, width in zip(pages, widths)])
        finally:
            pdf.close()

    def check(self, data: bytes) -> None:
        if not data.lstrip()[:5] == PDF_MAGIC:
            raise IngestError("not a PDF (it does not start with %PDF)")
        doc = self.load_bytes(data, "upload")
        if not any(line.strip() for line in doc.lines):
            raise IngestError("the PDF has no text layer (a scan?); only PDFs with text can be notes")


@dataclass
class _Line:
    """One visual line of a page and where it sits (PDF points, y grows upwards)."""

    text: str
    right: float = 0.0  # right edge of its last character
    width: float = 0.0  # mean character width
    base: float | None = None  # bottom of its first character
    size: float = 0.0  # font size of its first character
    left: float | None = None  # left edge of its first character


def _visual_lines(textpage) -> list[_Line]:
    count = textpage.count_chars()
    if count <= 0:
        return []
    text = textpage.get_text_range(0, count)
    boxes = len(text) == count  # PDFium writes "\r\n" between lines; each character keeps its index
    out: list[_Line] = []
    start = 0
    for m in re.finditer(r"\r\n|\n|\r|$", text):
        raw = text[start : m.start()]
        line = _Line(raw.replace("\x00", "").rstrip())
        if line.text.strip() and boxes:
            first = start + len(raw) - len(raw.lstrip())
            last = start + len(raw.rstrip()) - 1
            # Loose boxes span the font's ascent to descent: the same bottom for "g" and "a".
            left, line.base, _, _ = textpage.get_charbox(first, loose=True)
            _, _, line.right, _ = textpage.get_charbox(last)
            line.size = round(2 * _raw().FPDFText_GetFontSize(textpage.raw, first)) / 2
            line.width = max(line.right - left, 0.0) / max(len(raw.strip()), 1)
            line.left = left
        out.append(line)
        start = m.end()
        if m.end() >= len(text):
            break
    return out


def _reading_order(lines: list[_Line]) -> list[_Line]:
    """A page's lines top to bottom, where PDFium gives them otherwise on a page of one column.

    PDFium follows the order the page was drawn in: a browser that draws headings last (Node.js's API
    pages printed by Chromium) gives each page's text first and its headings after it, so passages were
    named by the wrong heading. Sorted by baseline, the headings head their sections again. A page with
    two lines side by side (columns, table cells, a raised footnote mark: lines overlapping in height,
    apart in width) keeps PDFium's order, as does a page already in order; the text-less lines between
    paragraphs go, since ``_layout`` finds paragraph gaps from the baselines."""
    placed = [ln for ln in lines if ln.text.strip() and ln.base is not None and ln.left is not None]
    if len(placed) != sum(1 for ln in lines if ln.text.strip()):
        return lines  # a line without its position: nothing to sort by
    tops = [ln.base for ln in placed]
    if all(a >= b - SAME_LINE * max(ln.size, 1.0) for a, b, ln in zip(tops, tops[1:], placed[1:])):
        return lines
    by_height = sorted(placed, key=lambda ln: -ln.base)
    for a, b in zip(by_height, by_height[1:]):
        if a.base - b.base < SAME_LINE * max(min(a.size, b.size), 1.0) and (a.right < b.left or b.right < a.left):
            return lines  # side by side
    return by_height


def _right_margin(lines: list[_Line], box_right: float) -> float | None:
    """The right edge of the text block: the rightmost character once headers and footers are
    gone, but no further than the left margin mirrored (a URL or code line that overflows
    the text block would otherwise move the edge and stop every other line from joining)."""
    rights = [ln.right for ln in lines if ln.width > 0]
    return min(max(rights), box_right) if rights else None


def _first_word(text: str) -> str:
    m = _FIRST_WORD.match(text.strip())
    return m.group(0) if m else ""


def _layout(lines: list[_Line], page_left: float, unit: float, box_right: float) -> list[tuple[str, float]]:
    """A page's text lines with their font size: wrapped lines joined, a blank line where a
    paragraph gap is."""
    margin = _right_margin(lines, box_right)
    bases = [ln.base for ln in lines if ln.base is not None]
    # The pitch of wrapped lines: the smallest baseline distance (rounded to half points)
    # that is common, not the most common one: on a page of one-line paragraphs the most
    # common distance is the paragraph gap.
    pitches = Counter(round(2 * (a - b)) / 2 for a, b in zip(bases, bases[1:]) if a - b > 0)
    common = [p for p, n in pitches.items() if n >= max(2, COMMON_PITCH_SHARE * max(pitches.values()))]
    pitch = min(common) if common else (min(pitches) if pitches else None)
    sizes = Counter({ln.size: 0 for ln in lines if ln.size})
    for ln in lines:
        if ln.size:
            sizes[ln.size] += len(ln.text)
    body = max(sizes, key=lambda size: sizes[size]) if sizes else 0.0
    # Indentation (code, nested lists) is position, not text, in a PDF: rebuilt in spaces of
    # the document's Latin character width from the distance to the pages' left edge.
    out: list[tuple[str, float]] = []
    prev: _Line | None = None
    for line in lines:
        if not line.text.strip():
            out.append(("", 0.0))
            prev = None
            continue
        gap = (prev.base - line.base) if prev and prev.base is not None and line.base is not None else None
        # Lines of a larger font (a wrapped heading) sit further apart in proportion.
        scale = max(1.0, prev.size / body) if prev is not None and prev.size and body else 1.0
        near = gap is not None and pitch is not None and 0 < gap <= LINE_GAP * pitch * scale
        if prev is not None and near and margin is not None and _wrapped(prev, line, margin):
            out[-1] = (_join(out[-1][0], line.text.strip()), out[-1][1])
        else:
            if gap is not None and pitch is not None and (gap > PARAGRAPH_GAP * pitch or gap < 0) and out and out[-1][0]:
                out.append(("", 0.0))
            indent = round((line.left - page_left) / unit) if line.left is not None and unit > 0 else 0
            out.append((" " * min(max(indent, 0), MAX_INDENT) + line.text.strip(), line.size))
        prev = line
    return out


def _wrapped(prev: _Line, line: _Line, margin: float) -> bool:
    """Did ``line`` start on a new line only because its first word did not fit after ``prev``?

    Chromium and most writers wrap ragged-right (measured: wrapped lines end anywhere within
    40 points of the margin), so "ends near the margin" does not work; "the next word would
    not have fitted" does.
    """
    word = _first_word(line.text)
    if not word or _ENDS_UNIT.search(prev.text) or _LIST_ITEM.match(line.text):
        # A line that ends a sentence, a clause or a code statement may just happen to reach
        # the margin; the next one is then its own line (a list item always is). Leaving
        # such a pair apart cuts no word, so when unsure the lines stay as they are.
        return False
    if HAN_CHAR.match(word[0]):
        # A Chinese character is about one em wide; the line's mean width is less when
        # it mixes in Latin letters, so it would under-count.
        needed = (line.size or line.width) + (len(word) - 1) * line.width
    else:
        needed = (len(word) + 1) * line.width  # the word and the space before it
    return prev.width > 0 and prev.right + needed > margin


def _join(left: str, right: str) -> str:
    """Two pieces of one wrapped paragraph: no space between Chinese characters, one between words."""
    if left and right and (CJK_OR_PUNCT_CHAR.match(left[-1]) or CJK_OR_PUNCT_CHAR.match(right[0])
                           or left.endswith("-")):
        return left + right
    return f"{left} {right}"


def _edges(texts: list[str]) -> set[int]:
    """Indexes of a page's first and last ``RUNNING_LINE_WINDOW`` lines with text: where headers and footers sit."""
    filled = [i for i, text in enumerate(texts) if text.strip()]
    return set(filled[:RUNNING_LINE_WINDOW] + filled[-RUNNING_LINE_WINDOW:])


def _drop_print_chrome(page: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """A laid-out page without what a browser prints around a page it saves as PDF, where running-line
    removal cannot see it (a one-page PDF): the footer "URL 1/1" and, on a page that has that footer,
    the header's date and time ("12/5/26, 11:07 AM"). A date line on a page without such a footer is
    the note's own text (a journal entry's timestamp) and stays. Dropped after layout: the footer
    reaches the text block's right edge, which tells wrapped lines on a page of short ones."""
    edges = _edges([text for text, _ in page])
    footer = {i for i in edges if _PRINTED_URL.match(page[i][0].strip())}
    stamp = {i for i in edges if _PRINTED_AT.match(page[i][0].strip())} if footer else set()
    return [("", 0.0) if i in footer | stamp else line for i, line in enumerate(page)]


def _drop_running_lines(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Pages without the headers and footers that repeat (digits aside) on most of them."""
    if len(pages) < 2:
        return pages
    need = max(2, math.ceil(RUNNING_LINE_SHARE * len(pages)))

    def edges(page: list[_Line]) -> set[int]:
        return _edges([ln.text for ln in page])

    def key(line: _Line) -> str:
        return _DIGITS.sub("#", line.text.strip())

    seen: dict[str, int] = {}
    for page in pages:
        for k in {key(page[i]) for i in edges(page)}:
            seen[k] = seen.get(k, 0) + 1
    running = {k for k, n in seen.items() if n >= need}
    if not running:
        return pages
    out = []
    for page in pages:
        drop, removed = set(), set()
        for i in sorted(edges(page)):
            k = key(page[i])
            if k in running and k not in removed:  # once a page: a heading may repeat the title
                drop.add(i)
                removed.add(k)
        out.append([ln for i, ln in enumerate(page) if i not in drop])
    # Short pages that look alike ("第3页 章节 3") are all edge lines: when removing the repeated
    # lines would leave most pages that had text without any, those lines are the text.
    emptied = sum(1 for page, kept in zip(pages, out) if _has_text(page) and not _has_text(kept))
    if emptied * 2 > sum(1 for page in pages if _has_text(page)):
        return pages
    return out


def _has_text(page: list[_Line]) -> bool:
    return any(ln.text.strip() for ln in page)


def _mark_headings(pages: list[list[tuple[str, float]]]) -> list[list[str]]:
    """Lines as text, short lines set larger than the body text written as Markdown headings.

    The body size is the size most characters have; each larger size that short lines use
    is a heading level, the largest "#", the next "##", and so on (at most six). The chunker
    then nests sections as it does for Markdown notes. A PDF without size differences
    (or without font information) gets no headings; the chunker still finds numbered ones.
    """
    weight: Counter = Counter()
    for page in pages:
        for text, size in page:
            if size > 0:
                weight[size] += len(text)
    if not weight:
        return [[text for text, _ in page] for page in pages]
    body = max(weight, key=lambda size: (weight[size], -size))
    sizes = sorted({size for page in pages for text, size in page
                    if size >= HEADING_SIZE_RATIO * body and 0 < len(text.strip()) <= HEADING_MAX_CHARS},
                   reverse=True)[:6]
    level = {size: i + 1 for i, size in enumerate(sizes)}
    out = []
    for page in pages:
        out.append([
            f"{'#' * level[size]} {text.strip()}"
            if size in level and 0 < len(text.strip()) <= HEADING_MAX_CHARS and not text.lstrip().startswith("#")
            else text
            for text, size in page
        ])
    return out
