"""An English question's words in Chinese (rag/search/glossary.py), with the packaged CC-CEDICT."""
from __future__ import annotations

import logging

import pytest

from rag.answer.extractive import extract_answer
from rag.answer.prompting import number_sources
from rag.index.bm25 import BM25Index, tokenize
from rag.reading.chunking import Chunk
from rag.search.glossary import Glossary, english_glosses, load_glossary, packaged_cedict
from rag.search.retrieval import Hit, Retriever
from tests.conftest import indexed_notes


def test_the_packaged_dictionary_is_found_and_gives_the_chinese_words_of_english_ones():
    assert packaged_cedict() is not None
    glosses = load_glossary("packaged").chinese_for("Why keep a copy of the weights and scale the loss up?")
    assert "权重" in glosses["weights"]  # the plural is looked up as "weight"
    assert "损失" in glosses["loss"]
    assert "副本" in glosses["copy"]
    assert "why" not in glosses and "the" not in glosses  # function words get nothing of their own


def test_a_phrase_gives_its_chinese_words_to_each_of_its_words():
    glosses = load_glossary("packaged").chinese_for("divided by the square root of the dimension")
    assert "平方根" in glosses["square"] and "平方根" in glosses["root"]
    assert "维度" in glosses["dimension"]
    hyphenated = load_glossary("packaged").chinese_for("supervised fine-tuning")
    assert "微调" in hyphenated["fine-tuning"]  # tokenize keeps the hyphenated word whole too


def test_a_plural_loses_es_only_after_a_hissing_sound_so_notes_is_not_not():
    glosses = load_glossary("packaged").chinese_for("What do my notes say about the boxes?")
    assert "不是" not in glosses.get("notes", ()) and "笔记" in glosses["notes"]  # "notes" is no "not"
    assert "箱子" in glosses["boxes"]


def test_the_fields_words_come_before_the_general_dictionarys_for_a_sense_both_give():
    glosses = load_glossary("packaged").chinese_for("How is the model trained?")
    assert glosses["trained"] == {"训练"}  # not also 火车 (a train) or 列车
    assert glosses["model"] == {"模型"}  # not also 模特 (a fashion model)


def test_a_chinese_question_gets_no_glosses_its_english_terms_are_the_notes_own():
    assert english_glosses("LoRA 的权重可以合并到原模型吗？") == {}
    assert english_glosses("Can LoRA weights be merged into the base model?")["weights"]


def test_a_word_written_like_a_name_means_itself_and_is_not_glossed():
    glosses = english_glosses("Which notes mention WEIGHT, and why keep FP32 weights?")
    assert "weight" not in glosses and "fp32" not in glosses
    assert "权重" in glosses["weights"]


def test_none_turns_the_glossary_off():
    assert english_glosses("Can LoRA weights be merged into the base model?", "none") == {}


def test_a_users_own_cedict_file_is_read_and_only_whole_senses_count(tmp_path):
    path = tmp_path / "mine.u8"
    path.write_text("# a comment line\n"
                    "權重 权重 [quan2 zhong4] /weight (i.e. importance attached to sth)/\n"
                    "計算 计算 [ji4 suan4] /to count; to calculate/\n"
                    "重 重 [zhong4] /weight/\n", encoding="utf-8")
    glossary = Glossary.from_cedict(path)
    assert glossary.chinese_for("weights")["weights"] == {"权重"}  # the single character is left out
    assert glossary.chinese_for("calculate") == {}  # "to count; to calculate" is not the whole sense


def test_an_unreadable_dictionary_leaves_the_technical_terms_alone_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        glossary = load_glossary(str(tmp_path / "missing.u8"))
    assert "could not be read" in caplog.text
    assert glossary.chinese_for("weights") == {}  # CC-CEDICT's words are gone
    assert "嵌入" in glossary.chinese_for("embedding")["embedding"]


def test_the_technical_terms_add_what_the_dictionary_lacks_longer_words_included():
    glosses = load_glossary("packaged").chinese_for("Does retrieval-augmented generation reduce overfitting?")
    assert "过拟合" in glosses["overfitting"]
    assert "检索增强生成" in glosses["retrieval"] and "检索增强生成" in glosses["generation"]  # three words
    assert "链表" in load_glossary("packaged").chinese_for("a linked list")["linked"]


def test_the_chinese_words_of_one_english_word_count_once_in_the_keyword_ranking():
    bm25 = BM25Index.build([tokenize(t) for t in ("权重 重量 权重", "权重", "学习率")])
    both = bm25.best_of([["权重", "重量"]])
    assert both[0] == pytest.approx(max(bm25.scores(["权重"])[0], bm25.scores(["重量"])[0]))
    assert both[0] < bm25.scores(["权重", "重量"])[0]  # not the sum of the synonyms
    assert both[2] == 0.0


def test_an_english_question_takes_the_chinese_sentence_holding_its_words_in_translation():
    text = ("FP32 的位宽是 FP16 的两倍，计算更慢。"
            "权重备份：训练中保留一份FP32格式的模型参数副本，用于梯度更新。")
    sources = number_sources([Hit(1, 1.0, Chunk("a.md", "混合精度", 1, 2, text))])
    question = "Why keep an FP32 copy of the weights?"
    without = extract_answer(question, sources, budget_chars=40)
    glossed = extract_answer(question, sources, budget_chars=40, glosses=english_glosses(question))
    assert "位宽" in without.text  # words alone: "FP32" is all the two sentences share with it
    assert "副本" in glossed.text and "位宽" not in glossed.text, glossed.text


def test_an_english_question_lifts_the_chinese_note_that_says_it_in_the_keyword_ranking(tmp_path, embedder):
    notes = {
        "损失缩放.md": "# 训练技巧\n\n为防止梯度下溢，训练时先把损失放大，再把梯度缩小回原范围。\n",
        "学习率.md": "# 学习率预热\n\n训练开始时学习率从很小的值逐步增大到设定值。\n",
        "反向传播.md": "# 反向传播\n\nbackward pass 从输出层开始，按链式法则逐层计算梯度。\n",
    }
    settings = indexed_notes(tmp_path, notes, embedder)
    question = "Why is the loss scaled up before the backward pass?"

    def score(glossary: str) -> float:
        result = Retriever.from_settings(settings.model_copy(update={"glossary": glossary})).retrieve(question)
        return next(h.score for h in result.hits if h.source == "损失缩放.md")

    # 损失 (loss) and 放大 (scale up) now count as the question's words: measured 0.51 -> 0.93.
    assert score("packaged") > score("none") + 0.2


def test_the_idea_of_a_method_is_its_chinese_notes_si_lu():
    # "5.5.2 指示微调(Prompt-tuning)思路": interview notes call a method's idea 思路.
    assert load_glossary("packaged").chinese_for("What is the basic idea of prompt tuning?")["idea"] == {"思路"}
