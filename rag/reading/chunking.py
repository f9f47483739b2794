"""Split a note along its own structure into passages that know where they came from.

Sections start at Markdown headings, at numbered questions that stand alone on a
line ("1、…", "5.1.2 …", "4 训练过程为什么需要 Mask 机制？") and at short title lines.
Code (fenced, or unfenced runs of code-looking lines) is kept whole, split only
between top-level definitions. Long prose is packed paragraph by paragraph and
split at sentence boundaries only when a single paragraph is too long.

Which lines are headings and code, and the sections they open, is ``rag.reading.structure``;
this module packs those sections' blocks into passages.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from rag.core.text import SENTENCE_SPLIT
from rag.reading.ingest import Document
from rag.reading.structure import Block, Section, front_matter_end, note_sections

# Bump when the chunking rules change: a different version forces a full rebuild.
CHUNKER_VERSION = "9"


@dataclass(frozen=True)
class Chunk:
    source: str  # note path relative to the corpus root
    heading: str  # heading path, " > "-joined; "" before the first heading
    line_start: int  # 1-based, inclusive
    line_end: int  # 1-based, inclusive
    text: str
    content_hash: str = ""
    # [loaders] Paged notes (PDF): the page the passage starts on; None for other formats.
    page: int | None = None

    @property
    def id(self) -> str:
        return f"{self.source}#L{self.line_start}-L{self.line_end}:{self.content_hash[:12]}"

    def title(self) -> str:
        """The nearest headings that name this passage's topic; its first line when it has none.

        A numbered question names its topic by itself; a bare "优点" needs its parent.
        """
        parts = [p for p in self.heading.split(" > ") if p]
        if not parts:
            return self.text.strip().split("\n", 1)[0][:200]
        own = parts[-1]
        keep = 1 if (re.match(r"^\d", own) and len(own) >= 12) or own.startswith("class ") else 2
        return "\n".join(parts[-keep:])

    def embedding_text(self) -> str:
        """What gets embedded and keyword-indexed: the nearest headings give the body its topic.

        A passage that starts a section already begins with its own heading line, so
        the heading is not repeated.
        """
        if not self.heading:
            return self.text
        first = self.text.split("\n", 1)[0].strip()
        context = [line for line in self.title().split("\n") if line != first]
        return "\n".join(context + [self.text])


_TOPLEVEL_DEF = re.compile(r"^(class|def|async\s+def|function)\s+\w+|^#\s*\S|^@\w+")
_METHOD_DEF = re.compile(r"^\s{2,8}(def|async\s+def)\s+\w+|^\s{2,8}@\w+")


# --- packing blocks into chunks -------------------------------------------------------
def _split_code(block: Block, max_chars: int) -> list[Block]:
    """Split a code block between top-level definitions, each definition kept whole;
    a class too big for one passage splits between its methods, each labelled with both."""
    units = _definition_units(block, _TOPLEVEL_DEF)
    split: list[Block] = []
    for unit in units:
        if unit.size <= max_chars or not unit.label.startswith("class "):
            split.append(unit)
            continue
        for method in _definition_units(unit, _METHOD_DEF):
            method.label = f"{unit.label} > {method.label}" if method.label and method.label != unit.label else unit.label
            split.append(method)
    packed: list[Block] = []
    for unit in split:
        prev = packed[-1] if packed else None
        if prev and (not prev.label or not unit.label) and prev.size + unit.size <= max_chars // 2:
            gap = unit.start - prev.end - 1
            prev.lines.extend([""] * gap + unit.lines)
            prev.label = prev.label or unit.label
        else:
            packed.append(Block(unit.start, list(unit.lines), True, unit.label))
    return packed


def _definition_units(block: Block, boundary: re.Pattern) -> list[Block]:
    units: list[Block] = []
    for offset, line in enumerate(block.lines):
        # A decorator or comment line directly above a definition belongs to it.
        starts_unit = boundary.match(line) and not (units and units[-1].lines and boundary.match(units[-1].lines[-1]))
        if not units or starts_unit:
            units.append(Block(block.start + offset, [], is_code=True))
        units[-1].lines.append(line)
    for unit in units:
        while unit.lines and not unit.lines[-1].strip():
            unit.lines.pop()
        first = next((ln for ln in unit.lines if re.match(r"^\s*(class|def|async\s+def)\s", ln)), "")
        unit.label = first.strip().rstrip(":").strip()
        if unit.label.startswith("def ") and "(" in unit.label:
            unit.label = unit.label.split("(")[0]
    return [u for u in units if u.lines]


def _split_long_line(line: str, max_chars: int) -> list[str]:
    pieces, current = [], ""
    for sentence in SENTENCE_SPLIT.split(line):
        if not sentence:
            continue
        while len(sentence) > max_chars:  # no sentence boundary at all: cut hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if len(current) + len(sentence) > max_chars and current:
            pieces.append(current)
            current = ""
        current += sentence
    if current:
        pieces.append(current)
    return pieces


@dataclass
class _Piece:
    line_start: int  # 0-based
    line_end: int
    text: str
    is_code: bool = False
    label: str = ""
    is_heading: bool = False


def _pieces(block: Block, max_chars: int, code_max_chars: int) -> list[_Piece]:
    """A block as one or more pieces no longer than the limits (code may go to code_max_chars)."""
    if block.is_code:
        if block.size <= code_max_chars and not any(_TOPLEVEL_DEF.match(ln) for ln in block.lines[1:]):
            return [_Piece(block.start, block.end, "\n".join(block.lines), True, block.label)]
        out = []
        for part in _split_code(block, code_max_chars):
            if part.size <= code_max_chars:
                out.append(_Piece(part.start, part.end, "\n".join(part.lines), True, part.label))
            else:  # one huge definition: fall back to line packing
                out.extend(_Piece(p.line_start, p.line_end, p.text, True, part.label)
                           for p in _pieces(Block(part.start, part.lines), code_max_chars, code_max_chars))
        return out
    if block.size <= max_chars:
        return [_Piece(block.start, block.end, "\n".join(block.lines))]
    out: list[_Piece] = []
    for offset, line in enumerate(block.lines):
        idx = block.start + offset
        parts = _split_long_line(line, max_chars) if len(line) > max_chars else [line]
        for part in parts:
            if out and out[-1].line_end >= idx - 1 and len(out[-1].text) + len(part) + 1 <= max_chars:
                sep = "\n" if out[-1].line_end != idx else ""
                out[-1] = _Piece(out[-1].line_start, idx, out[-1].text + sep + part)
            else:
                out.append(_Piece(idx, idx, part))
    return out


def _group_pieces(pieces: list[_Piece], target: int, max_chars: int, min_chars: int = 0) -> list[list[_Piece]]:
    """Pack a section's pieces into passages: whole when it fits, else about ``target`` each.

    A code piece that holds a definition (``def``/``class``) stands alone, so its passage is
    labelled with it; other pieces, small code samples included, are packed in order.
    Pieces too small to say anything on their own (an intro sentence before a list, a
    one-line output sample) join a neighbour while the limit allows.
    """
    def size(group: list[_Piece]) -> int:
        return sum(len(p.text) + 2 for p in group)

    def alone(piece: _Piece) -> bool:
        return piece.is_code and bool(piece.label)

    def heading_only(group: list[_Piece]) -> bool:
        return len(group) == 1 and group[0].is_heading

    if not pieces:
        return []
    if not any(alone(p) for p in pieces) and size(pieces) <= max_chars:
        return [pieces]
    floor = max(min_chars, target // 3)
    groups: list[list[_Piece]] = []
    for piece in pieces:
        current = groups[-1] if groups else None
        if current and heading_only(current) and size(current) + len(piece.text) <= max_chars:
            current.append(piece)  # a heading is never a passage of its own
        elif current and not alone(piece) and not alone(current[-1]) and size(current) + len(piece.text) <= target:
            current.append(piece)
        else:
            groups.append([piece])
    merged: list[list[_Piece]] = []
    for group in groups:
        prev = merged[-1] if merged else None
        small = size(group) < floor or (prev is not None and size(prev) < floor)
        if prev and small and not alone(group[0]) and not alone(prev[-1]) and size(prev) + size(group) <= max_chars:
            prev.extend(group)
        else:
            merged.append(group)
    return merged


@dataclass
class _Unit:
    """One section ready for packing: its heading line (if any) and its body pieces."""

    section: int  # index in the section list
    heading: list[str]
    heading_line: int | None
    pieces: list[_Piece]

    @property
    def size(self) -> int:
        return sum(len(p.text) + 2 for p in self.all_pieces())

    def all_pieces(self) -> list[_Piece]:
        return self.head() + self.pieces

    @property
    def first_line(self) -> int:
        return self.heading_line if self.heading_line is not None else self.pieces[0].line_start

    def head(self) -> list[_Piece]:
        if self.heading_line is None:
            return []
        return [_Piece(self.heading_line, self.heading_line, self.heading[-1], is_heading=True)]


def _parents(sections: list[Section]) -> list[int | None]:
    """Index of each section's parent section (None: the note itself)."""
    parents: list[int | None] = []
    for i, section in enumerate(sections):
        depth = len(section.heading)
        parent = next((j for j in range(i - 1, -1, -1) if len(sections[j].heading) < depth
                       and sections[j].heading == section.heading[: len(sections[j].heading)]
                       and sections[j].heading_line is not None), None)
        parents.append(parent)
    return parents


