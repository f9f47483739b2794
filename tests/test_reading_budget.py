"""The reading budget (issue 15, item 7): a long hit read whole does not crowd out the next
hits. Past the budget a long later hit is read as the window of it that matches the question
(rag/search/windows.py); the hit itself stays whole for the extractive answer and the display.

Pure functions over hand-made passages, plus one small real index (the bundled e5 model).
"""
from __future__ import annotations

import pytest

from rag.answer.prompting import build_answer_prompt, number_sources
from rag.evaluation import Gold, within_budget
from rag.index.bm25 import BM25Index, tokenize
from rag.reading.chunking import Chunk
from rag.search.retrieval import Hit, Retriever
from rag.search.windows import WINDOW_CHARS, best_window, fit_budget, line_scorer, question_terms, window
from tests.conftest import assert_chunk_spans, file_lines, indexed_notes

BUDGET = 3000
FILLER = "这一段讲的是与问题无关的内容，只是为了占满篇幅而写的一句话。"  # 31 characters


def filler_lines(n: int, tag: str) -> list[str]:
    return [f"{tag}{i}：{FILLER}" for i in range(n)]


def passage(source: str, lines: list[str], start: int = 1) -> Chunk:
    return Chunk(source, "", start, start + len(lines) - 1, "\n".join(lines))


def terms_of(question: str, passages: list[Chunk]) -> dict[str, float]:
    return question_terms(question, "", BM25Index.build([tokenize(p.text) for p in passages]), 0.5)


def hits_of(selected: list[tuple[int, Chunk]], read: list[Chunk]) -> list[Hit]:
    return [Hit(rank=r + 1, score=1.0, chunk=chunk, window=w if w is not chunk else None)
            for r, ((_, chunk), w) in enumerate(zip(selected, read))]


QUESTION = "梯度累积是怎么节省显存的？"
ANSWER = "梯度累积把一个大批次拆成几个小批次，逐个算梯度再累加，显存只需放下一个小批次。"


def crowded() -> tuple[list[Chunk], list[tuple[int, Chunk]]]:
    """Three hits: a long unrelated first one (1,900 characters), a long second one whose
    answer sits in its middle, and a short third one holding the gold."""
    first = passage("a.md", filler_lines(52, "甲"))
    middle = filler_lines(30, "乙") + [ANSWER] + filler_lines(30, "丙")
    second = passage("b.md", middle)
    third = passage("c.md", ["## 混合精度", "混合精度训练用半精度存激活值，也能省下显存。"])
    passages = [first, second, third]
    return passages, [(0, first), (1, second), (2, third)]


def test_a_long_first_hit_does_not_push_the_next_hits_out_of_three_thousand_characters():
    passages, selected = crowded()
    assert len(selected[0][1].text) + len(selected[1][1].text) > BUDGET  # whole, the third is never read
    read = fit_budget(selected, passages, terms_of(QUESTION, passages), BUDGET)
    hits = hits_of(selected, read)
    assert within_budget(hits, Gold(file="c.md", line_start=2, line_end=2))
    assert within_budget(hits, Gold(anchors=("梯度累积把一个大批次拆成几个小批次",)))
    assert not within_budget([Hit(h.rank, h.score, h.chunk) for h in hits], Gold(file="c.md", line_start=2, line_end=2))


def test_the_first_hit_and_hits_that_fit_are_read_whole():
    passages, selected = crowded()
    read = fit_budget(selected, passages, terms_of(QUESTION, passages), BUDGET)
    assert read[0] is selected[0][1]  # the first hit, however long
    assert read[2] is selected[2][1]  # short enough to be read as it is
    assert read[1] is not selected[1][1] and len(read[1].text) <= WINDOW_CHARS


def test_without_a_budget_every_hit_is_read_whole():
    passages, selected = crowded()
    read = fit_budget(selected, passages, terms_of(QUESTION, passages), 0)
    assert all(r is chunk for r, (_, chunk) in zip(read, selected))


def test_a_window_keeps_the_lines_that_match_the_question():
    passages, selected = crowded()
    second = selected[1][1]
    shown = window(second, [second], line_scorer(terms_of(QUESTION, passages)), WINDOW_CHARS)
    assert ANSWER in shown.text and len(shown.text) <= WINDOW_CHARS
    assert shown.source == second.source and second.line_start <= shown.line_start <= shown.line_end <= second.line_end


