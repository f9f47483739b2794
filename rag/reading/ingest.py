"""Find notes on disk, decode them, and blank out scraped-page clutter.

Cleaning never removes lines: clutter lines are replaced by empty strings so that
every later line number still points at the same line of the file on disk.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from rag.core.errors import CorpusNotFound, InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus root, with forward slashes
    lines: tuple[str, ...]  # cleaned lines; index 0 is line 1 of the file
    content_hash: str  # sha256 of the raw bytes: what incremental rebuilds compare
    encoding: str
    # Non-blank lines of the file that clean_lines() blanked as page clutter.
    clutter_lines: int = 0
    # Paged formats (PDF): the 1-based page of each line, one entry per line, never
    # decreasing; None for formats without pages. See rag/reading/loaders/base.py.
    pages: tuple[int, ...] | None = None
    # What the build report should say about how the note was read (bytes replaced, a
    # page read as plain text), one line each, without the note's name.
    warnings: tuple[str, ...] = ()
    # Every heading is marked as one (HTML's h1-h6, as "#" lines): no short line standing alone is taken
    # for one, as it is in plain-text notes ("Added in: v0.1.16", "History" under a heading are text).
    marked_headings: bool = False

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def text_lines(self) -> int:
        """Non-blank lines left after cleaning."""
        return sum(1 for line in self.lines if line.strip())

    @property
    def clutter_share(self) -> float:
        """The share of the file's non-blank lines that cleaning removed (0 for an empty file)."""
        total = self.text_lines + self.clutter_lines
        return self.clutter_lines / total if total else 0.0


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


class IngestError(InputError, ValueError):
    """A file that cannot be read as a note; the message says why."""


@dataclass(frozen=True)
class Discovery:
    """The notes found under a corpus folder, and the files passed over with the reason."""

    paths: list[Path]  # note files (symbolic links to notes inside the folder included), sorted
    skipped: list[Skipped]  # e.g. symbolic links that lead outside the folder


def discover_notes(corpus_dir: Path, extensions: tuple[str, ...]) -> Discovery:
    """Every note file under ``corpus_dir``, in a stable order, skipping hidden ones.

    Symbolic links — one rule everywhere (indexing, the note list, delete, the source view):
    a link to a note *inside* the notes folder is followed (the note is indexed under the
    link's name too); a link whose target is *outside* the folder, or that is broken, is
    skipped and reported, so that nothing outside the folder is indexed or shown. Links to
    folders are never descended, and reported too (one could loop, and a folder inside
    is indexed anyway).
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusNotFound(f"corpus folder not found: {corpus_dir} (the notes folder: --corpus or RAG_CORPUS_DIR)")
    root = corpus_dir.resolve()
    suffixes = {e.lower() for e in extensions}
    found: list[Path] = []
    skipped: list[Skipped] = []
    for folder, dirs, files in os.walk(corpus_dir, followlinks=False):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in dirs:
            link = base / name
            if link.is_symlink():  # os.walk does not descend it; say so
                source = link.relative_to(corpus_dir).as_posix()
                where = "inside the notes folder: its notes are indexed under their own path" \
                    if _points_inside(root, link) else "outside the notes folder"
                skipped.append(Skipped(source, f"link to a folder ({_target(link)}), not followed: {where}"))
        for name in files:
            path = base / name
            if name.startswith(".") or path.suffix.lower() not in suffixes:
                continue
            unreadable = name_problem(path.relative_to(corpus_dir))
            if unreadable:
                skipped.append(Skipped(shown_name(path.relative_to(corpus_dir).as_posix()), unreadable))
                continue
            if path.is_symlink():
                source = path.relative_to(corpus_dir).as_posix()
                if not path.exists():
                    skipped.append(Skipped(source, f"broken link (to {_target(path)})"))
                    continue
                if not _points_inside(root, path):
                    skipped.append(Skipped(source, f"link to a file outside the notes folder ({_target(path)}); "
                                                   "only links to notes inside the folder are followed"))
                    continue
            if path.is_file():
                found.append(path)
    for item in skipped:
        log.info("skipping %s: %s", item.source, item.reason)
    found.sort(key=lambda p: p.relative_to(corpus_dir).as_posix())
    skipped.sort(key=lambda s: s.source)
    return Discovery(found, skipped)


def discover(corpus_dir: Path, extensions: tuple[str, ...]) -> list[Path]:
    """The note files of ``discover_notes`` (links out of the folder left out; see its rule)."""
    return discover_notes(corpus_dir, extensions).paths


def shown_name(name: str) -> str:
    """``name`` safe to print, store as JSON and send to a browser: the bytes of a file name
    that is not UTF-8 (os.fsdecode keeps them as lone surrogates) shown as ``\\xb1`` escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def name_problem(relative: Path) -> str | None:
    """Why a note's path (relative to the notes folder) cannot name a note, or None.

    A name whose bytes are not UTF-8 (a GBK name from a zip made on Windows) cannot be
    written to the manifest, printed or sent to the page; it is skipped with a reason that
    says what to rename it to (the name read as GB18030, when that reads)."""
    text = relative.as_posix()
    if shown_name(text) == text:
        return None
    raw = os.fsencode(text)
    try:
        guess = raw.decode("gb18030")
        hint = f", e.g. to “{guess}” (the name read as GBK)" if guess.isprintable() else ""
    except UnicodeDecodeError:
        hint = ""
    return f"the file name is not UTF-8 text; rename the file{hint}"


