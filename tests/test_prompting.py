"""Grounded prompt assembly, citation checking and follow-up rewriting (no model needed)."""
from __future__ import annotations

import re

import pytest

from rag.reading.chunking import Chunk
from rag.search.conversation import Message
from rag.answer.llm.base import estimate_tokens
from rag.answer.prompting import (
    NOT_COVERED,
    CitationFilter,
    build_answer_prompt,
    build_rewrite_prompt,
    detect_language,
    not_in_notes_text,
    number_sources,
    parse_rewrite,
    retrieval_only_text,
    validate_citations,
)
from rag.search.retrieval import Hit


def hit(rank: int, text: str, source: str = "notes/a.md", heading: str = "Training > Mixed precision",
        lines: tuple[int, int] = (10, 20)) -> Hit:
    return Hit(rank, 1.0 / rank, Chunk(source, heading, lines[0], lines[1], text))


PASSAGES = [
    hit(1, "混合精度训练用 FP16 存储激活和梯度，用 FP32 保存主权重。缺点是数值范围小，梯度容易下溢。", "train/混合精度.md",
        "混合精度训练 > 缺点", (3, 9)),
    hit(2, "Loss scaling multiplies the loss before backward so that small gradients survive in fp16.",
        "train/loss-scaling.md", "Loss scaling", (1, 4)),
    hit(3, "BM25 ranks passages by term frequency and inverse document frequency.", "retrieval/bm25.md", "", (7, 7)),
]


def user_body(prompt) -> str:
    return prompt.messages[-1].content


def test_passages_are_numbered_with_file_heading_and_lines():
    prompt = build_answer_prompt("混合精度训练有什么缺点？", number_sources(PASSAGES))
    body = user_body(prompt)
    assert [s.n for s in prompt.sources] == [1, 2, 3]
    assert "[1] train/混合精度.md › 混合精度训练 › 缺点 (lines 3–9)\n混合精度训练用 FP16" in body
    assert "[2] train/loss-scaling.md › Loss scaling (lines 1–4)" in body
    assert "[3] retrieval/bm25.md (lines 7–7)" in body  # no heading: no empty " › "
    # Passages in rank order, and the question after them.
    assert body.index("[1] ") < body.index("[2] ") < body.index("[3] ") < body.index("混合精度训练有什么缺点？")
    assert prompt.messages[0].role == "system"


def test_context_budget_cuts_a_long_passage_and_drops_what_does_not_fit():
    long_text = "".join(f"第{i}句话讲的是混合精度训练的一个细节。" for i in range(200))  # ~3,600 chars
    sources = number_sources([hit(1, long_text), *PASSAGES[1:]])
    prompt = build_answer_prompt("混合精度训练有哪些细节？", sources, context_chars=500)
    body = user_body(prompt)
    assert prompt.passage_chars <= 500
    assert prompt.truncated
    # The first passage is cut at a sentence end inside the budget, and says so.
    first = body.split("[1] ", 1)[1].split("\n", 1)[1].split("\n\n")[0]
    assert first.endswith("。 …") and len(first) <= 502
    assert long_text not in body
    # Nothing else fits beside it: it is the only passage shown, so the only one citable.
    assert [s.n for s in prompt.sources] == [1]
    assert "[2]" not in body


def test_budget_large_enough_keeps_every_passage_whole():
    prompt = build_answer_prompt("What is BM25?", number_sources(PASSAGES), context_chars=3000)
    assert not prompt.truncated
    assert prompt.passage_chars == sum(len(h.text) for h in PASSAGES)
    for h in PASSAGES:
        assert h.text in user_body(prompt)


def test_model_window_shrinks_passages_then_history():
    long_text = "Loss scaling keeps small fp16 gradients from underflowing to zero. " * 60  # ~4,000 chars
    history = [Message("user", "What is mixed precision? " * 20), Message("assistant", "It mixes fp16 and fp32. " * 20)]
    sources = number_sources([hit(1, long_text), *PASSAGES[1:]])
    unbounded = build_answer_prompt("And loss scaling?", sources, history, context_chars=3000)
    assert unbounded.tokens > 600
    prompt = build_answer_prompt("And loss scaling?", sources, history, context_chars=3000,
                                 max_prompt_tokens=600, count_tokens=estimate_tokens)
    assert prompt.tokens <= 600
    assert prompt.truncated and prompt.passage_chars < unbounded.passage_chars
    assert prompt.messages[-1].content.endswith("And loss scaling?")


@pytest.mark.parametrize(
    "question, language",
    [
        ("混合精度训练有什么缺点？", "zh"),
        ("混合精度训练里 FP16 和 BF16 有什么区别？", "zh"),
        ("What is the basic idea of prompt-tuning (指示微调) as described in the notes?", "en"),
        ("How does BM25 rank passages?", "en"),
    ],
)
def test_language_detection(question, language):
    assert detect_language(question) == language


def test_answer_language_instruction_follows_the_question():
    zh = build_answer_prompt("混合精度训练有什么缺点？", number_sources(PASSAGES))
    en = build_answer_prompt("What are the drawbacks of mixed precision?", number_sources(PASSAGES))
    assert zh.language == "zh" and "用中文回答" in zh.messages[0].content
    assert "问题：混合精度训练有什么缺点？" in user_body(zh)
    assert en.language == "en" and "same language as the question" in en.messages[0].content
    # Both demand citations and name the exact "not covered" reply.
    assert "[1]" in zh.messages[0].content and NOT_COVERED["zh"] in zh.messages[0].content
    assert "[1]" in en.messages[0].content and NOT_COVERED["en"] in en.messages[0].content


