"""HTML notes (saved web pages, exported notes): the main content as Markdown-like lines.

Library: lxml (BSD), with the content rules below. Measured with bench/loaders.py on six
real notes (four Chinese, two English) wrapped in site chrome (header, nav menu, sidebar,
comments, footer, inline script and style), once with HTML5 landmarks and once with only
<div class=...>: trafilatura drops all chrome but also whole lines and headings (0.91 of
the lines, 0.96 of the headings) and pulls in a dozen packages; readability-lxml finds the
article in both layouts (1.00 of the lines) but returns HTML that still needs these rules
to become lines, at 13 ms a page; beautifulsoup4, inscriptis and selectolax give all the
text with the chrome (12-30 junk markers) and no headings. These rules recover as much as
readability (0.991 of the bigrams; the rest is scraped-page clutter that
``clean_lines`` removes on purpose), keep every heading as a Markdown ``#`` line, so that
the chunker finds the sections, drop all the chrome in both layouts, in 3-8 ms a page.

The rules, in order:
1. Decode like any note (``rag.reading.ingest.decode_note``), in the charset the page declares when
   it declares one (invalid bytes replaced and counted in a warning), and parse with lxml's
   HTML parser. Nesting deeper than ``MAX_DEPTH`` (or any text the parser lost) makes the
   page be parsed again without its layout containers (div, span, font, ...), and if that
   still loses text, read as plain text: no text of a page is dropped quietly.
2. Drop what is never content: script, style, noscript, template, svg, canvas, iframe,
   forms and their controls, and elements hidden with ``hidden`` / ``aria-hidden``.
3. The content root is ``<main>`` / ``[role=main]``, else the largest ``<article>``,
   else ``<body>``.
4. Inside it, drop site chrome: nav, aside, header and footer that are not the root's own
   article header, ARIA navigation/banner/contentinfo/complementary, and elements whose
   class or id names chrome (menu, sidebar, comments, breadcrumb, share, related, ...), and blocks of
   links to the neighbouring pages (rel="next"/"prev"/"up": a manual's "Next: …, Previous: …").
5. Blocks become lines: h1-h6 -> "#"*level + " " + text; li -> "- " + text ("1. " in an
   ordered list); pre -> its
   lines inside a ``` fence (two highlighted <code> blocks in one pre on lines of their own);
   table rows -> cells joined by " | "; other blocks -> their
   text with whitespace collapsed; a blank line between blocks. The page <title> becomes a
   "# " line when the content has no <h1>.
6. ``rag.reading.ingest.clean_lines`` blanks scraped-page clutter, as for text notes.
"""
from __future__ import annotations

import re

from rag.reading import ingest
from rag.reading.ingest import Document, IngestError
from rag.reading.loaders.base import Loader, MissingDependency

NEVER_CONTENT = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed",
                 "form", "button", "select", "input", "textarea", "link", "meta")
CHROME_TAGS = ("nav", "aside", "header", "footer", "menu", "dialog")
CHROME_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "dialog")
# Class or id words of site chrome, matched as whole words of the attribute.
CHROME_NAMES = re.compile(
    r"(?:^|[\s_-])(nav|navbar|menu|sidebar|side-bar|breadcrumbs?|comments?|comment-list|footer|site-footer|"
    r"site-header|masthead|share|sharing|social|related|recommend|advert|ads?|banner|cookie|popup|modal|"
    r"toolbar|pagination|pager|subscribe|newsletter|widget|top-?bar|meta|post-meta|entry-meta|byline)(?:$|[\s_-])",
    re.IGNORECASE,
)
# A block of links, one of them to a page beside this one (rel="next", "prev", "up": texinfo manuals'
# "Next: …, Previous: …, Up: … [Index]", a blog's older/newer pager), is navigation, whatever its class
# says, when its words outside the links are a few labels: fewer than the links' own, and at most
# ``NAV_LABEL_CHARS`` (texinfo's are 25). A sentence pointing at the next page ("See <a rel=next>…") is text.
# A table of contents linking to the index (rel="index") goes too: its entries are the page's headings,
# which stay where they head their sections.
NAV_RELS = frozenset("next prev previous up index contents toc start first last".split())
NAV_LABEL_CHARS = 60
NAV_BLOCKS = ("p", "div", "ul", "ol", "table", "td", "dl")
BLOCK_TAGS = {"p", "div", "section", "article", "main", "blockquote", "figure", "figcaption", "dl", "dt", "dd",
              "ul", "ol", "li", "table", "thead", "tbody", "tfoot", "tr", "pre", "hr", "address", "details",
              "summary", "h1", "h2", "h3", "h4", "h5", "h6", "body", "center"}
