"""Follow-ups that name a thing by its place in a list said earlier (rag/search/ordinals.py)."""
from __future__ import annotations

import pytest

from rag.search.conversation import Message
from rag.search.ordinals import LAST, listed, ordinal_asked, ordinal_question

AGENTS = [Message("user", "吴恩达提到的 Agent 设计范式有哪几种？"),
          Message("assistant", "有四种：Reflection、Tool use、Planning 和 Multi-agent collaboration。")]


@pytest.mark.parametrize("question, place", [("那第三种呢？", 3), ("其中第 2 项具体怎么做？", 2), ("最后一种呢？", LAST),
                                             ("What about the second one?", 2), ("And the last approach?", LAST),
                                             ("那第三呢？", 3)])
def test_the_place_a_follow_up_asks_about_is_read_from_its_words(question, place):
    asked = ordinal_asked(question)
    assert asked is not None and asked[0] == place


@pytest.mark.parametrize("question", ["第三方库怎么装？", "那它的缺点呢？", "What is the first step of RLHF training"])
def test_words_that_name_no_place_in_a_list_are_not_read_as_one(question):
    assert ordinal_asked(question) is None or ordinal_question(question, []) is None


def test_the_name_at_the_place_asked_takes_the_place_of_the_words_that_name_it():
    assert ordinal_question("那第三种呢，具体是怎么回事？", AGENTS) == "那Planning呢，具体是怎么回事？"
    assert ordinal_question("那最后一种呢？", AGENTS) == "那Multi-agent collaboration呢？"
    five = [Message("user", "做高效微调时，一般有哪些可以调整的关键手段？"),
            Message("assistant", "笔记里列了五项：冻结层、学习率调整、数据增强、早停策略和知识蒸馏。")]
    assert ordinal_question("其中第二项具体怎么做？", five) == "其中学习率调整具体怎么做？"
    english = [Message("user", "What are the steps?"), Message("assistant", "There are three: tokenize, embed and index.")]
    assert ordinal_question("What about the second one?", english) == "What about embed?"


def test_list_lines_of_an_earlier_answer_are_named_by_their_words_before_an_explanation():
    answer = ("常见的设计模式:\n- Agent范式一: Reflection [1]\n- Agent范式二: Tool use [1]\n"
              "- 学习率调整:可以使用较小的学习率来微调模型的较高层,以避免过大的参数更新。 [2]\n")
    assert listed(answer) == [["Agent范式一: Reflection", "Agent范式二: Tool use", "学习率调整"]]


def test_a_sentence_of_clauses_is_no_list_and_a_list_too_short_names_nothing():
    assert listed("这个方法很好，因为它简单，所以常用。") == []
    assert ordinal_question("那第五种呢？", AGENTS) is None  # four were listed


def test_the_earlier_question_lists_the_names_when_the_answer_does_not():
    history = [Message("user", "LoRA、AdaLoRA 和 QLoRA 分别是什么？"), Message("assistant", "它们都是参数高效微调方法。")]
    assert ordinal_question("第二个呢？", history) == "AdaLoRA呢？"
    assert ordinal_question("第三个呢？", history) == "QLoRA呢？"
    assert listed("常用的方法包括LoRA、AdaLoRA和QLoRA三种。") == [["LoRA", "AdaLoRA", "QLoRA"]]