def test_history_goes_between_instructions_and_question():
    history = [Message("user", "什么是混合精度训练？"), Message("assistant", "用 FP16 和 FP32 混合训练。")]
    prompt = build_answer_prompt("它有什么缺点？", number_sources(PASSAGES), history)
    assert [m.role for m in prompt.messages] == ["system", "user", "assistant", "user"]
    assert prompt.messages[1].content == "什么是混合精度训练？"


# --- citations -------------------------------------------------------------------------
def test_invented_citation_is_removed_and_reported():
    check = validate_citations("Fp16 underflows [1]. Loss scaling fixes it [2][7]. BM25 is unrelated [7].", {1, 2, 3})
    assert check.text == "Fp16 underflows [1]. Loss scaling fixes it [2]. BM25 is unrelated."
    assert check.cited == [1, 2]
    assert check.invalid == [7]


@pytest.mark.parametrize(
    "raw, cleaned, cited, invalid",
    [
        ("梯度会下溢【1】，需要损失缩放[2，5]。", "梯度会下溢[1]，需要损失缩放[2]。", [1, 2], [5]),
        ("see [1, 3] and [3][1]", "see [1][3] and [3][1]", [1, 3], []),
        ("only invented [0] [4]", "only invented", [], [0, 4]),
        # Code and years are not citations.
        ("use `x[0]` and a[1][9] in 2023 [2023]", "use `x[0]` and a[1][9] in 2023 [2023]", [], []),
        ("an unfinished [2", "an unfinished [2", [], []),
    ],
)
def test_citation_forms(raw, cleaned, cited, invalid):
    check = validate_citations(raw, {1, 2, 3})
    assert (check.text, check.cited, check.invalid) == (cleaned, cited, invalid)


def test_streaming_filter_gives_the_same_text_however_the_answer_is_split():
    raw = "Fp16 underflows [1]. Loss scaling [2][7] helps【3】. Invented [9], and [1, 8]. Code x[0]. End [2"
    expected = validate_citations(raw, {1, 2, 3})
    for size in (1, 2, 3, 5, 7):
        f = CitationFilter({1, 2, 3})
        shown = "".join(f.feed(raw[i : i + size]) for i in range(0, len(raw), size)) + f.flush()
        assert shown == expected.text == f.text
        assert (f.cited, f.invalid) == (expected.cited, expected.invalid)


def test_streaming_filter_never_shows_an_invented_number():
    f = CitationFilter({1, 2})
    shown = []
    for piece in ["Claim ", "[", "7", "]", " and ", "[", "1", "]", "."]:
        shown.append(f.feed(piece))
        assert "[7" not in "".join(shown)
    shown.append(f.flush())
    assert "".join(shown) == "Claim and [1]."


# --- answers without a model -------------------------------------------------------------
def test_retrieval_only_answer_is_labelled_and_cites_shown_passages():
    sources = number_sources(PASSAGES)
    for language in ("zh", "en"):
        text = retrieval_only_text(sources, language)
        assert "retrieval-only" in text.lower()
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
        assert numbers == {1, 2, 3}
        assert validate_citations(text, {1, 2, 3}).invalid == []
        assert "(lines 3–9)" in text and "> 混合精度训练用 FP16" in text


def test_not_in_notes_message_matches_the_language():
    sources = number_sources(PASSAGES)
    assert not_in_notes_text(sources, "zh").startswith("你的笔记中没有涉及这个问题")
    assert not_in_notes_text(sources, "en").startswith("Your notes don't cover this")
    assert "[1] train/混合精度.md" in not_in_notes_text(sources, "en")
    assert not_in_notes_text([], "zh") == NOT_COVERED["zh"]


# --- follow-up rewriting ------------------------------------------------------------------
HISTORY = [Message("user", "MAM Adapter 是怎么做的？"), Message("assistant", "它为每个任务加适配器层，并引入掩码机制。")]


def test_rewrite_prompt_carries_the_conversation_and_the_follow_up():
    messages = build_rewrite_prompt("它有哪些特点？", HISTORY)
    assert messages[0].role == "system" and "改写" in messages[0].content
    assert "MAM Adapter 是怎么做的？" in messages[1].content
    assert messages[1].content.rstrip().endswith("追问：它有哪些特点？")


@pytest.mark.parametrize(
    "output, expected",
    [
        ("MAM Adapter 有哪些特点？", "MAM Adapter 有哪些特点？"),
        ("改写后的问题：“MAM Adapter 的特点有哪些？”\n", "MAM Adapter 的特点有哪些？"),
        # An answer instead of a question, in made-up words: not a rewrite.
        ("你可以在这里提到它是一个具有功能性的功能层，它可以为你们提供功能", None),
        # Switched language: the keyword index would miss the Chinese notes.
        ("What are the features of MAM Adapter?", None),
        ("", None),
        # Small models copy an earlier turn back (label included): that is not this question.
        ("用户: MAM Adapter 是怎么做的？", None),
        ("助手：它为每个任务加适配器层，并引入掩码机制。", None),
        ("它有哪些特点？", None),  # unchanged: nothing was resolved
        ("什么？", None),  # lost the question
        ("MAM Adapter 为每个任务加适配器层！", None),  # a statement, not a question
    ],
)
def test_parse_rewrite_keeps_only_faithful_rewrites(output, expected):
    assert parse_rewrite(output, "它有哪些特点？", HISTORY) == expected
