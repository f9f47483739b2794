"""rag/core/text.py: the shared text rules, and proof that each agrees with the copy it replaces.

The "agrees with" tests compare against the copies still in other modules (issue 10 lists
them); once a module switches to rag.core.text, its comparison can go.
"""
from __future__ import annotations

import re

import pytest

from rag.core import text as T

QUESTIONS = [
    "混合精度训练有哪些优缺点？",
    "混合精度训练有 fp16 overflow 的问题吗",
    "What is prompt-tuning (指示微调)?",
    "投机解码（speculative decoding）是怎么加速推理的？",
    "How does LoRA reduce the number of trainable parameters?",
    "那它的缺点呢？",
    "",
    "12345",
    "豈 compatibility ideograph",
]


@pytest.mark.parametrize("text, lang", [
    ("混合精度训练有 fp16 overflow 的问题吗", "zh"),
    ("What is prompt tuning, in short (指示微调)?", "en"),
    ("What is prompt-tuning (指示微调)?", "zh"),  # 4 words against 4 characters: a tie goes to Chinese
    ("LoRA 为什么能加速训练？", "zh"),
    ("", "en"),
])
def test_the_language_is_the_script_that_carries_the_text(text, lang):
    assert T.detect_language(text) == lang


def test_latin_share_weighs_a_word_like_a_character():
    assert T.latin_share("投机解码（speculative decoding）是怎么加速推理的？") == pytest.approx(2 / 14)
    assert T.latin_share("How does it work") == 1.0 and T.latin_share("") == 0.0


def test_han_ranges_include_extension_a_and_compatibility_ideographs():
    assert T.has_han("㐀") and T.has_han("豈") and T.has_han("中")
    assert not T.has_han("かな") and not T.has_han("，。")  # kana and punctuation are not Han
    assert T.count_han("a中b文c") == 2
    assert T.CJK_OR_PUNCT_CHAR.match("，") and T.CJK_OR_PUNCT_CHAR.match("Ａ")


def test_sentence_splitting_is_lossless_and_keeps_the_space_with_the_next_sentence():
    text = "第一句。第二句！Is it? Yes. Next one here；最后"
    parts = T.split_sentences(text)
    assert "".join(parts) == text
    assert parts == ["第一句。", "第二句！", "Is it?", " Yes.", " Next one here；", "最后"]
    assert T.ends_sentence("结束了。”") and T.ends_sentence("Done.") and not T.ends_sentence("标题")


def test_citations_are_found_in_runs_and_never_in_code_indexes():
    assert T.cited_numbers("A [1][2] and B [1, 3] and C 【4】.") == [1, 2, 3, 4]
    assert T.cited_numbers("x[0] + a[i][1] is code") == []
    assert T.strip_citations("混合精度省显存 [1][2]。") == "混合精度省显存。"


def test_shingles_ignore_whitespace_and_short_texts_are_one_shingle():
    assert T.shingles("ab cd ef", 3) == T.shingles("abc\ndef", 3) == {"abc", "bcd", "cde", "def"}
    assert T.shingles("ab", 5) == {"ab"} and T.shingles("  ", 5) == set()
    assert T.containment(T.shingles("abcdefgh", 3), T.shingles("cdefg", 3)) == 1.0


def test_text_or_not_is_decided_by_control_characters():
    assert T.looks_like_text("正常的笔记\n\twith tabs\f")
    assert not T.looks_like_text("   ") and not T.looks_like_text("\x01\x02abc" * 10)


# --- agreement with the copies it replaces ----------------------------------------------------------
@pytest.mark.parametrize("question", QUESTIONS)
def test_prompting_uses_the_one_language_rule(question):
    from rag.answer.prompting import detect_language

    assert T.detect_language(question) == detect_language(question)


def test_a_sentence_end_inside_quotes_does_not_end_the_sentence():
    text = "诸如“数据中的前 5 个主题是什么？”之类的查询表现不佳。下一句。"
    assert T.split_sentences(text) == ["诸如“数据中的前 5 个主题是什么？”之类的查询表现不佳。", "下一句。"]


def test_the_citation_run_agrees_with_prompting():
    from rag.answer import prompting

    assert prompting._CITATION_RUN.pattern == T.CITATION_RUN.pattern


@pytest.mark.parametrize("data", ["正常的笔记", "\x01\x02abc" * 10, "a\tb\n"])
def test_looks_like_text_agrees_with_ingest(data):
    from rag.reading.ingest import _looks_like_text

    assert T.looks_like_text(data) == _looks_like_text(data)


def test_the_sample_notes_have_no_compatibility_ideographs(tmp_path):
    """So switching bm25/chunking/retrieval from HAN_BASIC to HAN changes no figure on them."""
    from tests.conftest import REPO_ROOT

    notes = sorted((REPO_ROOT / "corpus").glob("*.txt"))
    assert notes
    for note in notes:
        assert not re.search("[\uf900-\ufaff]", note.read_text(encoding="utf-8")), note.name


def test_word_chars_tell_two_texts_the_same_whatever_their_marks_and_spaces():
    assert T.word_chars("**相对位置编码**：") == T.word_chars("相对位置编码") == "相对位置编码"
    assert T.word_chars("[Load & Process](x), Split/Chunking") == "loadprocessxsplitchunking"