_WS = re.compile(r"\s+")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
# <meta charset="gbk"> or <meta http-equiv="Content-Type" content="text/html; charset=gbk">
_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_\-:.]+)", re.IGNORECASE)
# Deeper than this the tree is walked recursively no more: libxml2 itself stops at 256 levels
# without huge_tree and at 2048 with it (measured: 3000 nested <div> lose their text and all
# text after them), and html_to_lines recurses once per level (Python's limit is 1000).
MAX_DEPTH = 200
# Layout containers: a page nested deeper than MAX_DEPTH is parsed again without them.
_CONTAINER = re.compile(r"</?(div|span|font|section|center|b|i|u|em|strong|small|big|a|blockquote|sup|sub)"
                        r"(\s[^>]*)?/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_HIDDEN_TEXT = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_BLOCK_BOUNDARY = re.compile(r"<(/?(p|div|li|tr|h[1-6]|pre|table|section|article|blockquote)|br)\b[^>]*>",
                             re.IGNORECASE)
# The parse lost text when it kept less than this share of the page's visible characters.
KEPT_SHARE = 0.95


def _lxml():
    try:
        import lxml.html
    except ImportError:
        raise MissingDependency("HTML notes", "lxml") from None
    return lxml.html


class HtmlLoader(Loader):
    name = "html"
    suffixes = (".html", ".htm")

    def load_bytes(self, data: bytes, source: str) -> Document:
        decoded = ingest.decode_note(data, declared_charset(data))
        notes: list[str] = []
        lines = html_text_lines(decoded.text, notes)
        return Document(source, tuple(ingest.clean_lines(lines)), ingest.file_hash(data), decoded.encoding,
                        warnings=decoded.warnings + tuple(notes), marked_headings=AS_PLAIN_TEXT not in notes)

    def check(self, data: bytes) -> None:
        text = ingest.decode_note(data, declared_charset(data)).text  # IngestError when it is not text
        if not re.search(r"<\s*(html|body|head|p|div|h[1-6]|article|main|title)\b", text[:200_000], re.IGNORECASE):
            raise IngestError("not an HTML page (no HTML tags found)")
        if not any(line.strip() for line in html_text_lines(text)):
            raise IngestError("the page has no text")