def _points_inside(root: Path, link: Path) -> bool:
    try:
        link.resolve().relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a link loop
        return False


def _target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return "?"


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes) -> tuple[str, str]:
    """Decode note bytes; returns (text, encoding). Raises IngestError for binary data."""
    decoded = decode_note(data)
    return decoded.text, decoded.encoding


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    replaced: int = 0  # invalid bytes replaced by U+FFFD (the rest of the note is the user's text)

    @property
    def warnings(self) -> tuple[str, ...]:
        if not self.replaced:
            return ()
        many = self.replaced != 1
        return (f"{self.replaced} invalid byte{'s' if many else ''} in its {self.encoding} text "
                f"{'were' if many else 'was'} replaced by “\ufffd”",)


# Bytes in U+DC80..U+DCFF after decoding with "surrogateescape": the bytes that were invalid.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# A note with one invalid byte per this many valid non-ASCII characters (or fewer) is read in the
# encoding it mostly is, the bad bytes replaced. A GBK note read as UTF-8 has nearly every
# non-ASCII byte invalid, a UTF-8 note with a byte cut by a bad copy one in thousands.
MOSTLY_VALID = 10


def _replace_invalid(data: bytes, encoding: str) -> tuple[str, int, int]:
    """(text, invalid bytes, valid non-ASCII characters): ``data`` in ``encoding``, invalid bytes as U+FFFD."""
    text = data.decode(encoding, "surrogateescape")
    bad = len(_ESCAPED_BYTE.findall(text))
    valid = sum(1 for ch in text if ord(ch) > 127) - bad
    return _ESCAPED_BYTE.sub("\ufffd", text), bad, valid


def _decode_mostly(data: bytes, encoding: str) -> Decoded | None:
    """``data`` in ``encoding`` with its few invalid bytes replaced, or None when too many are invalid."""
    try:
        text, bad, valid = _replace_invalid(data, encoding)
    except (LookupError, UnicodeError):
        return None
    if bad and bad * MOSTLY_VALID > valid:
        return None
    return Decoded(text, encoding, bad)


def decode_note(data: bytes, declared: str | None = None) -> Decoded:
    """Decode note bytes; raises IngestError for binary data.

    Invariant: decoding never guesses silently. A declared encoding (an HTML page's
    charset) is used when the bytes are mostly valid in it, and so is UTF-8: the invalid
    bytes become U+FFFD and ``Decoded.replaced`` counts them, so that the build can warn.
    Only bytes that are not mostly valid in either are decoded by detection.
    """
    if not data.strip():
        raise IngestError("empty file")
    if data.startswith(b"\xef\xbb\xbf"):
        text, bad, _ = _replace_invalid(data[3:], "utf-8")  # the mark says UTF-8: no guessing
        return Decoded(text, "utf-8-sig", bad)
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            return Decoded(_decode_wide(data[len(bom):], encoding), encoding)
    if b"\x00" in data[:8192]:
        raise IngestError("binary file (contains NUL bytes)")
    for encoding in ([declared] if declared else []) + ["utf-8"]:
        decoded = _decode_mostly(data, encoding)
        if decoded is not None:
            return decoded
    # GB18030 is a superset of GBK and GB2312, and most non-UTF-8 Chinese notes are one of them.
    try:
        text = data.decode("gb18030")
        if _looks_like_text(text):
            return Decoded(text, "gb18030")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None or not _looks_like_text(str(best)):
        raise IngestError("not text in any known encoding")
    return Decoded(str(best), best.encoding)


