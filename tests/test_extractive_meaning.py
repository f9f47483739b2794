"""Round 4 of the extractive answer (bench/README.md): what tells units apart when words cannot."""
from __future__ import annotations

import numpy as np
import pytest

import rag.answer.extractive as extractive
import rag.answer.opening as opening
from rag.answer.extractive import extract_answer
from rag.answer.prompting import number_sources
from rag.reading.chunking import Chunk
from rag.search.retrieval import Hit

_TEXT = ("这一节整理自论文原文。下面分几点说明。"
         "MAM Adapter 的特点是结构和普通适配器一样。"
         "MAM Adapter 的特点是掩码预测让表示更加鲁棒。")


def _similarity(texts):  # the question's vector is nearest the sentence about robust representations
    return np.array([0.9 if "鲁棒" in t else 0.8 for t in texts])


def test_meaning_tells_apart_units_that_all_hold_every_word_of_the_question():
    sources = number_sources([Hit(1, 1.0, Chunk("a.md", "MAM Adapter", 1, 3, _TEXT))])
    answer = extract_answer("MAM Adapter 的特点是什么？", sources, budget_chars=32, similarity=_similarity)
    assert "鲁棒" in answer.text and "普通适配器" not in answer.text, answer.text


def test_without_the_floor_on_meaning_such_units_are_taken_in_reading_order(monkeypatch):
    monkeypatch.setattr(extractive, "SEMANTIC_FLOOR", 0.0)  # words alone: a tie, the first one wins
    sources = number_sources([Hit(1, 1.0, Chunk("a.md", "MAM Adapter", 1, 3, _TEXT))])
    answer = extract_answer("MAM Adapter 的特点是什么？", sources, budget_chars=32, similarity=_similarity)
    assert "普通适配器" in answer.text and "鲁棒" not in answer.text, answer.text


_FABLE = ("火鸡与农场主理论是罗素提出的火鸡问题，讲农场里的火鸡把每天喂食当成定律。"
          "它提醒我们，靠有限观察归纳出来的定律可能在某一天被打破。")


def _fable_similarity(texts):  # the question's vector is a little nearer the sentence that points back
    return np.array([0.9 if t.startswith("它") else 0.88 for t in texts])


def test_an_answer_does_not_open_with_a_sentence_pointing_back_when_one_standing_alone_is_nearly_as_good():
    sources = number_sources([Hit(1, 1.0, Chunk("a.md", "火鸡与农场主理论", 1, 2, _FABLE))])
    answer = extract_answer("What does the fable warn us about?", sources, budget_chars=200, similarity=_fable_similarity)
    assert answer.text.startswith("火鸡与农场主理论是"), answer.text
    assert "它提醒我们" in answer.text  # still in the answer, after it


def test_without_that_rule_the_sentence_pointing_back_opens_it(monkeypatch):
    monkeypatch.setattr(opening, "FIRST_LINE_SHARE", 0.0)
    sources = number_sources([Hit(1, 1.0, Chunk("a.md", "火鸡与农场主理论", 1, 2, _FABLE))])
    answer = extract_answer("What does the fable warn us about?", sources, budget_chars=200, similarity=_fable_similarity)
    assert answer.text.startswith("它提醒我们"), answer.text


@pytest.mark.parametrize("opener", ["因此，靠有限观察归纳出来的定律可能在某一天被打破。",
                                    "我们看看罗素是怎么解这个问题的。"])
def test_an_answer_does_not_open_with_a_sentence_going_on_from_the_one_before_or_announcing_the_next(opener):
    text = "火鸡与农场主理论是罗素提出的火鸡问题，讲农场里的火鸡把每天喂食当成定律。" + opener
    sources = number_sources([Hit(1, 1.0, Chunk("a.md", "火鸡与农场主理论", 1, 2, text))])
    answer = extract_answer("What does the fable warn us about?", sources, budget_chars=200, similarity=_fable_similarity2)
    assert answer.text.startswith("火鸡与农场主理论是"), answer.text


def _fable_similarity2(texts):  # the question's vector is a little nearer the second sentence
    return np.array([0.88 if t.startswith("火鸡") else 0.9 for t in texts])
