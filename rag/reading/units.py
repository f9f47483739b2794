"""Answer units: the pieces of a passage that can stand in an answer on their own.

``split_units`` cuts a passage into units in reading order: a list item, a table row or
an unfenced line of code is one unit; the wrapped lines of a paragraph are joined and cut
into sentences. Both the extractive answer (rag/answer/extractive.py) and the index build
(rag/index/unit_vectors.py, which embeds every unit once so no question pays for it) use it, so
the two always agree on what a unit is.

What is never a unit that states something (kind ``sentence``, ``item``, ``row`` or
``code``):

* a heading: Markdown headings, and every line the chunker reads as a heading of plain-text
  notes (numbered questions such as "5.2.2 适配器微调思路?", short title lines); a heading
  names the topic of the units under it (``Unit.title``);
* a question: a sentence ending in "?"/"？" asks, it does not answer (one that asserts by
  denying the opposite, "…显存占用不就变小了吗？", is a sentence whole); what a rhetorical one
  states before it asks ("…，那就势必得从KV本身思考，有没有可能…？") is a sentence
  (``rag.reading.rhetorical``);
* a label: a list item of a few words with no explanation ("原始模型", "Prompt-tuning:") is
  kind ``label`` or ``lead``, shown only to introduce the units under it; so is an item
  that names the nested list right under it ("AUC(Area Under the Curve)" above "定义:…");
* a name on a line of its own ("AdaLoRA", "b. 软提示(Soft Prompts)", "优点" above its items) is a
  label too; a section numbered in Chinese numerals or with a dotted number ("四，MLA：…", "3.2 …")
  and a name numbered next after a numbered title are headings, commas or not;
* YAML front matter opening a note ("---", "tags: […]", "---") and HTML comments ("<!-- TODO -->"),
  which a Markdown reader never shows;
* fenced code, images, table rules, HTML pasted into a note ("<ol><li>…"), pieces that
  carry citation-like ``[3]`` marks, link lines and asides left over from the sentence before
  ("***(记住这句话就可以了)").

Invariant: ``Unit.text`` is, whitespace aside, a verbatim piece of the passage it came from,
so a citation after it points at a passage that says it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from rag.reading.rhetorical import stated_part
from rag.reading.structure import front_matter_end, heading_paths
from rag.core.text import FENCE, HAN_BASIC_CHAR

__all__ = ["Unit", "UnitKind", "split_units", "unit_key", "STATING", "cut_long", "join_lines"]

UnitKind = Literal["sentence", "item", "row", "lead", "label", "code"]
# Kinds that say something: what answers are made of. "lead" (a line ending in a colon, a
# table's header row) and "label" (an item of a few words) only introduce what follows.
STATING: frozenset[str] = frozenset({"sentence", "item", "row", "code"})

# A unit longer than this is cut at a clause end (，；,;) before it; a sentence this long
# is usually several claims run together.
MAX_UNIT_CHARS = 220
# Units shorter than this say nothing alone.
MIN_UNIT_CHARS = 6
# A line ending in a colon ("缺点：", "以下是几种常用的方法：") introduces what follows: it is
# shown only before a unit it introduces, never for its own words (it repeats the question's).
MAX_LEAD_CHARS = 80
# A list item of at most this many words with no clause inside ("原始模型", "保持关键特征",
# "Prompt-tuning") names a point without making it; two Chinese characters count as a word.
# In the sample notes such items are labels whose explanation, if any, is the item below;
# the shortest items that say something ("秩太小会欠拟合", "推理时要合并权重") have 7-8 characters.
LABEL_MAX_WORDS = 3
# A passage begins with its section's heading line, and a merged passage holds its
# subsections' headings: a short line standing alone, not ending like a sentence.
TITLE_MAX_CHARS = 40
_SENTENCE_END_CHARS = tuple("。.！!？?；;：:，,")
_QUESTION_END = ("?", "？")
_CLAIM_PUNCT = re.compile(r"[。；;，,！!：:]")
_LETTERED = re.compile(r"^[a-zA-Z][.)]\s+")  # "b. AdaLoRA": a point lettered, not numbered
_NUMBERED_LINE = re.compile(r"^(\d{1,2})[.、．]\s*(?=\S)")
_STATED_BEFORE_LEAD = re.compile(r"(.+[。！!])\s*([^。！!]+[:：])$")
_CN_SECTION = re.compile(r"^(?:[一二三四五六七八九十]{1,3}[、，,.．]|\d{1,2}(?:\.\d{1,2})+\s)")
_LABEL_PUNCT = re.compile(r"[。.，,；;！!？?、（）()=]")
# A Chinese name and its English one in brackets: 18 such items in both corpora, every one a
# label or the lead of a list ("1. 准确率(Accuracy)", "b. 软提示(Soft Prompts)"); or after a space, two
# to five English words ("直接提示词注入 Direct prompt injection": m021's four attack names).
_NAMED_IN_ENGLISH = re.compile(r"[\u4e00-\u9fff]{2,12}\s*(?:[（(][A-Za-z][A-Za-z0-9 \-]*[)）]|"
                               r"[A-Za-z][A-Za-z0-9\-]*(?: [A-Za-z][A-Za-z0-9\-]*){1,4})")

ITEM = re.compile(r"^\s*(?:[-*+](?=\s)(?:\s*\[[ xX]\](?=\s))?|[•·▪●○◦]|\d{1,2}[.、)）](?!\d)|[（(]\d{1,2}[)）]|[一二三四五六七八九十]+[、.])\s*")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
# A unit must not carry "[3]" of its own: it would read as one of our citations.
_OWN_CITATION = re.compile(r"[\[【]\s*\d{1,3}\s*[\]】]")
# Sentence ends; not "；"/";", which join the parts of one statement ("…penalised; b = 0.75 is…"),
# and not an end inside quotes that the sentence goes on after: 诸如“前 5 个主题是什么？”之类的查询表现不佳。
# is one sentence (cut after the quote, its first half read as a question and was dropped). Nor the
# period of an initial ("Andrew Y. Ng"): "Hannun和Andrew Y." is no sentence. A period between two
# Chinese characters ends a sentence (translated notes: "…是常数.但是，Mamba 会让这些参数…").
_SENTENCE = re.compile(r".+?(?:[。！？!?]+(?![”’\"')）])|[。！？!?]+[”’\"')）]+(?=[\s。！？!?，,；;：:]|$)|(?<!\b[A-Z])\.(?=\s|$)|(?<=[\u4e00-\u9fff])\.(?=[\u4e00-\u9fff])|$)",
                       re.S)
_CLAUSE_END = re.compile(r"[，,；;：:、]")
# A line of code pasted into a note without a fence (common in .txt notes): a statement,
# not prose. Such lines are kept one by one, never run together into a "paragraph".
_CODE_LINE = re.compile(
    r"^(?:def |class |import |from [\w.]+ import |return\b|@\w|if __name__|for \w+(?:, ?\w+)* in |while |with |"
    r"try:|except\b|elif |else:|print\(|super\()|^[\w.\[\]]+\s*[+\-*/]?=\s*(?:\S|\S.*[^.。])$|[{};(]$|^[)\]}]"
)
# An argument list or call continued on the next line ("self, embed_size, heads,",
# "nn.Linear(embed_size, 4 * embed_size),"): identifiers and operators up to a trailing comma.
_CODE_CONTINUED = re.compile(r"^(?=.*(?:\w_\w|\w\())[\w.\[\]\s,*+\-/=()'\"]+,$")
# A piece of HTML pasted into a note ("<ol><li>…</li>", "<br>") is markup around text, not a statement.
_HTML_TAG = re.compile(r"</?(?:ol|ul|li|br|td|tr|th|table|div|span|p|font|center|details|summary)\b[^>]*>",
                       re.IGNORECASE)
_SPACE = re.compile(r"\s+")
# A unit that is mostly links points somewhere else; it says nothing itself.
LINK_SHARE = 0.5
_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)|https?://\S+")
_EMPHASIS = re.compile(r"[*_~`]+")
# One word of code cut from a call or statement over lines ("embed_size,", "assert ("); a parameter list
# ("self, embed_size, heads, dropout,") names what a definition takes, and stays.
_LONE_WORD = re.compile(r"[\s(\[{]*[A-Za-z_][\w.]*\s*(?:[,;]|[(\[{])?")
_ASIDE = re.compile(r"[(（][^()（）]*[)）][。.]?")
# A paragraph that opens with a term in bold and a colon ("**均等大小的块**：最简单的方法是…") is an
# entry of a list written as paragraphs: its sentences are items, as a list item's are. dev-md
# 0.764 -> 0.769 (m011: "有哪些方法" now finds the methods), every other set unchanged (round 11).
_BOLD_TERM = re.compile(r"^\*\*[^*]{1,30}\*\*\s*[:：]\s*\S")
_LATIN_WORD = re.compile(r"[A-Za-z][\w\-]*")
# A short sentence that points at a figure or another article says nothing in a text answer: "整个多模态的
# 架构如下" (above an image), "上图展示了一个简单的例子。", "下一篇，我们看看流水线并行。".
POINTER_MAX_CHARS = 40
_POINTS_ELSEWHERE = re.compile(
    r"^(?:下一篇|下篇|下一节|下一章|下一期|上一篇|上篇|上图|下图|如图|见图)|(?:如下图|如下|下图|上图)(?:所示)?[:：。.!！]?$|"
    r"^(?:in the next (?:post|article|chapter|section)|the (?:figure|image|diagram) (?:below|above))|"
    r"(?:as shown|shown) (?:below|above)[:.]?$", re.IGNORECASE)
# Comments a Markdown reader hides: HTML's and Obsidian's, by what opens and closes them.
# A list mark alone on its line, its item's text on the next one (a web page or a document copied as
# text: "-" then "高效性:P-tuning v2在降低微调步数的同时…"). Joined, "-高效性:…" read as a sentence.
_LONE_MARK = re.compile(r"^[-*+•·▪●○◦]$")
_COMMENTS = {"<!--": "-->", "%%": "%%"}
# A line that is an HTML block tag of its own ("<details>", "<summary>…</summary>", "</div>") parts the
# paragraphs around it: the text under "<details>" is a paragraph, the tags are none.
_HTML_BLOCK_LINE = re.compile(r"^</?(?:details|summary|div|p|section|article|figure|figcaption|center|table|ul|ol)\b",
                              re.IGNORECASE)
# A blockquote's marks, and an Obsidian callout's type ("> [!note]", "> [!tip]-").
_QUOTE = re.compile(r"^(?:>\s?)+(?:\[![\w-]+\][+-]?\s*)?")


@dataclass(frozen=True)
class Unit:
    """One piece of a passage that can stand in an answer: verbatim text of passage ``n``."""

    n: int  # the passage's citation number
    order: int  # position in the passage (reading order)
    text: str
    kind: UnitKind
    depth: int = 0  # nesting of a list item (0: top level), kept when it is shown
    title: str = ""  # the heading line above it inside the passage ("" : the passage's own)
    # The headings that ``title`` sits under inside the passage, outermost first, " > "-joined:
    # "1. 操作位置与方式" is one point of the question "2、Prompt-tuning与Prefix-tuning区别" above it.
    outer: str = ""


def unit_key(text: str) -> str:
    """The identity of a unit's text, whitespace aside: how unit vectors are looked up."""
    return hashlib.blake2b(_SPACE.sub("", text).encode("utf-8"), digest_size=10).hexdigest()