# UTF-32 first: the UTF-32-LE mark begins with the UTF-16-LE one. Windows editors
# (Notepad's "Unicode") save UTF-16 with a mark; without one, wide text is refused as binary.
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _decode_wide(data: bytes, encoding: str) -> str:
    """Strictly decode UTF-16/32 text after its byte-order mark; binary data behind a mark fails.

    Random bytes read as UTF-16 almost always contain an unpaired surrogate or an odd
    length, so strict decoding (plus the control-character test) keeps refusing binaries.
    """
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        name = encoding.upper()
        raise IngestError(f"binary file (starts with a {name} mark but is not {name} text)") from None
    if not text.strip():
        raise IngestError("empty file")
    if not _looks_like_text(text):
        raise IngestError("binary file (control characters in what would be text)")
    return text


def _looks_like_text(text: str) -> bool:
    if not text:
        return False
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return control / len(text) < 0.01


# --- clutter ---------------------------------------------------------------------
# Blog-platform chrome that scraped notes drag along: like/favourite/comment buttons,
# "related articles" lists, tip jars, view counters.
_CHROME = re.compile(
    r"^\s*[•·*-]?\s*(点赞|收藏|评论(\s*\d+)?|举报|分享|打赏|关注|觉得还不错\?? ?一键收藏|提交|添加红包|"
    r"扫码支付|使用余额支付|钱包余额|抵扣说明|余额充值|实付|发出的红包|点击重新获取|"
    r"非常没帮助|没帮助|一般|有帮助|非常有帮助|\d+)\s*[:：]?\s*$"
    # The red-envelope widget's own lines, not every line that says 红包 (notes discuss 抢红包 algorithms).
    r"|posted @|阅读\(\d+\)|“相关推荐”|相关推荐|红包(祝福语|个数最小|金额最低)|红包主的粉丝|成就一亿技术人"
    r"|^\s*钱包余额\s*\d|^\s*当前余额[\d.]+前往充值|^\s*需支付[:：]\s*[\d.]+\s*$"
    r"|^\s*\d\.\s*余额(是钱包充值的虚拟货币|无法直接购买下载)"
)
_TRAILER_HEAD = re.compile(
    r"^\s*(相关文章|相关推荐|推荐阅读|热门文章|猜你喜欢)\s*[:：]?\s*$|^posted @ \d{4}-"
)
_BARE_NUMBER = re.compile(r"^\s*[•·*-]?\s*\d+\s*$")
_PAGE_CHROME_FIRST_LINE = re.compile(r"^\s*(Bootstrap|;)\s*$")
# A related-article teaser: the scraper cut the article's first paragraph with an ellipsis.
_TEASER = re.compile(r"(…|\.\.\.)[.…]*\s*$")
# A markdown heading: after a footer it starts the user's own writing again.
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
# Longest line taken for a widget label or an article title inside a footer (a username,
# "hope_wisdom"; a title); prose is longer than this.
_FOOTER_LABEL_MAX_CHARS = 80
# A sentence end: a line that ends like prose is the user's writing, never a label.
_PROSE_END = re.compile(r"[。．.;；]\s*$")  # not "!", "?": titles end so
# Most short lines taken as one block of footer labels between two chrome lines; a longer
# run is the user's writing (a list, a poem) even if a button line follows it.
_FOOTER_RUN_MAX_LINES = 6


def is_clutter_line(line: str) -> bool:
    """True for a line that is page chrome by itself, wherever it stands (a like button, 相关推荐)."""
    if not line.strip() or _BARE_NUMBER.match(line):  # a number is a counter only beside its button
        return False
    return bool(_CHROME.search(line) or _TRAILER_HEAD.match(line))


def clean_lines(lines: list[str]) -> list[str]:
    """Blank scraped-page clutter; every other line is returned unchanged (minus trailing spaces).

    Invariant: a line is blanked only when it is clutter itself — a widget line, a counter
    next to one, a short label between two of them, a related-article title or teaser —
    and only inside the page footer (found in the second half of the note). A heading or
    prose after a footer is the user's writing and is kept.
    """
    lines = [line.rstrip() for line in lines]
    start = _trailer_start(lines)
    cleaned = list(lines)
    for i in _footer_clutter(lines, start):
        cleaned[i] = ""
    for i in (0, len(cleaned) - 1):
        if cleaned and _PAGE_CHROME_FIRST_LINE.match(cleaned[i]):
            cleaned[i] = ""
    return _drop_repeated_long_lines(cleaned)