# Declared names browsers read as a superset (the WHATWG encoding standard): pages declared
# gb2312 hold GBK characters, pages declared latin-1 hold Windows quotes.
_AS_BROWSERS_READ = {"gb2312": "gb18030", "gbk": "gb18030", "iso8859-1": "cp1252",
                     "ascii": "cp1252"}


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in a <meta> tag near its start, if Python knows it."""
    import codecs

    m = _CHARSET.search(data[:4096])
    if m is None:
        return None
    name = m.group(1).decode("ascii", "replace")
    try:
        name = codecs.lookup(name).name
    except LookupError:
        return None
    return _AS_BROWSERS_READ.get(name, name)


def _visible_chars(text: str) -> int:
    """Characters of text (not space) in a page, by stripping its tags: what a parse must keep."""
    import html

    return len(_WS.sub("", html.unescape(_TAG.sub(" ", _HIDDEN_TEXT.sub(" ", text)))))


def _visible_text(el) -> int:
    """Characters of text (not space) in a parsed element."""
    return len(_WS.sub("", el.text_content()))


def _depth(doc) -> int:
    from lxml import etree

    depth = deepest = 0
    for event, _ in etree.iterwalk(doc, events=("start", "end")):
        depth += 1 if event == "start" else -1
        deepest = max(deepest, depth)
    return deepest


# What a page read as plain text says in its notes: its headings are no longer marked.
AS_PLAIN_TEXT = f"nested {MAX_DEPTH}+ levels deep: read as plain text"


def _parse(text: str, notes: list[str]):
    """The page's tree, whole: parsed again without layout containers when it is nested deeper
    than MAX_DEPTH or the parser lost text; None when even that loses text (read it as plain text)."""
    lxml_html = _lxml()
    parser = lxml_html.HTMLParser(huge_tree=True)
    visible = _visible_chars(text)
    for attempt in (text, _CONTAINER.sub(" ", text)):
        try:
            doc = lxml_html.document_fromstring(attempt, parser=parser)
        except Exception as exc:  # noqa: BLE001 - lxml raises several types for unparsable input
            raise IngestError(f"not readable as HTML ({exc})") from None
        depth = _depth(doc)
        if depth <= MAX_DEPTH and _visible_text(doc) >= KEPT_SHARE * visible:
            if attempt is not text:
                notes.append(f"nested {MAX_DEPTH}+ levels deep: read without its layout (div, span) tags")
            return doc
    notes.append(AS_PLAIN_TEXT)
    return None


def _plain_lines(text: str) -> list[str]:
    """A page as plain text lines: a line per block tag, every other tag removed."""
    import html

    text = _BLOCK_BOUNDARY.sub("\n", _HIDDEN_TEXT.sub(" ", text))
    lines = [_WS.sub(" ", html.unescape(_TAG.sub(" ", line))).strip() for line in text.split("\n")]
    return [line for line in lines if line]


def html_text_lines(text: str, notes: list[str] | None = None) -> list[str]:
    """The main content of an HTML page as Markdown-like lines (rules in the module docstring).
    How the page had to be read, when not as usual, is appended to ``notes``."""
    text = _XML_DECL.sub("", text, count=1)
    if not text.strip():
        return []
    doc = _parse(text, notes if notes is not None else [])
    if doc is None:
        return _plain_lines(text)
    title_el = doc.find(".//title")
    title = _WS.sub(" ", title_el.text_content()).strip() if title_el is not None else ""
    for el in list(doc.iter(*NEVER_CONTENT)):
        _drop(el)
    for el in list(doc.iter()):
        if isinstance(el.tag, str) and (el.get("hidden") is not None or el.get("aria-hidden") == "true"):
            _drop(el)
    root = _content_root(doc)
    _drop_chrome(root)
    lines = html_to_lines(root)
    if title and not any(line.startswith("# ") for line in lines):
        lines = [f"# {title}", ""] + lines
    return lines


def _drop(el) -> None:
    """Remove an element but keep the text that follows it (its tail)."""
    parent = el.getparent()
    if parent is None:
        return
    el.drop_tree()


def _content_root(doc):
    main = doc.find(".//main")
    if main is None:
        main = next((el for el in doc.iter() if isinstance(el.tag, str) and el.get("role") == "main"), None)
    if main is not None:
        return main
    articles = list(doc.iter("article"))
    if articles:
        return max(articles, key=lambda el: len(el.text_content()))
    body = doc.find(".//body")
    return body if body is not None else doc


def _drop_chrome(root) -> None:
    total = _visible_text(root)  # kept up to date as chrome goes: read once, not once per element
    for el in list(root.iter()):
        if el is root or not isinstance(el.tag, str) or el.getparent() is None:
            continue
        tag = el.tag.lower()
        names = f"{el.get('class', '')} {el.get('id', '')}"
        chrome = (
            (tag in CHROME_TAGS and not (tag == "header" and el.find(".//h1") is not None))
            or el.get("role", "").lower() in CHROME_ROLES
            or (tag not in ("html", "body", "main", "article", "pre", "code") and CHROME_NAMES.search(names))
        )
        if chrome and _inside(el, root):
            total -= _drop_unless_most(el, total)
    for el in _page_navigation(root):
        if _inside(el, root):
            total -= _drop_unless_most(el, total)


def _inside(el, root) -> bool:
    """Is ``el`` still in ``root``'s tree (not inside chrome dropped already)?"""
    return any(above is root for above in el.iterancestors())


