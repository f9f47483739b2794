"""Retrieval that respects the shape of the notes: lists read whole, navigation pages ranked low.

A small real index (the bundled e5 model, FAISS, BM25) over notes written to disk.
"""
from __future__ import annotations

import pytest

from rag.search.retrieval import Retriever
from tests.conftest import assert_chunk_spans, file_lines, indexed_notes

SUMMARY_ITEMS = ["增加式方法", "适配器", "软提示", "选择性方法", "重新参数化方法", "低秩分解", "混合微调"]

NOTES = {
    # A plain-text interview note with no blank lines, where a summary answer is a nested list.
    "面试题/微调面试题.txt": """微调面试题
3、全参数微调需要多少显存?
全参数微调要同时放下模型权重、梯度和优化器状态。以 Adam 为例，每个参数需要权重、梯度和两个动量，混合精度下大约是参数量的十六倍字节。
4、能不能总结一下各种参数高效微调方法
参数高效微调方法只调整模型中的少量参数，保持大部分预训练参数不变，以下是几种主要方法的总结:
1. 增加式方法(Additive Methods)
a. 适配器(Adapters)
- 原理:在每个 Transformer 层中插入可训练的适配器模块，先把特征投影到较小的维度，再投影回去。
- 特点:新增参数很少，能在保持性能的同时减少训练参数。
b. 软提示(Soft Prompts)
- 原理:在输入层加入可训练的虚拟标记，这些标记通过梯度下降更新。
- 应用:Prefix Tuning、P-Tuning 等。
2. 选择性方法(Selective Methods)
原理:只选择一部分参数进行微调，例如 BitFit 只修改偏置项。
3. 重新参数化方法(Reparameterization Methods)
a. 低秩分解(Low-Rank Decomposition)
- 原理:把权重更新分解成两个较小的矩阵，只训练这两个矩阵，例如 LoRA。
b. AdaLoRA
- 原理:自适应地调整不同模块的秩，进一步节省计算量。
4. 混合微调(Hybrid Fine-Tuning)
原理:结合上述多种方法的优点，例如同时使用适配器和 LoRA。
5、如何加快 RLHF 三个阶段的训练?
可以用更小的奖励模型、复用 SFT 模型的权重初始化奖励模型，以及用 DPO 这类直接偏好优化方法省掉奖励模型。
""",
    # A folder index page: nothing but links to other notes.
    "README.md": """# 笔记目录

- [微调面试题](面试题/微调面试题.txt)
- [参数高效微调方法总结](面试题/微调面试题.txt)
- [LoRA 与适配器](面试题/微调面试题.txt)
- [显存估算](面试题/微调面试题.txt)
- [RLHF 训练加速](面试题/微调面试题.txt)
- [混合微调](面试题/微调面试题.txt)
""",
    "量化.md": """# 模型量化

## INT8 量化

把 fp16 权重映射到 8 位整数，需要一个缩放因子和零点。按通道量化比按张量量化误差更小，常用于推理部署。
量化感知训练在训练时模拟量化误差，比训练后量化精度更高，但需要额外的训练成本。
""",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, embedder):
    return indexed_notes(tmp_path_factory.mktemp("shape"), NOTES, embedder)


@pytest.fixture(scope="module")
def retriever(settings, embedder) -> Retriever:
    return Retriever(settings, embedder)


def test_a_question_about_a_summary_list_gets_the_whole_list_in_one_hit(retriever, settings):
    hits = retriever.retrieve("各种参数高效微调方法可以怎么分类总结？", k=3).hits
    top = hits[0]
    assert top.source == "面试题/微调面试题.txt"
    assert all(item in top.text for item in SUMMARY_ITEMS), top.text
    lines = file_lines(settings.corpus_dir / top.source)
    first = next(i for i, ln in enumerate(lines, 1) if ln.startswith("4、能不能总结"))
    last = next(i for i, ln in enumerate(lines, 1) if ln.startswith("原理:结合上述多种方法的优点"))
    assert top.line_start <= first and top.line_end >= last
    # The list is one hit, not several pieces of it.
    assert sum("面试题/微调面试题.txt" == h.source and "适配器" in h.text for h in hits) == 1


def test_hits_read_as_whole_sections_keep_exact_line_spans(retriever, settings):
    for question in ("各种参数高效微调方法可以怎么分类总结？", "INT8 量化的缩放因子", "全参数微调需要多少显存"):
        for hit in retriever.retrieve(question, k=5).hits:
            assert_chunk_spans([hit.chunk], file_lines(settings.corpus_dir / hit.source))


def test_a_link_list_page_does_not_outrank_the_note_it_links_to(retriever):
    hits = retriever.retrieve("参数高效微调方法有哪些？", k=5).hits
    sources = [h.source for h in hits]
    assert sources[0] == "面试题/微调面试题.txt"
    assert "README.md" not in sources[:2]


def test_reading_whole_sections_can_be_turned_off(settings, embedder):
    off = Retriever(settings.model_copy(update={"expand_max_chars": 0}), embedder)
    on = Retriever(settings, embedder)
    question = "各种参数高效微调方法可以怎么分类总结？"
    assert len(off.retrieve(question, k=1).hits[0].text) < len(on.retrieve(question, k=1).hits[0].text)


def test_past_the_reading_budget_a_hit_is_the_passage_that_matched_not_its_whole_section(settings, embedder):
    question = "各种参数高效微调方法可以怎么分类总结？"
    whole = Retriever(settings, embedder).retrieve(question, k=1).hits[0]
    assert all(item in whole.text for item in SUMMARY_ITEMS)  # read whole: it fits the budget

    tight = Retriever(settings.model_copy(update={"expand_budget_chars": len(whole.text) - 1}), embedder)
    hit = tight.retrieve(question, k=1).hits[0]
    assert hit.source == whole.source and len(hit.text) < len(whole.text)
    assert whole.line_start <= hit.line_start and hit.line_end <= whole.line_end
    assert_chunk_spans([hit.chunk], file_lines(settings.corpus_dir / hit.source))
