"""Two-part questions (rag/answer/two_part.py): what each part asks, and an answer that cites a unit
for each part the passages cover, within the budget. Passages are written here; no embedder."""
from __future__ import annotations

import re

import pytest

import rag.answer.extractive as extractive
from rag.answer.extractive import _terms, extract_answer
from rag.answer.prompting import number_sources
from rag.answer.two_part import comparison_terms, part_terms, question_parts, side_by_side
from rag.reading.chunking import Chunk
from rag.search.retrieval import Hit

_CITE = re.compile(r"\[(\d{1,3})\]")


def sources(*passages: tuple[str, str]):
    """Numbered sources from (heading, text) pairs, the first ranked highest."""
    hits, line = [], 1
    for rank, (heading, text) in enumerate(passages):
        end = line + text.count("\n") + 1
        hits.append(Hit(rank + 1, 1.0 / (rank + 1), Chunk("note.md", heading, line, end, text)))
        line = end + 1
    return number_sources(hits)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def cited(text: str) -> list[tuple[str, int]]:
    """(the text a citation follows, its passage number)."""
    out, last = [], 0
    for m in _CITE.finditer(text):
        piece = re.sub(r"^[-*]\s+", "", text[last : m.start()].rsplit("\n", 1)[-1].strip())
        out.append((piece, int(m.group(1))))
        last = m.end()
    return out


def test_a_question_divides_between_its_clauses_or_between_the_things_it_names():
    assert question_parts("Softmax 函数有什么作用，它的概念来源于哪里？") == ["Softmax 函数有什么作用", "它的概念来源于哪里"]
    assert question_parts("DP 和 DDP 有什么区别？") == ["DP", "DDP 有什么区别？"]
    assert question_parts("LoRA 为什么能减少显存？") == []


def test_a_clause_that_asks_nothing_sets_the_scene_for_the_next_one_instead_of_being_a_part():
    assert question_parts("跟 AI 聊天聊得太久，前面的内容塞不进去了，一般有什么办法让它还能接着聊？") == []
    assert question_parts("做企业级 RAG 时，为什么文档很麻烦？为什么常转成 Json？") == [
        "做企业级 RAG 时 为什么文档很麻烦", "为什么常转成 Json"]
    assert question_parts("In Mamba, what does selectivity mean, and why does S4 lack it?") == [
        "In Mamba what does selectivity mean", "why does S4 lack it"]
    assert question_parts("Can LLaMA take arbitrarily long input sentences, at least in theory?") == []


def test_a_part_that_names_no_thing_of_its_own_is_told_by_the_aspect_it_asks():
    parts = part_terms("朴素模型并行是怎么切分模型的，它有什么缺点？", _terms)
    assert len(parts) == 2 and parts[1] == {"缺点"}, parts


def test_an_aspect_word_both_things_share_does_not_tell_them_apart():
    parts = part_terms("AdapterFusion 和 AdapterDrop 的思路有什么不同？", _terms)
    assert all("思路" not in p for p in parts), parts


def test_things_asked_side_by_side_are_told_from_things_asked_how_they_relate():
    assert side_by_side("DP 和 DDP 有什么区别？")
    assert side_by_side("TTFT 和 TPOT 分别指的是什么？")
    assert not side_by_side("微调方法中批处理大小、GPU 显存和速度之间是什么关系？")
    assert not side_by_side("X 是什么，有什么作用？")  # two clauses, one thing


def test_a_two_part_answer_cites_a_unit_for_each_part_even_when_one_parts_units_are_in_the_second_passage():
    first = ("朴素模型并行是指将模型层组分布在多个 GPU 上。\n\n每当数据进出时，会切换到与模型层相同的设备。\n\n"
             "数据从 3 层传输到 4 层时，需要从 GPU0 传输到 GPU1，这会带来通信开销。\n\n"
             "第 7 层完成时，通常需要将数据发送回标签所在的 0 层，然后计算损失。\n\n"
             "模型并行把一个 8 层模型垂直切成两半，0-3 层放在 GPU0 上，4-7 层放在 GPU1 上。")
    second = "***缺点***\n\n- 除了一个 GPU 之外，其他 GPU 在任何给定时刻都处于空闲状态\n- shared embeddings 可能需要在 GPU 之间来回复制"
    answer = extract_answer("朴素模型并行是怎么切分模型的，它有什么缺点？",
                            sources(("朴素模型并行", first), ("朴素模型并行 > 缺点", second)), budget_chars=180)
    assert any(n == 1 and "模型层组" in piece for piece, n in cited(answer.text)), answer.text
    assert any(n == 2 and "处于空闲状态" in piece for piece, n in cited(answer.text)), answer.text


def test_a_thing_set_side_by_side_is_answered_by_what_is_said_of_it_alone():
    first = ("- TTFT(Time To First Token)即首token延迟，指的是从输入到输出第一个token 的延迟\n"
             "- 延迟理论上即从输入到输出最后一个 token 的时间：Latency = (TTFT) + (TPOT) * (number of tokens)\n"
             "- 吞吐量 TPS 与 TTFT、TPOT 和 batch size 都有关系，TTFT 与 TPOT 越小越好")
    second = "- 每个输出 token 的延迟（不含首个Token）,Time Per Output Token (TPOT)，指的是第二个token开始的吐出速度"
    answer = extract_answer("TTFT 和 TPOT 分别指的是什么？", sources(("性能指标", first), ("术语", second)),
                            budget_chars=260)
    assert "第二个token开始的吐出速度" in answer.text, answer.text


