"""Find notes on disk, decode them, and blank out scraped-page clutter.

Cleaning never removes lines: clutter lines are replaced by empty strings so that
every later line number still points at the same line of the file on disk.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus root, with forward slashes
    lines: tuple[str, ...]  # cleaned lines; index 0 is line 1 of the file
    content_hash: str  # sha256 of the raw bytes: what incremental rebuilds compare
    encoding: str
    # Paged formats (PDF): the 1-based page of each line, one entry per line, never
    # decreasing; None for formats without pages. See rag/loaders/base.py.
    pages: tuple[int, ...] | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


class IngestError(ValueError):
    """A file that cannot be read as a note; the message says why."""


def discover(corpus_dir: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Every note file under ``corpus_dir``, in a stable order, skipping hidden ones."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus_dir}")
    found = []
    for path in corpus_dir.rglob("*"):
        rel = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in extensions:
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(corpus_dir).as_posix())


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes) -> tuple[str, str]:
    """Decode note bytes; returns (text, encoding). Raises IngestError for binary data."""
    if not data.strip():
        raise IngestError("empty file")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if b"\x00" in data[:8192]:
        raise IngestError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # GB18030 is a superset of GBK and GB2312, and most non-UTF-8 Chinese notes are one of them.
    try:
        text = data.decode("gb18030")
        if _looks_like_text(text):
            return text, "gb18030"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None or not _looks_like_text(str(best)):
        raise IngestError("not text in any known encoding")
    return str(best), best.encoding


def _looks_like_text(text: str) -> bool:
    if not text:
        return False
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return control / len(text) < 0.01


def load_document(path: Path, source: str, max_bytes: int) -> Document:
    """The note at ``path`` as lines, read by the loader its suffix names (rag/loaders)."""
    from .loaders import loader_for  # the loaders build on this module's decoding and cleaning

    loader = loader_for(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise IngestError(f"file is {size} bytes, over the {max_bytes}-byte limit")
    return loader.load(path, source)


# --- clutter ---------------------------------------------------------------------
# Blog-platform chrome that scraped notes drag along: like/favourite/comment buttons,
# "related articles" lists, tip jars, view counters.
_CHROME = re.compile(
    r"^\s*[•·*-]?\s*(点赞|收藏|评论(\s*\d+)?|举报|分享|打赏|关注|觉得还不错\?? ?一键收藏|提交|添加红包|"
    r"扫码支付|使用余额支付|钱包余额|抵扣说明|余额充值|实付|发出的红包|"
    r"非常没帮助|没帮助|一般|有帮助|非常有帮助|\d+)\s*$"
    # The red-envelope widget's own lines, not every line that says 红包 (notes discuss 抢红包 algorithms).
    r"|posted @|阅读\(\d+\)|“相关推荐”|相关推荐|红包(祝福语|个数最小|金额最低)|红包主的粉丝|成就一亿技术人"
)
_TRAILER_HEAD = re.compile(
    r"^\s*(相关文章|相关推荐|推荐阅读|热门文章|猜你喜欢)\s*[:：]?\s*$|^posted @ \d{4}-"
)
_BARE_NUMBER = re.compile(r"^\s*[•·*-]?\s*\d+\s*$")
_PAGE_CHROME_FIRST_LINE = re.compile(r"^\s*(Bootstrap|;)\s*$")


def clean_lines(lines: list[str]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    start = _trailer_start(lines)
    cleaned = [line if i < start else "" for i, line in enumerate(lines)]
    for i in (0, len(cleaned) - 1):
        if cleaned and _PAGE_CHROME_FIRST_LINE.match(cleaned[i]):
            cleaned[i] = ""
    return _drop_repeated_long_lines(cleaned)


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
