"""The structure-aware chunker on notes written to disk, and on the real sample notes in corpus/.

Every test reads its note back through ingestion (`load_document`) and checks the chunks'
line spans against the file on disk.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.reading.chunking import Chunk, chunk_document
from rag.reading.ingest import Document, discover
from rag.reading.loaders import load_document
from rag.core.settings import Settings
from tests.conftest import REPO_ROOT, assert_chunk_spans, file_lines

TARGET, MAX, CODE_MAX = 500, 900, 1200


def chunk_file(tmp_path: Path, name: str, text: str, **sizes) -> tuple[list[Chunk], list[str]]:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    doc = load_document(path, name, 10**8)
    chunks = chunk_document(doc, sizes.get("target", TARGET), sizes.get("max", MAX), sizes.get("code_max", CODE_MAX),
                            sizes.get("min", 0))
    lines = file_lines(path)
    assert_chunk_spans(chunks, lines)
    return chunks, lines


def without_heading(chunk: Chunk, heading: str) -> list[str]:
    """The chunk's pieces without its section's heading line (the first passage of a section has it)."""
    pieces = chunk.text.split("\n\n")
    return pieces[1:] if pieces[0] == heading else pieces


def line_no(lines: list[str], text: str) -> int:
    """1-based number of the only line equal to ``text``."""
    found = [i + 1 for i, ln in enumerate(lines) if ln.strip() == text]
    assert len(found) == 1, (text, found)
    return found[0]


def containing(chunks: list[Chunk], text: str) -> list[Chunk]:
    return [c for c in chunks if text in c.text]


# --- headings ---------------------------------------------------------------------------
MARKDOWN = """# 大模型基础

这份笔记整理注意力和位置编码。

## 注意力

### 多头注意力

多头注意力把输入投影到多个子空间，每个头关注不同的模式。

### 缩放点积

点积除以根号 d，避免 softmax 饱和。

## 位置编码

正弦位置编码让模型知道词的顺序。

# 微调

全参数微调更新所有权重。
"""


def test_markdown_headings_give_heading_paths_and_spans_start_at_the_heading(tmp_path):
    chunks, lines = chunk_file(tmp_path, "基础.md", MARKDOWN)
    by_heading = {c.heading: c for c in chunks}
    assert set(by_heading) == {
        "大模型基础",
        "大模型基础 > 注意力 > 多头注意力",
        "大模型基础 > 注意力 > 缩放点积",
        "大模型基础 > 位置编码",
        "微调",
    }
    assert by_heading["大模型基础 > 注意力 > 缩放点积"].line_start == line_no(lines, "### 缩放点积")
    # A passage is the lines of its span: its own heading line, then its body.
    assert by_heading["大模型基础 > 注意力 > 缩放点积"].text == "缩放点积\n\n点积除以根号 d，避免 softmax 饱和。"
    assert by_heading["微调"].line_start == line_no(lines, "# 微调")
    assert by_heading["微调"].line_end == line_no(lines, "全参数微调更新所有权重。")
    # The heading is the passage's title, and it is part of what gets embedded.
    chunk = by_heading["大模型基础 > 位置编码"]
    assert chunk.title() == "大模型基础\n位置编码"
    assert chunk.embedding_text() == "大模型基础\n" + chunk.text and chunk.text.startswith("位置编码")


PLAIN_QUESTIONS = """大模型面试题

1、什么是 LoRA？

LoRA 在冻结的权重旁加低秩矩阵，只训练新加的矩阵。

2、LoRA 的训练步骤有哪些？

步骤如下：
1. 冻结原模型的权重。
2. 在注意力层旁加入低秩矩阵。
3. 只训练新加入的矩阵。

5.1.2 为什么要做层归一化

归一化让每层输入的分布稳定，训练更快收敛。

4 训练过程为什么需要 Mask 机制？