def cut_long(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, ended at the last clause end before it."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _CLAUSE_END.finditer(head)]
    if ends and ends[-1] >= limit // 2:
        return head[: ends[-1]]
    return head


def join_lines(a: str, b: str) -> str:
    """Two wrapped lines of one paragraph: a space between Latin words, none in Chinese."""
    if not a:
        return b
    return a + ("" if HAN_BASIC_CHAR.match(a[-1]) or HAN_BASIC_CHAR.match(b[0]) else " ") + b


def _title_line(lines: list[str], i: int) -> bool:
    """A short line standing alone that names a topic ("2. 指数加权平均"); not one that states
    something ("描述：系统根据大模型的输出，选择不同的路径")."""
    line = lines[i].strip()
    alone = (i == 0 or not lines[i - 1].strip()) and (i + 1 >= len(lines) or not lines[i + 1].strip())
    bullet = line[:1] in "-*+•·▪●○◦"  # a bullet alone is a list item; a number alone ("2. 应用") a heading
    if not alone or bullet or line.startswith("|"):
        return False
    if line.endswith(_QUESTION_END):  # a question alone on its line heads the answer below it,
        return len(line) <= MAX_LEAD_CHARS and not stated_part(line)  # unless it states before it asks
    if len(line) > TITLE_MAX_CHARS or line.endswith(_SENTENCE_END_CHARS):
        return False
    # "四，MLA：山穷水尽疑无路，柳暗花明又一村", "3.2 对于需要很长对话的对话应用程序，总结或过滤以前的对话分段":
    # a section numbered in Chinese numerals or with a dotted number heads what follows, commas or
    # not (a Markdown heading whose "##" the loader took off).
    return _CN_SECTION.match(line) is not None or not _states(line)


def _states(line: str) -> bool:
    """A line that makes a claim: clause punctuation inside it, or a colon with text after it
    ("2. **减少过拟合**：权重衰减是一种正则化技术，…"). The chunker may still start a section at
    such a numbered line, but its words are an answer, not a heading."""
    body = ITEM.sub("", line, count=1).rstrip(":：?？ ")
    return bool(_CLAIM_PUNCT.search(body))


def _says_nothing(text: str) -> bool:
    """A link line ("GitHub: LLMForEverybody: https://github.com/…": links are ``LINK_SHARE`` of it or
    more), an aside left over from the sentence before it ("***(记住这句话就可以了)"): emphasis marks
    aside, all of it in brackets."""
    plain = _EMPHASIS.sub("", text).strip()
    links = sum(len(m.group(0)) for m in _LINK.finditer(plain))
    return bool(plain) and (links >= LINK_SHARE * len(plain) or _ASIDE.fullmatch(plain) is not None)


def _is_label(text: str) -> bool:
    """A few words and no clause: a name, not a statement; or a name with its English name
    ("重新参数化方法(Reparameterization Methods)", "召回率(Recall)")."""
    words = len(HAN_BASIC_CHAR.findall(text)) / 2 + len(_LATIN_WORD.findall(text))
    return ((words <= LABEL_MAX_WORDS and not _LABEL_PUNCT.search(text.rstrip(":：")))
            or _NAMED_IN_ENGLISH.fullmatch(text.rstrip(":：")) is not None)


def _names_sublist(text: str, indent: int, after: list[tuple[str, str, int]]) -> bool:
    """An item with a nested list right under it that makes no clause of its own
    ("- AUC(Area Under the Curve)" above "- 定义:…", "- 应用:…") names what its sub-items say."""
    nested = bool(after) and after[0][0] == "item" and after[0][2] > indent
    return (nested and len(text) <= TITLE_MAX_CHARS and not _CLAIM_PUNCT.search(text)
            and not text.endswith(_QUESTION_END))


def starts_in_code(lines: list[str]) -> bool:
    """Does the passage begin inside a fenced code block (the chunker cut it there)?

    Its fences cannot pair up from the top: their number is odd, and either an opening fence
    (one naming a language, "```python") falls where a closing one would, or the lines
    above the first fence are code. Read from the top, such a passage would take its code
    for prose and its prose for code.
    """
    fences = [i for i, line in enumerate(lines) if FENCE.match(line)]
    if len(fences) % 2 == 0:
        return False
    if any(lines[i].strip().strip("`~").strip() for i in fences[1::2]):
        return True  # a fence naming a language opens a block: at an odd place, the first one closes
    if lines[fences[0]].strip().strip("`~").strip():
        return False  # the first fence names a language: it opens
    before = [line.strip() for line in lines[: fences[0]] if line.strip()]
    code = sum(1 for line in before if not HAN_BASIC_CHAR.search(line) and _CODE_LINE.search(line))
    return bool(before) and code * 2 >= len(before)


def _blocks(text: str) -> tuple[list[tuple[str, str, int]], dict[int, str]]:
    """(kind, text, indent) blocks of a passage: "para" (wrapped lines joined), "item" (with
    its indented continuation lines), "row", "math" (a display formula, "$$ … $$"), "title"; code, table rules and images left out.
    With them, for each title block (by its place), the headings it sits under (``Unit.outer``)."""
    blocks: list[tuple[str, str, int]] = []
    outers: dict[int, str] = {}
    lines = text.split("\n")
    in_code = starts_in_code(lines)
    headings = heading_paths(text)
    next_number = ""  # the number a title numbered like the last one would carry ("3" after "2. 选择性方法")
    hidden_until = front_matter_end(lines)
    in_math = False
    closer = ""  # what ends the comment the line is in ("-->", "%%"); "" outside one
    marked = (-2, 0)  # (line, indent) of the last list mark alone on its line: the next line is its item
    for i, raw in enumerate(lines):
        opener = None if in_code or closer else next((o for o in _COMMENTS if raw.lstrip().startswith(o)), None)
        if i < hidden_until or closer or opener:
            # Front matter and comments: a Markdown reader never shows them ("<!-- TODO -->", "%% 私下 %%").
            rest = raw.lstrip()[len(opener):] if opener else raw
            if i >= hidden_until:
                closer = closer or _COMMENTS[opener]
                closer = "" if closer in rest else closer
            if blocks and blocks[-1][0] != "break":
                blocks.append(("break", "", 0))
            continue
        if FENCE.match(raw):
            in_code = not in_code
            continue
        line = raw.strip()
        if in_math or (not in_code and line.startswith("$$")):
            # A display formula is read whole: cut like prose, it gave "$$ y_3 =" as a claim.
            if not in_math:
                blocks.append(("math", "", 0))
            in_math = not (line.endswith("$$") and (in_math or len(line) > 2))
            blocks[-1] = ("math", join_lines(blocks[-1][1], line), 0)
            continue
        quoted = None if in_code else _QUOTE.match(line)
        if quoted:
            # A quoted line ("> 注：…", "> [!note] 标题") is read without its marks, each line on its own:
            # joined, two quoted lines would not be one verbatim piece of the passage.
            line = raw = line[quoted.end():].strip()
            if blocks and blocks[-1][0] != "break":
                blocks.append(("break", "", 0))
        if not in_code and _TABLE_RULE.match(line) and blocks and blocks[-1][0] == "row":
            blocks[-1] = ("header", blocks[-1][1], 0)  # the row above a table's rule names its columns
            continue
        in_list = i > 0 and ITEM.match(lines[i - 1].strip()) is not None  # "2. …" right under "- …"
        numbered = _NUMBERED_LINE.match(line)
        # "3. 重新参数化方法(Reparameterization Methods)" right under the list ending section 2 is the
        # next section's title: a name numbered next after a numbered title.
        next_title = (numbered is not None and numbered.group(1) == next_number
                      and _is_label(line[numbered.end():].strip()))
        if not in_code and line and ((i in headings and not _states(line) and not in_list) or _HEADING.match(raw)
                                     or _title_line(lines, i) or next_title):
            next_number = str(int(numbered.group(1)) + 1) if numbered else ""
            outers[len(blocks)] = " > ".join(headings.get(i, [])[:-1])
            blocks.append(("title", ITEM.sub("", line.lstrip("#").strip(), count=1), 0))  # never a unit
            continue
        if in_code or not line or _TABLE_RULE.match(line) or _IMAGE.fullmatch(line):
            # A paragraph ends here; an item ends too, unless this is a blank line inside it.
            if blocks and blocks[-1][0] != "break" and (line or blocks[-1][0] == "para"):
                blocks.append(("break", "", 0))
            continue
        if line.startswith("|"):
            blocks.append(("row", line.strip("|").strip(), 0))
            continue
        if _HTML_BLOCK_LINE.match(line):
            blocks += [("break", "", 0), ("para", line, 0), ("break", "", 0)]
            continue
        if not HAN_BASIC_CHAR.search(line) and (_CODE_LINE.search(line) or _CODE_CONTINUED.match(line)):
            blocks.append(("code", line, 0))
            continue
        marker = ITEM.match(line)
        indent = len(raw) - len(raw.lstrip())
        if _LONE_MARK.match(line):
            marked = (i, indent)
            continue
        if marked[0] == i - 1:
            blocks.append(("item", line, marked[1]))
        elif marker and marker.end() < len(line):
            blocks.append(("item", line[marker.end():].strip(), indent))
        elif blocks and (blocks[-1][0] == "para" or (blocks[-1][0] == "item" and raw[:1].isspace())):
            kind, before, at = blocks[-1]
            blocks[-1] = (kind, join_lines(before, line), at)
        else:
            blocks.append(("para", line, 0))
    kept = [j for j, b in enumerate(blocks) if b[0] != "break" and b[1]]
    return [blocks[j] for j in kept], {k: outers[j] for k, j in enumerate(kept) if j in outers}


def split_units(n: int, text: str) -> list[Unit]:
    """Passage ``text`` as units in reading order (see the module docstring for what is left out)."""
    units: list[Unit] = []
    blocks, outers = _blocks(text)
    indents = sorted({at for kind, _, at in blocks if kind == "item"})
    title = outer = ""

    def add(text: str, kind: UnitKind, depth: int = 0) -> None:
        if kind == "sentence" and len(text) <= POINTER_MAX_CHARS and _POINTS_ELSEWHERE.search(text):
            kind = "lead"  # "整个多模态的架构如下", "下一篇我们看看混合并行。": what it means is not here
        if kind in ("code", "sentence") and _LONE_WORD.fullmatch(text):
            return  # one word of code ("embed_size,", "assert ("): a piece of a statement cut over lines
        if (text and not _OWN_CITATION.search(text) and "![" not in text and not _HTML_TAG.search(text)
                and not _says_nothing(text)):
            units.append(Unit(n, len(units), text, kind, depth, title, outer))

    for j, (block, text, indent) in enumerate(blocks):
        if block == "title":
            title, outer = text, outers.get(j, "")
            continue
        if block == "math":  # a formula whole, or nothing: half a formula says nothing
            if len(text) <= MAX_UNIT_CHARS:
                add(text, "sentence")
            continue
        if block in ("row", "code"):
            if re.search(r"\w", text):  # not a bracket closing a call or a block (")", "})")
                add(text, block)
            continue
        if block == "header":  # shown above the rows chosen from its table, never alone
            add(text, "lead")
            continue
        depth = indents.index(indent) if block == "item" else 0
        if block == "item" and text.endswith((":", "：")) and len(text) <= MAX_LEAD_CHARS:
            # "- Prompt-tuning:" introduces the items after it; an item that says something first
            # ("Q4表示主量化位宽为4-bit，即…存储。常见的位宽包括：") is that statement, then the lead.
            said = _STATED_BEFORE_LEAD.match(text)
            if said and len(said.group(1)) >= MIN_UNIT_CHARS:
                add(said.group(1), "item", depth)
                add(said.group(2), "lead", depth)
            else:
                add(text, "lead", depth)
            continue
        if block == "item" and (_is_label(text) or _names_sublist(text, indent, blocks[j + 1:j + 2])):
            add(text, "label", depth)  # "- 原始模型": a name without its point
            continue
        if block == "item" and len(text) <= MAX_UNIT_CHARS and not text.endswith(_QUESTION_END):
            add(text, "item", depth)
            continue
        if block == "para" and _is_label(_LETTERED.sub("", text, count=1)) and not text.endswith(_SENTENCE_END_CHARS):
            add(text, "label")  # "AdaLoRA", "b. 软提示(Soft Prompts)" on a line of their own: a name
            continue
        # A long item, or a bold term's paragraph: its sentences, as items.
        kind: UnitKind = "item" if block == "item" or _BOLD_TERM.match(text) else "sentence"
        for m in _SENTENCE.finditer(text):
            sentence = m.group(0).strip()
            if sentence.endswith(_QUESTION_END):  # a question asks; it answers nothing...
                sentence = stated_part(sentence)  # ...but what it states before it asks does
                if not sentence:
                    continue
            if sentence.endswith((":", "：")) and len(sentence) <= MAX_LEAD_CHARS:
                add(sentence, "lead", depth)
            elif len(_EMPHASIS.sub("", sentence)) >= MIN_UNIT_CHARS:  # not "***成功！***"
                add(cut_long(sentence, MAX_UNIT_CHARS), kind, depth)
    return units
