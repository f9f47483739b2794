"""Round 4 of the extractive answer (bench/README.md): lines of code answer only questions about code."""
from __future__ import annotations

import numpy as np
import pytest

import rag.answer.extractive as extractive
from rag.answer.asking import asks_code
from rag.answer.extractive import extract_answer
from rag.answer.prompting import number_sources
from rag.reading.chunking import Chunk
from rag.reading.units import split_units
from rag.search.retrieval import Hit

_CODE_AND_PROSE = ("class TransformerBlock(nn.Module):\n"
                   "def __init__(\n"
                   "self, embed_size, heads, dropout,\n"
                   "nn.Linear(embed_size, 4 * embed_size),\n"
                   "):\n\n"
                   "Softmax 的输出接近 0 或 1 时梯度非常小，这是因为指数运算把差距放大了。")


def test_an_argument_list_continued_on_the_next_line_is_a_line_of_code():
    kinds = {u.text: u.kind for u in split_units(1, _CODE_AND_PROSE)}
    assert kinds["self, embed_size, heads, dropout,"] == "code"
    assert kinds["nn.Linear(embed_size, 4 * embed_size),"] == "code"
    assert kinds["Softmax 的输出接近 0 或 1 时梯度非常小，这是因为指数运算把差距放大了。"] == "sentence"


def test_prose_with_commas_is_not_taken_for_code():
    units = split_units(1, "LoRA, QLoRA, AdaLoRA,\n\nThe data covers (a, b),")
    assert [u.kind for u in units] != ["code", "code"]
    assert all(u.kind != "code" for u in units)


@pytest.mark.parametrize("question, about_code", [
    ("这段注意力代码的 forward 里，是怎么把输入拆成多个头的？", True),
    ("示例代码里 TransformerBlock 的 feed_forward 是什么结构？", True),
    ("除了这部分，构造函数里还建了哪些层？", True),
    ("如何实现 LRU 缓存？", True),
    ("How is quicksort implemented?", True),
    ("TCP 三次握手的过程是什么？", False),
    ("Why does that happen in the first place?", False),
    ("ReLU 函数有哪些优缺点？", False),
    ("为什么需要指示微调？", False),
])
def test_a_question_asks_about_code_when_it_names_code_or_spells_an_identifier(question, about_code):
    assert asks_code(question) is about_code


def _similarity(texts):  # a short line of code is often nearest an English question's vector
    return np.array([0.9 if t.startswith(("class", "def", "self", "nn.")) else 0.85 for t in texts])


def test_a_line_of_code_is_not_an_answer_to_a_question_that_is_not_about_code(monkeypatch):
    sources = number_sources([Hit(1, 1.0, Chunk("a.txt", "softmax", 1, 7, _CODE_AND_PROSE))])
    answer = extract_answer("Why does that happen in the first place?", sources, budget_chars=60,
                            similarity=_similarity, context="Softmax gradients vanish during backprop.")
    assert "指数运算" in answer.text and "`" not in answer.text, answer.text
    monkeypatch.setattr(extractive, "CODE_PENALTY", 0.0)  # meaning alone: the line of code
    answer = extract_answer("Why does that happen in the first place?", sources, budget_chars=60,
                            similarity=_similarity, context="Softmax gradients vanish during backprop.")
    assert answer.text.startswith("`"), answer.text


def test_a_question_about_code_still_gets_its_lines_of_code():
    sources = number_sources([Hit(1, 1.0, Chunk("a.txt", "TransformerBlock", 1, 7, _CODE_AND_PROSE))])
    answer = extract_answer("TransformerBlock 的构造函数里有哪些参数？", sources, budget_chars=200,
                            similarity=_similarity)
    assert "`self, embed_size, heads, dropout,` [1]" in answer.text, answer.text