解码器训练时要遮住当前位置之后的词，否则模型会偷看答案。
"""


@pytest.mark.parametrize(
    "question, body",
    [
        ("1、什么是 LoRA？", "LoRA 在冻结的权重旁加低秩矩阵"),
        ("2、LoRA 的训练步骤有哪些？", "步骤如下："),
        ("5.1.2 为什么要做层归一化", "归一化让每层输入的分布稳定"),
        ("4 训练过程为什么需要 Mask 机制？", "解码器训练时要遮住当前位置之后的词"),
    ],
)
def test_numbered_questions_in_plain_text_start_chunks(tmp_path, question, body):
    chunks, lines = chunk_file(tmp_path, "面试题.txt", PLAIN_QUESTIONS)
    at = line_no(lines, question)
    [chunk] = [c for c in chunks if c.line_start <= at <= c.line_end]
    assert chunk.heading.split(" > ")[-1] == question
    assert body in chunk.text
    # Only this question's answer: no other question's body rides along.
    others = {"LoRA 在冻结", "步骤如下", "归一化让每层", "解码器训练时"} - {body[:5]}
    assert not any(other in chunk.text for other in others if not body.startswith(other))


def test_numbered_list_items_inside_an_answer_do_not_start_chunks(tmp_path):
    chunks, _ = chunk_file(tmp_path, "面试题.txt", PLAIN_QUESTIONS)
    [chunk] = containing(chunks, "步骤如下：")
    for item in ("1. 冻结原模型的权重。", "2. 在注意力层旁加入低秩矩阵。", "3. 只训练新加入的矩阵。"):
        assert item in chunk.text
        assert not any(item in c.heading for c in chunks)


# --- code -------------------------------------------------------------------------------
FENCED = '''# 实现

先看注意力的实现，注意 mask 的处理方式。

```python
class Attention:
    """Scaled dot-product attention."""

    def __init__(self, dim):
        # scale by sqrt(d)
        self.scale = dim ** -0.5

    def forward(self, q, k, v, mask=None):
        # scores: (batch, heads, q_len, k_len)
        scores = q @ k.transpose(-2, -1) * self.scale

        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = scores.softmax(-1)
        return weights @ v
```

mask 为 0 的位置在 softmax 之后权重为 0。
'''


def test_fenced_code_is_kept_whole_in_one_chunk(tmp_path):
    # Small sizes so that the prose around it would be split if the block were prose.
    chunks, lines = chunk_file(tmp_path, "attention.md", FENCED, target=200, max=300, code_max=1200)
    block = FENCED.split("\n\n", 2)[2].split("\n```\n", 1)[0] + "\n```"
    holders = [c for c in chunks if "```python" in c.text or "return weights @ v" in c.text]
    assert len(holders) == 1, [c.text[:30] for c in holders]
    [code] = holders
    assert block in code.text  # every line, indentation and inner blank lines included
    assert code.line_start == line_no(lines, "```python")
    assert lines[code.line_end - 1] == "```"
    assert "先看注意力的实现" not in code.text and "mask 为 0 的位置" not in code.text
    # "# scale by sqrt(d)" inside the fence is a comment, not a Markdown heading.
    assert all("scale by" not in c.heading and "scores:" not in c.heading for c in chunks)
    assert "class Attention" in code.heading


def test_oversized_code_splits_only_between_definitions(tmp_path):
    functions = [
        f'''def step_{i}(x):
    """Step {i} of the pipeline."""
    y = x * {i} + 1
    z = y ** 2 - {i}
    w = z / (y + 1)
    result = [w + k for k in range(10)]
    total = sum(result) + len(result) * {i}
    return total + helper(result, offset={i}, scale=0.5, clip=True)'''
        for i in range(6)
    ]
    text = "# 流水线\n\n```python\n" + "\n\n".join(functions) + "\n```\n"
    chunks, _ = chunk_file(tmp_path, "pipeline.md", text)
    assert len("\n\n".join(functions)) > CODE_MAX
    assert all(len(c.text) <= CODE_MAX for c in chunks)
    for i, function in enumerate(functions):
        holders = containing(chunks, function)  # each definition whole, in exactly one chunk
        assert len(holders) == 1
        assert holders[0].heading.endswith(f"def step_{i}")


UNFENCED = """Transformer 实现笔记

下面是前馈网络的实现，注意激活函数的位置。

import torch
import torch.nn as nn

class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.w2(torch.relu(self.w1(x)))