def _in_subtree(section: int, root: int | None, parents: list[int | None]) -> bool:
    """Is ``section`` inside the subtree of ``root`` (None: the whole note)?"""
    if root is None:
        return True
    node: int | None = section
    while node is not None:
        if node == root:
            return True
        node = parents[node]
    return False


def _pack(units: list[_Unit], parents: list[int | None], max_chars: int, min_chars: int,
          page: Callable[[int], int | None]) -> list[list[_Unit]]:
    """Group consecutive small sections into passages worth reading.

    A section below ``min_chars`` (or a group still below it) joins its neighbours (its
    parent just above it, its siblings, their children) while the group stays within
    ``max_chars``; sections that are each big enough stay apart. A group never leaves the subtree of its first section's parent, so
    "优点" and "缺点" under "优缺点" come together, but the last small section of one
    chapter does not ride along with the next chapter.
    """
    groups: list[list[_Unit]] = []
    for unit in units:
        current = groups[-1] if groups else None
        if current:
            size = sum(u.size for u in current)
            # A heading with nothing under it yet is never a passage of its own.
            small = size < min_chars or unit.size < min_chars or not any(u.pieces for u in current)
            related = (_in_subtree(unit.section, parents[current[0].section], parents)
                       and page(unit.first_line) == page(current[0].first_line))  # a PDF passage stays on its page
            if small and related and size + unit.size <= max_chars:
                current.append(unit)
                continue
        groups.append([unit])
    return groups