def _footer_clutter(lines: list[str], start: int) -> set[int]:
    """Indexes of the clutter lines from ``start`` (the footer's first line) to the end."""
    body = [i for i in range(start, len(lines)) if lines[i].strip()]
    chrome = {i for i in body if is_clutter_line(lines[i])}
    clutter = set(chrome)
    for pos, i in enumerate(body):
        if i in chrome:
            continue
        prev = body[pos - 1] if pos > 0 else None
        nxt = body[pos + 1] if pos + 1 < len(body) else None
        line = lines[i]
        short = _is_label(line)
        # A like/favourite counter ("• 12") right before or after its button.
        if _BARE_NUMBER.match(line) and (prev in chrome or nxt in chrome):
            clutter.add(i)
        # Labels inside a footer block: a short run between two chrome lines (the blogger's
        # name in the tip-jar widget; article titles between "相关文章:" and the like buttons).
        elif short and _run_between_chrome(lines, body, pos, chrome):
            clutter.add(i)
    # A related-articles list: after its head, teasers cut with "…" and the title line above each.
    heads = [i for i in body if _TRAILER_HEAD.match(lines[i])]
    if heads:
        for pos, i in enumerate(body):
            if i < heads[0] or i in clutter or _HEADING.match(lines[i]):
                continue
            if _TEASER.search(lines[i]):
                clutter.add(i)
                prev = body[pos - 1] if pos > 0 else None
                if (prev is not None and prev > heads[0] and prev not in clutter and _is_label(lines[prev])
                        and not _TEASER.search(lines[prev])):
                    clutter.add(prev)
    return clutter


def _is_label(line: str) -> bool:
    """Short, not a heading, not ending like a sentence: could be a widget label or a title."""
    return len(line.strip()) <= _FOOTER_LABEL_MAX_CHARS and not _HEADING.match(line) and not _PROSE_END.search(line)


def _run_between_chrome(lines: list[str], body: list[int], pos: int, chrome: set[int]) -> bool:
    """Is body[pos] in a run of at most _FOOTER_RUN_MAX_LINES short non-heading lines with
    a chrome line right before and right after the run?"""
    def label(i: int) -> bool:
        return _is_label(lines[i])

    lo = pos
    while lo > 0 and body[lo - 1] not in chrome and label(body[lo - 1]):
        lo -= 1
    hi = pos
    while hi + 1 < len(body) and body[hi + 1] not in chrome and label(body[hi + 1]):
        hi += 1
    return (lo > 0 and body[lo - 1] in chrome and hi + 1 < len(body) and body[hi + 1] in chrome
            and hi - lo + 1 <= _FOOTER_RUN_MAX_LINES)


def _trailer_start(lines: list[str]) -> int:
    """Index of the first line of a page trailer (comments, related articles), or len(lines).

    Only the second half of a note is searched: a trailer follows the article.
    """
    n = len(lines)
    for i in range(n // 2, n):
        if _TRAILER_HEAD.match(lines[i]):
            return i
        # Bare numbers are like/favourite counters only next to the buttons themselves:
        # printed output ("0", "1", "2") is not a trailer.
        if _CHROME.search(lines[i]):
            window = [ln for ln in lines[i : i + 12] if ln.strip() and _CHROME.search(ln)]
            if len(window) >= 3 and sum(not _BARE_NUMBER.match(ln) for ln in window) >= 2:
                return i
    return n


def _drop_repeated_long_lines(lines: list[str], min_len: int = 1000) -> list[str]:
    """Blank very long lines that merely repeat the rest of the note.

    Some scrapes append the whole article again as one giant line; it would
    outvote the real sections in keyword search and add nothing.
    """
    long_ids = {i for i, ln in enumerate(lines) if len(ln) >= min_len}
    if not long_ids:
        return lines
    rest = "".join(ln for i, ln in enumerate(lines) if i not in long_ids)
    rest_grams = _char_grams(rest)
    out = list(lines)
    for i in long_ids:
        grams = _char_grams(lines[i])
        if grams and len(grams & rest_grams) / len(grams) >= 0.5:
            log.info("dropping a long line that repeats the note (line %d)", i + 1)
            out[i] = ""
    return out


def _char_grams(text: str, n: int = 6) -> set[str]:
    text = re.sub(r"\s+", "", text)
    return {text[i : i + n] for i in range(0, max(len(text) - n + 1, 0))}