上面的实现里，d_ff 通常是 d_model 的四倍。
"""


def test_unfenced_python_code_is_recognised_and_kept_whole(tmp_path):
    chunks, lines = chunk_file(tmp_path, "ffn.txt", UNFENCED)
    code_lines = UNFENCED.split("\n")[4:15]
    [code] = containing(chunks, "class FeedForward(nn.Module):")
    assert code.text == "\n".join(code_lines)  # verbatim, indentation and the blank lines inside
    assert (code.line_start, code.line_end) == (line_no(lines, "import torch"),
                                                 line_no(lines, "return self.w2(torch.relu(self.w1(x)))"))
    assert "class FeedForward" in code.heading
    # The prose around it is not glued to the code.
    assert "前馈网络的实现" not in code.text and "四倍" not in code.text
    assert containing(chunks, "前馈网络的实现") and containing(chunks, "四倍")


def test_code_inside_prose_paragraphs_is_not_mistaken_for_code(tmp_path):
    text = "模型说明\n\n损失函数 = 交叉熵 + 正则项。\n学习率设置为 1e-4，batch size 为 32。\n训练 3 个 epoch。\n"
    chunks, _ = chunk_file(tmp_path, "说明.txt", text)
    assert len(chunks) == 1
    assert "损失函数" in chunks[0].text and "训练 3 个 epoch。" in chunks[0].text


# --- long prose ---------------------------------------------------------------------------
def _sentences(n: int) -> list[str]:
    return [f"第{i}句说明注意力机制的一个细节{'，并补充一些解释' * (i % 4)}。" for i in range(n)]


def test_long_single_line_paragraph_splits_at_sentence_boundaries(tmp_path):
    sentences = _sentences(150)
    paragraph = "".join(sentences)
    assert len(paragraph) > 4 * MAX
    chunks, lines = chunk_file(tmp_path, "长段落.txt", f"长段落\n\n{paragraph}\n")
    body = [c for c in chunks if "第" in c.text]
    assert len(body) >= 4
    assert all(len(c.text) <= MAX for c in chunks)
    row = line_no(lines, paragraph)
    assert all(c.line_end == row for c in body)
    for chunk in body:
        for piece in without_heading(chunk, "长段落"):
            assert piece.startswith("第") and piece.endswith("。"), piece[-20:]  # whole sentences
    # Nothing lost or repeated.
    assert "".join("".join(without_heading(c, "长段落")) for c in body) == paragraph


def test_long_english_paragraph_is_not_cut_mid_word(tmp_path):
    sentences = [f"Sentence number {i} explains how the attention weights are normalised by softmax." for i in range(60)]
    paragraph = " ".join(sentences)
    chunks, _ = chunk_file(tmp_path, "long.md", f"# Notes\n\n{paragraph}\n")
    assert len(chunks) >= 4 and all(len(c.text) <= MAX for c in chunks)
    for chunk in chunks:
        for piece in without_heading(chunk, "Notes"):
            assert piece.strip().startswith("Sentence number") and piece.endswith("softmax."), piece[-30:]
    # Nothing lost, and the spaces between sentences kept ("softmax. Sentence", not "softmax.Sentence").
    assert "".join("".join(without_heading(c, "Notes")) for c in chunks) == paragraph


def test_many_short_lines_pack_into_bounded_chunks_of_whole_lines(tmp_path):
    sentences = _sentences(80)
    chunks, lines = chunk_file(tmp_path, "多行.txt", "多行笔记\n\n" + "\n".join(sentences) + "\n")
    assert len(chunks) >= 3
    assert all(len(c.text) <= MAX for c in chunks)
    covered = [ln for c in chunks for ln in c.text.split("\n") if ln]
    assert covered == ["多行笔记"] + sentences  # each line whole, in order, exactly once


def test_tiny_sizes_still_bound_every_chunk(tmp_path):
    chunks, _ = chunk_file(tmp_path, "面试题.txt", PLAIN_QUESTIONS + "".join(_sentences(30)) + "\n",
                           target=40, max=60, code_max=80)
    assert all(len(c.text) <= 80 for c in chunks)
    assert all(len(c.text) <= 60 for c in chunks if "def " not in c.text)


# --- spans and hashes ------------------------------------------------------------------------
def test_crlf_and_blank_line_runs_keep_line_numbers_exact(tmp_path):
    text = "\r\n".join(MARKDOWN.replace("\n\n", "\n\n\n\n").split("\n"))
    chunks, lines = chunk_file(tmp_path, "crlf.md", text)
    chunk = next(c for c in chunks if c.heading.endswith("缩放点积"))
    assert chunk.line_start == line_no(lines, "### 缩放点积")
    assert lines[chunk.line_end - 1] == "点积除以根号 d，避免 softmax 饱和。"


def test_content_hash_ignores_position_but_not_text_or_heading(tmp_path):
    chunks, _ = chunk_file(tmp_path, "a.md", MARKDOWN)
    moved, _ = chunk_file(tmp_path, "b/moved.md", "\n\n\n" + MARKDOWN)
    assert [c.content_hash for c in chunks] == [c.content_hash for c in moved]
    assert [c.line_start + 3 for c in chunks] == [c.line_start for c in moved]
    assert all(re.fullmatch(r"[0-9a-f]{64}", c.content_hash) for c in chunks)
    assert len({c.content_hash for c in chunks}) == len(chunks)
    edited, _ = chunk_file(tmp_path, "c.md", MARKDOWN.replace("避免 softmax 饱和", "避免 softmax 过于尖锐"))
    changed = [a.heading for a, b in zip(chunks, edited) if a.content_hash != b.content_hash]
    assert changed == ["大模型基础 > 注意力 > 缩放点积"]
    renamed, _ = chunk_file(tmp_path, "d.md", MARKDOWN.replace("## 位置编码", "## 位置信息"))
    changed = [b.heading for a, b in zip(chunks, renamed) if a.content_hash != b.content_hash]
    assert changed == ["大模型基础 > 位置信息"]


def test_content_hash_is_stable_across_processes(tmp_path):
    chunks, _ = chunk_file(tmp_path, "a.md", MARKDOWN + UNFENCED)
    script = (
        "import json, sys\nfrom pathlib import Path\nfrom rag.reading.loaders import load_document\n"
        "from rag.reading.chunking import chunk_document\n"
        "doc = load_document(Path(sys.argv[1]), 'a.md', 10**8)\n"
        "print(json.dumps([c.content_hash for c in chunk_document(doc, 500, 900, 1200)]))\n"
    )
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.md")], capture_output=True,
                             text=True, check=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == [c.content_hash for c in chunks]


def test_chunk_id_names_source_lines_and_hash(tmp_path):
    chunks, _ = chunk_file(tmp_path, "sub/基础.md", MARKDOWN)
    chunk = chunks[1]
    assert chunk.id == f"sub/基础.md#L{chunk.line_start}-L{chunk.line_end}:{chunk.content_hash[:12]}"


def test_a_heading_only_note_is_one_passage_and_an_empty_one_none(tmp_path):
    chunks, lines = chunk_file(tmp_path, "h.md", "# 只有标题\n\n## 还是标题\n")
    [chunk] = chunks
    assert "只有标题" in chunk.text and "还是标题" in chunk.text
    assert (chunk.line_start, chunk.line_end) == (1, 3)


def test_a_one_line_note_is_a_passage(tmp_path):
    [chunk], _ = chunk_file(tmp_path, "short.md", "买牛奶 MILKMARKER\n")
    assert "MILKMARKER" in chunk.text and chunk.line_start == chunk.line_end == 1


# --- the real sample notes ------------------------------------------------------------------
CORPUS = sorted(discover(REPO_ROOT / "corpus", Settings().extensions))
_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import|return\b|self\.|[\w.\[\]]+ = |#|```|[)\]}])")


def test_corpus_has_sample_notes():
    assert len(CORPUS) >= 3


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_sample_note_chunk_invariants(path):
    s = Settings()
    doc = load_document(path, path.name, s.max_file_bytes)
    chunks = chunk_document(doc, s.chunk_target_chars, s.chunk_max_chars, s.code_max_chars)
    lines = file_lines(path, doc.encoding if doc.encoding != "utf-8-sig" else "utf-8-sig")
    assert len(lines) == len(doc.lines)
    assert chunks
    assert_chunk_spans(chunks, lines)  # spans inside the file, text found at those lines
    for a, b in zip(chunks, chunks[1:]):
        assert b.line_start >= a.line_end  # in file order, overlapping at most on one split long line
    for chunk in chunks:
        assert chunk.source == path.name
        assert len(chunk.text) <= s.code_max_chars
        if len(chunk.text) > s.chunk_max_chars:  # only code may exceed the prose limit
            code = [ln for ln in chunk.text.split("\n") if _CODE_LINE.match(ln)]
            assert len(code) >= len([ln for ln in chunk.text.split("\n") if ln.strip()]) // 2, chunk.text[:200]
        assert chunk.content_hash
    # Only short lines (headings of empty sections) may be missing from the passages.
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    text = "".join(squash(c.text) for c in chunks)
    headings = {h for c in chunks for h in c.heading.split(" > ")}
    lost = [ln for ln in doc.lines if ln.strip() and squash(ln) not in text and ln.strip() not in headings]
    assert all(len(ln) <= 80 for ln in lost), lost
    # Scraped-page chrome is not in any passage.
    for chunk in chunks:
        assert not any(ln.strip() in ("点赞", "收藏", "评论", "Bootstrap") for ln in chunk.text.split("\n"))


# --- passages worth reading --------------------------------------------------------------
DEEP = """# 优化器笔记

