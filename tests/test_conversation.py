"""Which questions refer back to earlier turns (rag/search/conversation.py)."""
from __future__ import annotations

import pytest

from rag.search.conversation import is_followup


@pytest.mark.parametrize("question", [
    "那它的缺点呢？", "那个模型呢？", "这个方法有什么缺点？", "那种情况下呢？", "那些参数怎么设？", "优缺点呢？",
    "它有哪些特点？", "那在它基础上再把底座权重压到4位的那个版本呢？",
])
def test_a_question_that_points_back_without_naming_its_subject_is_a_follow_up(question):
    assert is_followup(question)


@pytest.mark.parametrize("question", [
    "那个在参数更新里把过去的梯度也带上、让优化过程像有惯性一样的方法，名字是从哪来的？",
    "那篇讲缩放规律的笔记里，用来说明归纳未必可靠的寓言是什么？",
    "这段注意力代码的 forward 里，是怎么把输入拆成多个头的？",
    "k、M、G、T、P 这些单位前缀分别代表多少？",
    "是否了解 triplet loss？它的功能是什么？",
    "有没有这样一组向量：矩阵作用上去之后它们只是被拉长或缩短，方向一点不变？",
])
def test_a_pointer_followed_by_a_description_that_names_its_subject_is_a_complete_question(question):
    assert not is_followup(question)


@pytest.mark.parametrize("question", [
    "什么是过去式越狱？", "什么是量化", "蒸馏是什么？", "什么是归一化？", "解释一下过拟合", "为什么要量化？",
    "量化有什么好处？",
])
def test_the_term_in_a_questions_subject_slot_names_its_subject_even_when_tagged_as_a_verb(question):
    # jieba tags 量化 and 蒸馏 as verbs, 过去式越狱 as time + suffix + verb: names_subject alone
    # read these as follow-ups, so after an unrelated exchange they searched the earlier topic.
    assert not is_followup(question)


@pytest.mark.parametrize("question", [
    "优缺点是什么？", "整个过程是什么？", "到底是什么？", "具体是怎么做的？", "第二步是什么？", "最后是什么？",
    "区别是什么？", "为什么？", "怎么做？",
])
def test_an_aspect_or_a_vague_word_in_the_subject_slot_still_refers_back(question):
    assert is_followup(question)


@pytest.mark.parametrize("question", [
    "其实 LoRA 的秩怎么选？", "尤其是长文本时 KV cache 为什么占显存？", "彼此独立的两个 GPU 怎么同步梯度？",
    "What is the difference between LoRA and AdaLoRA?",
])
def test_a_pointer_word_inside_a_longer_word_does_not_point_back(question):
    assert not is_followup(question)


@pytest.mark.parametrize("question", ["其作用是什么？", "此外还有吗？", "What is the difference between them?",
                                      "What are its drawbacks?"])
def test_a_pointer_word_of_its_own_still_points_back(question):
    assert is_followup(question)


@pytest.mark.parametrize("question, follow_up", [
    ("除了 PagedAttention，vLLM 还有哪些关键特性？", False), ("除了这部分，构造函数里还建了哪些层？", True),
    ("除了这个，还有别的吗？", True),
])
def test_besides_a_named_thing_a_question_naming_its_subject_is_complete(question, follow_up):
    assert is_followup(question) is follow_up


@pytest.mark.parametrize("question, follow_up", [
    ("Why is it worth studying scaling laws for AI models?", False),
    ("Is it possible to run a 70B model on one GPU?", False), ("Why is it slow?", True),
    ("Is it useful?", True), ("Is it worth it?", True),
])
def test_an_it_that_points_at_nothing_is_no_pointer(question, follow_up):
    assert is_followup(question) is follow_up
