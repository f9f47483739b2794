"""What retrieval knows about the shape of the notes beyond single passages.

- ``SectionMap``: "match small, read big". Passages are matched one by one, but a hit
  that is a small part of a section is read as the whole enclosing section when that
  section fits a budget, so the reader gets the full list, not its first item.
- ``boilerplate_mask``: passages that are navigation (lists of links) or text repeated
  across many notes (a blog footer, a sign-up banner). They are found by their shape,
  never by a file or heading name, and retrieval weighs them down.

Both are computed from the chunks of a loaded index version (which are stored per note
in file order), once per version.
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import replace

import numpy as np

from rag.reading.chunking import Chunk

SEP = " > "
# A line shared word for word by this share of the notes (and at least TEMPLATE_MIN_NOTES of them)
# is a template line (a blog footer); a paragraph shared by two or three notes is a copied article.
TEMPLATE_MIN_NOTES = 3
TEMPLATE_MIN_SHARE = 0.1
# A passage is boilerplate when at least this share of its characters is links or template lines.
BOILERPLATE_SHARE = 0.6
_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)|<a\s[^>]*>.*?</a>|https?://\S+")
# Images are neither content nor navigation: left out of the count.
_IMAGE = re.compile(r"!\[[^\]]*\]\((<[^>]*>|[^)]*)\)|<img\s[^>]*>")
_SQUASH = re.compile(r"\s+")


def _path(chunk: Chunk) -> list[str]:
    return [p for p in chunk.heading.split(SEP) if p] if chunk.heading else []


class SectionMap:
    """For each passage, the enclosing section it is read as (a run of passages of one note)."""

    def __init__(self, chunks: list[Chunk], max_chars: int) -> None:
        self.chunks = chunks
        self.max_chars = max_chars
        self._paths = [_path(c) for c in chunks]
        self._sizes = [len(c.text) for c in chunks]

    def unit(self, idx: int) -> tuple[int, ...]:
        """The passages (ids, in file order) of the largest section around ``idx`` that fits
        ``max_chars``: the whole note when it fits, else the outermost heading that does.
        ``(idx,)`` when nothing larger fits."""
        if self.max_chars <= 0:
            return (idx,)
        path = self._paths[idx]
        for depth in range(0, len(path) + 1):
            run = self._run(idx, path[:depth])
            if len(run) > 1 and sum(self._sizes[i] for i in run) + 2 * len(run) <= self.max_chars:
                return run
            if len(run) == 1:
                break
        return (idx,)

    def _run(self, idx: int, prefix: list[str]) -> tuple[int, ...]:
        source, page = self.chunks[idx].source, self.chunks[idx].page
        # A PDF passage is read within its page, so that it still opens at the page it cites.
        inside = lambda j: (self.chunks[j].source == source and self.chunks[j].page == page  # noqa: E731
                            and self._paths[j][: len(prefix)] == prefix)
        lo = idx
        while lo > 0 and inside(lo - 1):
            lo -= 1
        hi = idx
        while hi + 1 < len(self.chunks) and inside(hi + 1):
            hi += 1
        return tuple(range(lo, hi + 1))

    def adjacent(self, run: tuple[int, ...], unit: tuple[int, ...]) -> bool:
        """Do two runs of passages touch in one note (and page), and fit ``max_chars`` together?"""
        if self.max_chars <= 0:
            return False
        lo, hi = min(run), max(run)
        touching = min(unit) == hi + 1 or max(unit) == lo - 1
        if not touching:
            return False
        a, b = self.chunks[lo], self.chunks[min(unit)]
        if a.source != b.source or a.page != b.page:
            return False
        return sum(self._sizes[i] + 2 for i in run + unit) <= self.max_chars

    def passage(self, unit: tuple[int, ...]) -> Chunk:
        """One chunk standing for the whole unit, with its true line span."""
        if len(unit) == 1:
            return self.chunks[unit[0]]
        members = [self.chunks[i] for i in unit]
        common = self._paths[unit[0]]
        for i in unit[1:]:
            other = self._paths[i]
            n = 0
            while n < min(len(common), len(other)) and common[n] == other[n]:
                n += 1
            common = common[:n]
        digest = hashlib.sha256("".join(m.content_hash for m in members).encode()).hexdigest()
        # Sections side by side share no heading: the run is named by the one it starts with.
        heading = SEP.join(common) if common else members[0].heading
        return replace(members[0], heading=heading, line_end=members[-1].line_end,
                       text="\n\n".join(m.text for m in members), content_hash=digest)


def template_lines(chunks: list[Chunk]) -> frozenset[str]:
    """The template lines of the notes (a blog footer "欢迎关注我的GitHub和微信公众号…", a series'
    "本系列收纳各种大模型面试题及答案。"), whitespace removed: lines of at least 4 characters that
    ``TEMPLATE_MIN_SHARE`` of the notes, and at least ``TEMPLATE_MIN_NOTES``, hold word for word."""
    notes_with_line: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks:
        for line in chunk.text.split("\n"):
            key = _SQUASH.sub("", line)
            if len(key) >= 4:
                notes_with_line[key].add(chunk.source)
    n_notes = len({c.source for c in chunks})
    template = max(TEMPLATE_MIN_NOTES, TEMPLATE_MIN_SHARE * n_notes)
    return frozenset(key for key, notes in notes_with_line.items() if len(notes) >= template)


def boilerplate_mask(chunks: list[Chunk], template: frozenset[str] | None = None) -> np.ndarray:
    """True for passages that are mostly links or template lines (``template``, computed when not given)."""
    template = template_lines(chunks) if template is None else template
    mask = np.zeros(len(chunks), dtype=bool)
    for i, chunk in enumerate(chunks):
        total = noise = 0
        for raw in chunk.text.split("\n"):
            line = _IMAGE.sub("", raw)
            key = _SQUASH.sub("", line)
            if not key:
                continue
            total += len(key)
            if _SQUASH.sub("", raw) in template:
                noise += len(key)
            else:
                noise += sum(len(_SQUASH.sub("", m.group(0))) for m in _LINK.finditer(line))
        mask[i] = total > 0 and noise >= BOILERPLATE_SHARE * total
    return mask