## Adam

### 优点

- 自适应学习率

### 缺点

- 可能不收敛

## SGD

**简介**

SGD 每次用一小批样本估计梯度，沿负梯度方向更新参数。它实现简单、内存占用小，是深度学习里最基础的优化方法。
批量越小，梯度估计的噪声越大，训练曲线越抖动；噪声有时能帮助跳出尖锐的极小值，但也会让收敛变慢。
学习率需要配合衰减策略手动调节，否则在接近极小值时会来回震荡，难以稳定下来。

## 参考

[1] [Adam 论文](https://arxiv.org/abs/1412.6980)
"""


def test_small_sections_join_their_parent_and_siblings_instead_of_standing_alone(tmp_path):
    chunks, lines = chunk_file(tmp_path, "优化器.md", DEEP, min=Settings().chunk_min_chars)
    [adam] = containing(chunks, "自适应学习率")
    # "优点" and "缺点" under "Adam" come back as one passage with their heading lines.
    assert "可能不收敛" in adam.text and "优点" in adam.text and "缺点" in adam.text
    assert adam.line_start <= line_no(lines, "## Adam") and adam.line_end >= line_no(lines, "- 可能不收敛")
    # A bold heading alone is not a passage: it reads with the paragraph under it.
    [sgd] = containing(chunks, "**简介**")
    assert "每次用一小批样本估计梯度" in sgd.text


def _fragment_has_no_room(chunks: list[Chunk], i: int, min_chars: int, max_chars: int) -> bool:
    """A passage under the floor is allowed only where neither neighbour could take it."""
    if len(chunks[i].text) >= min_chars:
        return True
    if any(re.match(r"^\s*(def|class|async def)\s", ln) for ln in chunks[i].text.split("\n")):
        return True  # a code definition keeps its own passage
    fits = lambda j: 0 <= j < len(chunks) and len(chunks[j].text) + len(chunks[i].text) + 2 <= max_chars  # noqa: E731
    return not fits(i - 1) and not fits(i + 1)


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_no_passage_is_below_the_floor_unless_the_note_is_smaller_or_no_neighbour_has_room(path):
    s = Settings()
    doc = load_document(path, path.name, s.max_file_bytes)
    chunks = chunk_document(doc, s.chunk_target_chars, s.chunk_max_chars, s.code_max_chars, s.chunk_min_chars)
    if sum(len(c.text) for c in chunks) < s.chunk_min_chars:
        assert len(chunks) == 1
        return
    for i in range(len(chunks)):
        assert _fragment_has_no_room(chunks, i, s.chunk_min_chars, s.chunk_max_chars), chunks[i].text[:80]


def test_a_tiny_note_is_one_passage_below_the_floor(tmp_path):
    [chunk], _ = chunk_file(tmp_path, "tiny.md", "# 待办\n\n买牛奶\n")
    assert chunk.text == "待办\n\n买牛奶"


def test_a_passage_opened_by_front_matter_is_named_by_its_first_heading(tmp_path):
    note = ("---\ntitle: KV cache notes\ntags: [llm, inference]\n---\n\n# KV cache\n\n"
            "The KV cache stores the keys and values of earlier tokens.\n\n## PagedAttention\n\n"
            "PagedAttention splits the KV cache into fixed-size blocks.\n")
    chunks, _ = chunk_file(tmp_path, "kv.md", note, min=200)
    assert [(c.heading, c.line_start) for c in chunks] == [("KV cache", 1)]


def test_an_html_pages_headings_are_its_marked_ones_not_short_lines_standing_alone():
    from rag.reading.loaders.html import HtmlLoader

    page = ("<html><body><h2>path.join([...paths])</h2><details><summary>History</summary><p>Added in: v0.1.16</p>"
            "</details><p>The path.join() method joins all given path segments together.</p></body></html>")
    doc = HtmlLoader().load_bytes(page.encode(), "path.html")
    assert doc.marked_headings
    assert {c.heading for c in chunk_document(doc)} == {"path.join([...paths])"}
    # The same lines in a text note: "History" standing alone heads what follows it, as a title line does.
    text = Document("path.md", doc.lines, "h", "utf-8")
    assert any(c.heading.endswith("History") or c.heading.endswith("Added in: v0.1.16") for c in chunk_document(text))
