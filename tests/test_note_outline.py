"""“总结一下《X》这篇笔记”: the note's outline, section by section, from that note alone."""
from __future__ import annotations

import pytest

from rag.answer.chat import ChatEngine
from rag.search.note_outline import OUTLINE_BUDGET_CHARS, summary_request
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes

QLORA = """# QLoRA 笔记

QLoRA 是一种把量化和 LoRA 结合起来的高效微调技术，显存占用很小。

## 1. 四位量化

QLoRA 把底座模型的权重量化成 4 位的 NormalFloat，再在上面训练 LoRA 适配器。
双重量化把量化常数本身也量化一次，每个参数再省约 0.37 位。

## 2. 分页优化器

分页优化器在显存不够时把优化器状态临时换到内存里，避免训练中途因显存峰值而中断。

## 3. 效果

在 48GB 的单卡上就能微调 65B 的模型，效果接近 16 位全量微调。
"""
OTHER = "# 混合精度\n\n混合精度训练用 FP16 存储激活和梯度，显存减半，需要损失缩放来防止下溢。\n"


@pytest.mark.parametrize("question, request_", [
    ("总结一下《QLoRA 笔记》这篇笔记", "QLoRA 笔记"), ("summarize my note on QLoRA", "QLoRA"),
    ("这篇笔记讲了什么？", ""), ("帮我概括《混合精度》", "混合精度"),
    ("QLoRA 的要点是什么？", None), ("总结一下LoRA的优缺点", None),
    # a summary word inside quotes is what the question talks about, not what it asks
    ("那篇讲缩放规律的笔记里，说明“靠观察归纳出来的规律未必可靠”的寓言是什么？", None),
    ("帮我总结“QLoRA”这篇笔记", "QLoRA"),
])
def test_a_whole_note_question_is_told_apart_and_the_note_it_names_kept(question, request_):
    assert summary_request(question) == request_


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder) -> ChatEngine:
    settings = indexed_notes(tmp_path_factory.mktemp("outline"), {"微调/qlora.md": QLORA, "混合精度.md": OTHER},
                             embedder, llm_backend="none")
    return ChatEngine(settings, Retriever.from_settings(settings, embedder), None)


@pytest.mark.parametrize("question", ["总结一下《QLoRA 笔记》这篇笔记", "Summarize my note qlora"])
def test_the_outline_cites_every_section_of_that_note_alone_in_its_order(engine, question):
    answer = engine.ask(question)
    assert answer.mode == "note-summary", answer.text
    assert {s.hit.source for s in answer.sources} == {"微调/qlora.md"}
    positions = [answer.text.find(h) for h in ("四位量化", "分页优化器", "效果")]
    assert -1 not in positions and positions == sorted(positions), answer.text
    assert "双重量化" not in answer.text or "4 位" in answer.text  # one sentence a section, the first
    assert len(answer.text) <= OUTLINE_BUDGET_CHARS
    assert answer.to_contract()["mode"] == "note_summary" and answer.to_contract()["note"] == "微调/qlora.md"


def test_a_note_named_by_its_topic_is_the_best_matching_note(engine):
    answer = engine.ask("总结一下关于混合精度的笔记")
    assert answer.mode == "note-summary" and answer.sources[0].hit.source == "混合精度.md", answer.text


def test_a_whole_note_question_naming_no_note_asks_which(engine):
    answer = engine.ask("这篇笔记讲了什么？")
    assert answer.mode == "not-in-notes" and "《" in answer.text and not answer.sources
