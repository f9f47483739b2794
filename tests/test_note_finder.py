"""“哪些笔记提到了 X？”: a list of notes, ranked by note, each listed once and cited."""
from __future__ import annotations

import json

import pytest

from rag.answer.chat import ChatEngine
from rag.search.note_finder import which_notes_topic
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes, rag_cli

NOTES = {
    "微调/LoRA.md": "# LoRA\n\nLoRA 冻结原模型权重，只训练两个低秩矩阵 A 和 B。\n\n## 秩\n\nLoRA 的秩 r 一般取 8 或 16。\n",
    "微调/QLoRA.md": "# QLoRA\n\nQLoRA 把底座模型量化到 4 位，再在上面训练 LoRA 适配器。\n",
    "混合精度.md": "# 混合精度\n\n混合精度训练用 FP16 存储激活和梯度，显存减半，需要损失缩放。\n",
    "RLHF.md": "# RLHF\n\nRLHF 先训练奖励模型，再用 PPO 优化策略模型。奖励模型学习人类的偏好排序。\n",
}


@pytest.mark.parametrize("question, topic", [
    ("哪些笔记提到了 LoRA？", "LoRA"), ("我的哪些笔记里有中文分词的内容？", "中文分词"), ("梯度裁剪在哪些笔记里出现过？", "梯度裁剪"), ("哪些笔记讲过内容审核？", "内容审核"),
    ("Which notes mention RLHF?", "RLHF"), ("list my notes about mixed precision", "mixed precision"),
    ("哪篇笔记讲了 KV Cache？", "KV Cache"), ("LoRA 是什么？", None), ("How does LoRA work?", None),
])
def test_a_which_notes_question_is_told_apart_and_its_topic_kept_whole(question, topic):
    assert which_notes_topic(question) == topic


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder) -> ChatEngine:
    settings = indexed_notes(tmp_path_factory.mktemp("which"), NOTES, embedder, llm_backend="none")
    return ChatEngine(settings, Retriever.from_settings(settings, embedder), None)


def test_the_notes_that_name_the_topic_are_listed_once_each_and_no_other(engine):
    answer = engine.ask("哪些笔记提到了 LoRA？")
    assert answer.mode == "which-notes"
    listed = [m.source for m in answer.notes]
    assert sorted(listed) == ["微调/LoRA.md", "微调/QLoRA.md"]
    assert listed[0] == "微调/LoRA.md"  # the note about LoRA before the note that uses it
    assert all(m.passages >= 1 for m in answer.notes)
    lines = answer.text.splitlines()[1:]
    assert [line.endswith(f"[{i}]") for i, line in enumerate(lines, 1)] == [True, True]
    assert [s.hit.source for s in answer.sources] == listed and answer.cited == [1, 2]
    contract = answer.to_contract("q1")
    assert contract["mode"] == "which_notes"
    assert [n["source"] for n in contract["notes"]] == listed and contract["notes"][0]["passages"] == answer.notes[0].passages


def test_a_topic_no_note_names_is_matched_by_meaning(engine):
    answer = engine.ask("Which notes talk about the reward model?")
    assert answer.mode == "which-notes" and answer.notes[0].source == "RLHF.md", answer.text


def test_an_english_topic_names_the_notes_that_say_it_in_chinese(engine):
    answer = engine.ask("Which notes mention quantization?")  # 量化 is in QLoRA.md only
    assert answer.mode == "which-notes"
    assert [m.source for m in answer.notes] == ["微调/QLoRA.md"], answer.text


def test_rag_ask_json_lists_the_notes(engine):
    settings = engine.settings
    res = rag_cli("ask", "Which notes mention QLoRA?", "--json", "--backend", "none", "--corpus",
                  str(settings.corpus_dir), "--index", str(settings.index_dir))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["mode"] == "which_notes" and [n["source"] for n in out["notes"]] == ["微调/QLoRA.md"]