def test_the_line_numbers_of_a_window_match_its_text():
    passages, selected = crowded()
    second = selected[1][1]
    note = second.text.split("\n")
    shown = window(second, [second], line_scorer(terms_of(QUESTION, passages)), WINDOW_CHARS, note)
    assert_chunk_spans([shown], note)
    assert note[shown.line_start - 1] == shown.text.split("\n")[0]
    assert note[shown.line_end - 1] == shown.text.split("\n")[-1]


def test_a_window_of_a_note_whose_blank_lines_differ_from_the_text_still_finds_its_lines():
    # The loaders normalise blank lines: the passage's text and the note's lines differ in count.
    note = ["# 标题", ""] + [line for pair in zip(filler_lines(20, "丁"), [""] * 20) for line in pair] + [ANSWER]
    text = "\n".join(line for line in note[2:] if line)  # no blank lines in the passage's text
    chunk = Chunk("n.md", "标题", 3, len(note), text)
    shown = window(chunk, [chunk], line_scorer(terms_of(QUESTION, [chunk])), 200, note)
    assert ANSWER in shown.text
    assert_chunk_spans([shown], note)
    assert shown.line_end == len(note)


def test_a_window_of_a_section_read_whole_counts_lines_through_its_passages():
    one = passage("s.md", filler_lines(10, "戊"), start=1)
    two = passage("s.md", filler_lines(10, "己")[:5] + [ANSWER] + filler_lines(10, "庚"), start=13)
    section = Chunk("s.md", "", 1, two.line_end, one.text + "\n\n" + two.text)
    shown = window(section, [one, two], line_scorer(terms_of(QUESTION, [one, two])), 300)
    note = [""] * two.line_end
    for chunk in (one, two):
        note[chunk.line_start - 1: chunk.line_end] = chunk.text.split("\n")
    assert ANSWER in shown.text
    assert_chunk_spans([shown], note)


def test_the_matched_passage_of_a_section_guides_the_window_when_the_words_do_not():
    lines = filler_lines(40, "辛")
    focus = "\n".join(lines[25:32])
    first, last = best_window("\n".join(lines), line_scorer({}, focus), 300)
    assert first <= 25 and 31 <= last and last - first <= 8  # the matched lines, and little else


def test_the_answer_prompt_reads_the_window_under_its_own_lines_and_the_hit_stays_whole():
    passages, selected = crowded()
    read = fit_budget(selected, passages, terms_of(QUESTION, passages), BUDGET)
    hits = hits_of(selected, read)
    assert hits[1].text == selected[1][1].text  # what the extractive answer and the display read
    prompt = build_answer_prompt(QUESTION, number_sources(hits), context_chars=BUDGET)
    body = "\n".join(m.content for m in prompt.messages)
    assert ANSWER in body and "混合精度训练用半精度存激活值" in body
    assert f"(lines {hits[1].reading.line_start}–{hits[1].reading.line_end})" in body


# --- a small real index ----------------------------------------------------------------
NOTES = {
    "训练/显存.md": "# 训练显存\n\n" + "\n\n".join(
        f"## 第{i}部分\n\n" + "\n".join(filler_lines(12, f"段{i}-")) for i in range(4))
    + "\n\n## 梯度累积\n\n" + ANSWER + "\n",
    "训练/混合精度.md": "# 混合精度\n\n混合精度训练用半精度存激活值和梯度，主权重保留单精度，能省下显存。\n",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, embedder):
    return indexed_notes(tmp_path_factory.mktemp("budget"), NOTES, embedder)


def test_windows_read_by_a_real_retriever_lie_on_the_lines_they_show(settings, embedder):
    tight = Retriever(settings.model_copy(update={"context_chars": 400}), embedder)
    hits = tight.retrieve("训练时怎么节省显存？", k=5).hits
    windows = [h for h in hits if h.window is not None]
    assert windows, [len(h.text) for h in hits]
    for hit in hits:
        lines = file_lines(settings.corpus_dir / hit.source)
        assert_chunk_spans([hit.chunk], lines)
        assert_chunk_spans([hit.reading], lines)
        assert hit.reading.text in hit.text or hit.window is None