def test_a_parts_sentence_comes_with_the_next_one_when_that_one_points_back():
    text = ("Prefix Tuning的核心思想是在模型的输入序列前添加一系列连续的任务特定向量。"
            "这些前缀向量是可训练的，预训练语言模型的其他参数则保持固定。"
            "Prefix Tuning的一个关键优势是它的参数效率。"
            "它只需要更新一小部分参数，即前缀向量，而不需要更新整个模型的参数。"
            "在实际应用中，Prefix Tuning已被证明在文本生成、摘要生成等任务中有效。")
    answer = extract_answer("Prefix Tuning 的核心思想是什么，有什么优势？", sources(("技术解读", text)), budget_chars=170)
    assert "关键优势是它的参数效率" in answer.text, answer.text
    assert "只需要更新一小部分参数" in answer.text, answer.text


def test_a_unit_that_says_the_parts_word_comes_before_one_only_under_a_heading_that_says_it():
    text = ("Triplet Loss是深度学习中的一种重要损失函数，用于度量学习。\n\n"
            "Triplet Loss旨在最小化锚点与正样本之间的距离，同时最大化锚点与负样本之间的距离。\n\n"
            "- 人脸识别：Triplet Loss最早被应用于人脸识别领域。\n"
            "- 人员重新识别：Triplet Loss可在不同摄像机视图中识别同一个人。\n\n"
            "功能：\n\n- 区分细微差异：Triplet Loss擅长区分视觉上非常相似但属于不同类别的样本。")
    answer = extract_answer("是否了解 triplet loss？它的功能是什么？",
                            sources(("是否了解triplet loss,以及它的功能是什么", text)), budget_chars=200)
    assert "区分细微差异" in answer.text, answer.text


@pytest.mark.parametrize("budget", [80, 150, 300, 500])
def test_a_two_part_answer_stays_within_the_budget_and_every_citation_points_at_a_passage_that_says_it(budget):
    first = ("DP是将模型的副本分布到单机多卡上，每个卡都有一个模型副本，然后每个卡都会处理不同的数据子集。\n\n"
             "DDP是将模型的副本分布到多台机器上，每台机器上有多个卡。\n\n在每个训练步骤结束时，所有卡都会同步模型参数。")
    second = "- DP 只用单机多卡，DDP 用多台机器\n- DDP 随着数据量的增大更有效率，它适合数据量大的训练"
    given = sources(("DP & DDP", first), ("对比", second))
    answer = extract_answer("DP 和 DDP 有什么区别？", given, budget_chars=budget)
    assert answer.text and len(answer.text) <= budget, answer.text
    passages = {s.n: squash(s.hit.text) for s in given}
    for piece, n in cited(answer.text):
        assert squash(piece) in passages[n], (piece, n)


def test_the_word_asking_for_the_comparison_says_what_is_wanted_not_what_it_is_about(monkeypatch):
    asked = "AdapterFusion 和 AdapterDrop 的思路有什么不同？"
    assert comparison_terms(asked, _terms(asked)) == {"不同"}
    assert comparison_terms("不同任务的适配器怎么融合？", _terms("不同任务的适配器怎么融合？")) == set()
    # "适应不同任务" shares the comparison word only: the unit stating AdapterDrop's idea comes first.
    text = ("AdapterDrop 特点\n\n- 鲁棒性:AdapterDrop 使模型能够适应不同任务的变化和不确定性。\n\n"
            "AdapterDrop 思路\n\n- 随机丢弃:AdapterDrop 在训练中以一定的概率随机丢弃适配器层。\n\n"
            "AdapterFusion 思路\n\n- 适配器融合:AdapterFusion 把不同任务适配器层的输出融合成一个表示。")
    sources = number_sources([Hit(1, 1.0, Chunk("a.txt", "Adapter", 1, 9, text))])
    answer = extract_answer(asked, sources, budget_chars=90).text
    assert "以一定的概率随机丢弃" in answer and "适应不同任务" not in answer, answer
    monkeypatch.setattr(extractive, "comparison_terms", lambda question, terms: set())
    assert "适应不同任务" in extract_answer(asked, sources, budget_chars=90).text  # counted, it took AdapterDrop's place


def test_things_set_side_by_side_count_as_said_by_the_items_under_a_lead_naming_them(monkeypatch):
    # "- 根据随机丢弃的适配器层进行微调" says it of AdapterDrop, whose name is in the line introducing it.
    text = ("AdapterDrop 思路\n\nAdapterDrop 的思路可以概括如下:\n- 训练:根据随机丢弃的适配器层进行微调。\n\n"
            "其他\n\n- 计算量:AdapterDrop 可以减少计算量。\n\n"
            "AdapterFusion 思路\n\n- 融合:AdapterFusion 把各任务适配器层的输出加权融合。")
    sources = number_sources([Hit(1, 1.0, Chunk("a.txt", "Adapter", 1, 9, text))])
    asked = "AdapterFusion 和 AdapterDrop 的区别是什么？"
    answer = extract_answer(asked, sources, budget_chars=110).text
    assert "根据随机丢弃的适配器层进行微调" in answer and "减少计算量" not in answer, answer
    monkeypatch.setattr(extractive, "side_by_side", lambda question: False)
    assert "减少计算量" in extract_answer(asked, sources, budget_chars=110).text  # the item naming it won
