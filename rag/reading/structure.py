"""The structure of a note's lines: which lines are code, which are headings (Markdown, numbered
questions, short title lines), and the sections they open, each with its paragraph and code
blocks. ``rag.reading.chunking`` packs these blocks into passages; ``top_sections`` and
``heading_lines`` answer the same questions for whole-note answers and answer units.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from rag.core.text import FENCE, HAN_BASIC_CHAR


@dataclass
class Block:
    """Consecutive lines that belong together: a paragraph or a code block."""

    start: int  # 0-based line index
    lines: list[str]
    is_code: bool = False
    label: str = ""  # for code: the definition it holds, shown in the heading path

    @property
    def end(self) -> int:
        return self.start + len(self.lines) - 1

    @property
    def size(self) -> int:
        return sum(len(line) for line in self.lines) + len(self.lines)


@dataclass
class Section:
    heading: list[str]
    heading_line: int | None  # 0-based index of the heading line itself
    blocks: list[Block] = field(default_factory=list)


# YAML front matter (Obsidian, Hugo, Jekyll: "title:", "tags:") opening a note: its metadata, not its text.
_YAML_KEY = re.compile(r"^[\w\-]+\s*:")
FRONT_MATTER_MAX_LINES = 60


def front_matter_end(lines: Sequence[str]) -> int:
    """The index of the first line after YAML front matter opening ``lines`` ("---", "key: …" lines,
    "---" or "..."), or 0 where there is none (a rule above a paragraph is no front matter)."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or lines[first].strip() != "---":
        return 0
    for j in range(first + 1, min(len(lines), first + FRONT_MATTER_MAX_LINES)):
        if lines[j].strip() in ("---", "..."):
            body = [line.strip() for line in lines[first + 1:j] if line.strip()]
            return j + 1 if body and _YAML_KEY.match(body[0]) else 0
    return 0


# --- line classification ------------------------------------------------------------
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_NUMBERED = re.compile(r"^(\d{1,3}(?:\.\d{1,3})*)(、|[.．](?!\d)|\s)\s*(\S.*)$")
_CN_NUMBERED = re.compile(r"^(第[一二三四五六七八九十百\d]+[章节部分篇]|[一二三四五六七八九十]+[、.．])\s*\S")
_SENTENCE_END = re.compile(r"[。；;，,：:]\s*$")
_BULLET = re.compile(r"^\s*([•·\-*+]|\d+[.)、]|[a-zA-Z][.)])\s")
_CODE_START = re.compile(
    r"^\s*(import\s+\w|from\s+[\w.]+\s+import\b|def\s+\w+\s*\(|class\s+\w+|return\b|if\s.*:\s*$|"
    r"for\s.*:\s*$|while\s.*:\s*$|elif\b|else\s*:|try\s*:|except\b|with\s.*:\s*$|@\w+|"
    r"#include|public\s|private\s|function\s+\w+|const\s+\w+\s*=|let\s+\w+\s*=|var\s+\w+\s*=)"
)
_CODE_SHAPE = re.compile(r"(^\s*[\w.\[\]]+\s*[+\-*/]?=\s*\S)|([;{}]\s*$)|(\w\(.*\)\s*$)|(^\s*[)\]}],?\s*$)")


def is_code_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if HAN_BASIC_CHAR.search(stripped) and not stripped.startswith("#"):
        # Chinese prose; a CJK string inside real code usually sits in quotes.
        if not re.search(r"[\"'].*[\u3400-\u9fff].*[\"']", stripped):
            return False
    if _CODE_START.match(line) or _CODE_SHAPE.search(line):
        return True
    # Indented ASCII lines inside a run are continuation lines of code.
    return line.startswith("    ") and stripped.isascii()