def chunk_document(doc: Document, target_chars: int = 500, max_chars: int = 900,
                   code_max_chars: int = 1200, min_chars: int = 0) -> list[Chunk]:
    """Passages of ``doc`` in file order; each passage's text is the (non-blank) lines of its span.

    A section that fits ``max_chars`` is never split; a longer one is packed into passages
    of about ``target_chars`` (code kept whole up to ``code_max_chars``). Sections under
    ``min_chars`` are joined with their neighbours (see `_pack`), so a heading alone or a
    one-line section does not become a passage of its own unless the note has nothing else.
    The first passage of a section starts at, and includes, its heading line.
    """
    sections = note_sections(doc.lines, infer_titles=not doc.marked_headings)
    parents = _parents(sections)
    # Front matter ("---", "tags: […]", "---") names nothing: the passage it opens is named by its heading.
    meta_end = front_matter_end(doc.lines)

    def says(piece: _Piece) -> bool:
        return not piece.is_heading and piece.line_start >= meta_end
    units = []
    for i, section in enumerate(sections):
        pieces = [p for b in section.blocks for p in _pieces(b, max_chars, code_max_chars)]
        if pieces or section.heading_line is not None:
            units.append(_Unit(i, section.heading, section.heading_line, pieces))
    passages: list[tuple[str, list[_Piece]]] = []
    page = (lambda line: doc.pages[line]) if doc.pages else (lambda line: None)  # noqa: E731
    for group in _pack(units, parents, max_chars, min_chars, page):
        # Headings with nothing under them name the passage by the first one with a body.
        heading = " > ".join(next((u for u in group if any(says(p) for p in u.pieces)), group[-1]).heading)
        for run in _group_pieces([p for u in group for p in u.all_pieces()], target_chars, max_chars, min_chars):
            if run:
                passages.append((heading, run))
    chunks: list[Chunk] = []
    for heading, run in _absorb_fragments(passages, min_chars, max_chars, page, says):
        label = next((p.label for p in run if p.label), "")
        chunk_heading = f"{heading} > {label}" if label and heading else (label or heading)
        text = "\n\n".join(p.text for p in run)
        chunks.append(
            Chunk(
                source=doc.source,
                heading=chunk_heading,
                line_start=run[0].line_start + 1,
                line_end=run[-1].line_end + 1,
                text=text,
                content_hash=hashlib.sha256(f"{chunk_heading}\n{text}".encode()).hexdigest(),
                page=doc.pages[run[0].line_start] if doc.pages else None,  # a PDF passage: its first page
            )
        )
    return chunks


def _absorb_fragments(passages: list[tuple[str, list[_Piece]]], min_chars: int, max_chars: int,
                      page: Callable[[int], int | None],
                      says: Callable[[_Piece], bool]) -> list[tuple[str, list[_Piece]]]:
    """Last pass: a prose passage still under ``min_chars`` (one that `_pack` could not place
    within its own chapter) joins the passage before or after it when the two fit ``max_chars``.
    A code definition keeps its own passage, as it does everywhere."""
    def size(run: list[_Piece]) -> int:  # the length of the passage's text
        return sum(len(p.text) for p in run) + 2 * (len(run) - 1)

    def definition(run: list[_Piece]) -> bool:
        return any(p.is_code and p.label for p in run)

    out: list[tuple[str, list[_Piece]]] = []
    for heading, run in passages:
        if out:
            prev_heading, prev = out[-1]
            small = size(run) < min_chars or size(prev) < min_chars
            same_page = page(run[0].line_start) == page(prev[0].line_start)
            if small and same_page and not definition(run) and not definition(prev) and size(prev) + 2 + size(run) <= max_chars:
                out[-1] = (prev_heading if any(says(p) for p in prev) else heading, prev + run)
                continue
        out.append((heading, list(run)))
    return out