def _drop_unless_most(el, total: int) -> int:
    """Drop ``el`` unless it holds most of the page's ``total`` visible characters: a 'chrome' name on
    the element holding most of the page is a false alarm (class="content-wrapper nav-open"). The
    characters dropped."""
    own = _visible_text(el)
    if total > 0 and own > 0.5 * total:
        return 0
    _drop(el)
    return own


def _page_navigation(root) -> list:
    """Blocks of links to the neighbouring pages, with a few labels between them (``NAV_RELS``): for each
    link to such a page, the nearest block holding it. Only those links are followed, so a page pays
    nothing for its other elements."""
    found = []
    for a in list(root.iter("a")):
        if not NAV_RELS & set(a.get("rel", "").lower().split()):
            continue
        block = next((b for b in a.iterancestors() if isinstance(b.tag, str) and b.tag.lower() in NAV_BLOCKS), None)
        if block is None or block is root or any(block is f for f in found):
            continue
        links = list(block.iter("a"))
        linked = sum(_visible_text(link) for link in links)
        labels = _visible_text(block) - linked
        if len(links) >= 2 and labels <= min(NAV_LABEL_CHARS, linked):
            found.append(block)
    return found


def _pre_text(pre) -> str:
    """A <pre>'s text, two highlighted code blocks right after each other (class "language-…") on lines
    of their own: Node.js's pages hold each example twice ("import path from 'node:path';" and "const path =
    require('node:path');"), which came out as one line. Inline <code> words ("define name ( … )") run on."""
    parts = [pre.text or ""]
    block_before = False
    for child in pre:
        block = isinstance(child.tag, str) and child.tag.lower() == "code" and "language-" in child.get("class", "")
        if block and block_before:
            parts.append("\n")
        parts.append(child.text_content() if isinstance(child.tag, str) else "")
        parts.append(child.tail or "")
        block_before = block and not child.tail
    return "".join(parts)


def _item_marker(li) -> str:
    """ "- " for an unordered list item, "3. " for the third item of an <ol> (honouring start=)."""
    parent = li.getparent()
    if parent is None or not isinstance(parent.tag, str) or parent.tag.lower() != "ol":
        return "- "
    try:
        start = int(parent.get("start", "1"))
    except ValueError:
        start = 1
    position = [c for c in parent if isinstance(c.tag, str) and c.tag.lower() == "li"].index(li)
    return f"{start + position}. "


def html_to_lines(root) -> list[str]:
    """Blocks of an element tree as lines: headings as '#' lines, list items as '- ', code fenced."""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        text = _WS.sub(" ", "".join(buf)).strip()
        buf.clear()
        if text:
            out.append(text)

    def blank() -> None:
        flush()
        if out and out[-1] != "":
            out.append("")

    def walk(el, tail: bool = True) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if not tag:  # comments, processing instructions
            if el.tail:
                buf.append(el.tail)
            return
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            blank()
            title = _WS.sub(" ", el.text_content()).strip()
            if title:
                out.extend(["#" * int(tag[1]) + " " + title, ""])
        elif tag == "pre":
            blank()
            code = _pre_text(el).strip("\n")
            out.extend(["```", *code.split("\n"), "```", ""])
        elif tag == "br":
            flush()
        elif tag == "tr":
            flush()
            cells = [_WS.sub(" ", c.text_content()).strip() for c in el if isinstance(c.tag, str)]
            if any(cells):
                out.append(" | ".join(cells))
        elif tag == "li":
            flush()
            buf.append(_item_marker(el))
            if el.text:
                buf.append(el.text)
            for child in el:
                walk(child)
            flush()
        elif tag == "img":
            alt = (el.get("alt") or "").strip()
            if alt:
                buf.append(f" {alt} ")
        else:
            block = tag in BLOCK_TAGS
            if block:
                blank() if tag in ("p", "blockquote", "table", "ul", "ol", "section", "article", "figure") else flush()
            if el.text:
                buf.append(el.text)
            for child in el:
                walk(child)
            if block:
                blank() if tag in ("p", "blockquote", "table", "ul", "ol", "section", "article", "figure") else flush()
        if tail and el.tail:
            buf.append(el.tail)

    walk(root, tail=False)
    flush()
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out