def _heading_style(line: str, standalone: bool, dense: bool, next_line: str) -> tuple[str, str] | None:
    """(style, title) when the line is a heading of plain-text notes, else None.

    ``standalone``: blank lines (or the file's edge) on both sides. ``dense``: the note
    has almost no blank lines, so headings cannot be told apart by standing alone.
    """
    if line[:1].isspace() or len(line) > 80 or line[:1] in _NOT_TITLE_START:
        return None
    stripped = line.strip()
    m = _NUMBERED.match(line)
    if m:
        number, sep, title = m.groups()
        if _CODE_START.match(title) or "=" in title:
            return None
        depth = number.count(".") + 1
        style = f"dotted{depth}" if depth > 1 else {"、": "dun", " ": "space"}.get(sep, "dot")
        if not standalone:
            # "1、…" and "5.1.2 …" are headings wherever they stand; "1. …" may be a list item.
            next_is_item = bool(re.match(rf"^{int(number.split('.')[0]) + 1}[.．、]", next_line.strip()))
            if style == "dot" and (len(stripped) > 30 or _SENTENCE_END.search(title) or next_is_item):
                return None
            if style == "space" and not dense:
                return None
        return style, stripped
    if _CN_NUMBERED.match(line) and not _SENTENCE_END.search(line):
        return "cn", stripped
    if (
        (standalone or (dense and len(stripped) <= 12))
        and len(stripped) <= 30
        and re.search(r"[\w\u3400-\u9fff]", stripped)
        and not _SENTENCE_END.search(stripped)
        and not _BULLET.match(line)
        and not is_code_line(line)
        and not stripped.endswith(("?", "？"))
    ):
        return "title", stripped
    return None


def note_sections(lines: tuple[str, ...], infer_titles: bool = True) -> list[Section]:
    """Group lines into sections under their heading path, with paragraph and code blocks. Without
    ``infer_titles`` (a note whose markup marks every heading, ``Document.marked_headings``) only
    Markdown "#" lines are headings."""
    n = len(lines)
    blank = [not ln.strip() for ln in lines]
    code = code_mask(lines)
    body = [i for i in range(n) if not blank[i]]
    span = (body[-1] - body[0] + 1) if body else 1
    dense = sum(blank[body[0] : body[-1]]) < 0.1 * span if body else False
    stack: list[tuple[int, str, str, int]] = []  # (level, title, style, section index) of open headings
    sections = [Section([], None)]
    i = 0
    while i < n:
        line = lines[i]
        if blank[i]:
            i += 1
            continue
        if code[i]:
            j = i
            while j + 1 < n and (code[j + 1] or (blank[j + 1] and _code_continues(code, blank, j + 1))):
                j += 1
            sections[-1].blocks.append(Block(i, list(lines[i : j + 1]), is_code=True))
            i = j + 1
            continue
        md = _MD_HEADING.match(line)
        style_title = None
        if md:
            style_title = (f"md{len(md.group(1))}", md.group(2))
        elif infer_titles:
            standalone = (i == 0 or blank[i - 1]) and (i + 1 >= n or blank[i + 1])
            style_title = _heading_style(line, standalone, dense, lines[i + 1] if i + 1 < n else "")
        if style_title:
            style, title = style_title
            level = _heading_level(style, title, stack, sections)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title, style, len(sections)))
            sections.append(Section([entry[1] for entry in stack], i))
            i += 1
            continue
        # Prose: extends the paragraph that ends on the line above, or starts one.
        blocks = sections[-1].blocks
        if blocks and not blocks[-1].is_code and blocks[-1].end == i - 1:
            blocks[-1].lines.append(line)
        else:
            blocks.append(Block(i, [line]))
        i += 1
    return sections


def top_sections(lines: tuple[str, ...], infer_titles: bool = True) -> list[tuple[str, int, int]]:
    """(heading, first line, last line) of a note's top-level sections, 1-based, in order: the
    first heading level below what every section shares (a note's own title, usually).
    The text under the shared title, before the first top-level heading, is a section named "".
    When one section at that level holds ``DOMINANT_SHARE`` of the note's lines and has
    headings below it (a title line, then "5 大模型参数高效微调" over 5.1-5.8), its parts are
    the note's sections instead: its own text before them is a section under its heading."""
    sections = [s for s in note_sections(lines, infer_titles) if s.heading_line is not None or s.blocks]
    paths = [s.heading for s in sections if s.heading]
    depth = 0
    while paths and all(len(p) > depth for p in paths) and len({p[depth] for p in paths}) == 1:
        depth += 1
    out = _group_sections(sections, depth, None)
    total = sum(last - first + 1 for _, first, last in out)
    for name, first, last in out:
        if name and last - first + 1 >= DOMINANT_SHARE * total and sum(o[0] == name for o in out) == 1 and any(
                len(s.heading) > depth + 1 and s.heading[depth] == name for s in sections):
            return _group_sections(sections, depth, name)
    return out


# A top-level section holding this share of a note's lines is the note's body, not one part of it.
DOMINANT_SHARE = 0.8


