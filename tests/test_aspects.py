"""An aspect a question names counts in the words notes say it with (rag/answer/aspects.py)."""
from __future__ import annotations

from rag.answer.aspects import aspect_glosses
from tests.conftest import answer_over


def test_an_aspect_word_is_glossed_with_its_group_and_other_words_are_not():
    glosses = aspect_glosses(["办法", "LoRA", "缺点"])
    assert "解决方案" in glosses["办法"] and "局限性" in glosses["缺点"]
    assert "LoRA" not in glosses and "办法" not in glosses["办法"]


def test_a_question_asking_for_a_way_out_is_answered_from_the_solutions_the_note_lists():
    text = ("JSON层级问题：大模型有时会在没有明确指示的情况下增加或减少嵌套层级，这会破坏预期的数据结构。\n\n"
            "这些情况都有可能让工作流失败。\n\n"
            "解决方案：\n\n- reflection：在模型输出前检查输出的结构，确保其符合预期的JSON Schema。\n"
            "- Hard code校验：在模型输出后校验结构，不符合就重试。")
    answer = answer_over(text, "模型输出格式不对时有什么兜底的办法？", "结构化输出", budget_chars=90)
    assert answer.text.startswith("解决方案：\n- reflection"), answer.text