def _group_sections(sections: list[Section], depth: int, inner: str | None) -> list[tuple[str, int, int]]:
    """Sections grouped by their heading at ``depth`` (one deeper under the heading ``inner``)."""
    out: list[tuple[str, int, int]] = []
    for s in sections:
        d = depth + 1 if inner is not None and len(s.heading) > depth and s.heading[depth] == inner else depth
        start = s.heading_line if s.heading_line is not None else s.blocks[0].start
        # "": the note's own intro; under ``inner``, its text before its parts is named by it.
        name = s.heading[d] if len(s.heading) > d else s.heading[d - 1] if d > depth else ""
        if not out or out[-1][0] != name or len(s.heading) == d + 1:
            out.append((name, start + 1, start + 1))
        if out:
            out[-1] = (out[-1][0], out[-1][1], max(out[-1][2], (s.blocks[-1].end if s.blocks else start) + 1))
    return out


def heading_lines(text: str) -> set[int]:
    """0-based indexes of the lines of ``text`` that the chunker reads as headings (Markdown,
    numbered questions, short title lines): what answers must never quote as a claim."""
    return set(heading_paths(text))


def heading_paths(text: str) -> dict[int, list[str]]:
    """Each heading line of ``text`` (0-based, as ``heading_lines``) with its heading path inside
    ``text``, outermost first: "1. 操作位置与方式" under "2、Prompt-tuning与Prefix-tuning区别" is
    ["2、Prompt-tuning与Prefix-tuning区别", "1. 操作位置与方式"]."""
    return {s.heading_line: s.heading for s in note_sections(tuple(text.split("\n"))) if s.heading_line is not None}


# Blockquotes, tables, images, HTML and formulas are content, never a plain-text heading.
_NOT_TITLE_START = (">", "|", "!", "<", "$")
_SINGLE_NUMBER_STYLES = ("dun", "dot", "space", "cn")


def _heading_level(style: str, title: str, stack: list[tuple[int, str, str, int]], sections: list[Section]) -> int:
    """Nesting depth of a new heading given the open ones (smaller is outer).

    Notes mix numbering styles freely ("4 …", "9. …", "3、…"), and concatenated
    question lists restart their numbers, so a single-number heading only nests
    under a different style when it starts a new list at 1 right below a short intro.
    """
    if style.startswith("md"):
        return int(style[2:])
    if style == "title":
        return 100  # short title lines sit below every numbered level
    if style.startswith("dotted"):
        return 10 + int(style[6:]) - 1
    parent = next((entry for entry in reversed(stack) if entry[2] in _SINGLE_NUMBER_STYLES), None)
    if parent is None:
        return 10
    if parent[2] == style:
        return parent[0]
    starts_list = re.match(r"^(1|一)[、.．\s]", title) is not None
    intro = sum(b.size for section in sections[parent[3] :] for b in section.blocks)
    if starts_list and intro < 400:
        return parent[0] + 1
    same_style = next((entry for entry in stack if entry[2] == style), None)
    return same_style[0] if same_style else min(e[0] for e in stack if e[2] in _SINGLE_NUMBER_STYLES)


def code_mask(lines: tuple[str, ...]) -> list[bool]:
    """Which lines are code: inside fences, or in runs of at least three code-looking lines."""
    n = len(lines)
    mask = [False] * n
    in_fence = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            mask[i] = True
            in_fence = not in_fence
        elif in_fence:
            mask[i] = True
    looks = [is_code_line(ln) for ln in lines]
    # "# comment" lines between code lines are code, not Markdown headings.
    for i, line in enumerate(lines):
        if not looks[i] and re.match(r"^\s*#+\s*\S", line) and line.isascii():
            prev = next((looks[j] for j in range(i - 1, -1, -1) if lines[j].strip()), False)
            nxt = next((looks[j] for j in range(i + 1, n) if lines[j].strip()), False)
            looks[i] = prev and nxt
    i = 0
    while i < n:
        if not looks[i] or mask[i]:
            i += 1
            continue
        j, count, last = i, 0, i
        while j < n and (looks[j] or not lines[j].strip() or lines[j].startswith((" ", "\t"))):
            if not lines[j].strip() and j + 1 < n and not lines[j + 1].strip() and not (j + 2 < n and looks[j + 2]):
                break  # two blank lines and no code after them end the run
            if looks[j]:
                count += 1
                last = j
            j += 1
        if count >= 3:
            for k in range(i, last + 1):
                mask[k] = True
        i = last + 1
    return mask


def _code_continues(code: list[bool], blank: list[bool], i: int) -> bool:
    while i < len(code) and blank[i]:
        i += 1
    return i < len(code) and code[i]
