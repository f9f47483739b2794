"""Which scored units fit the budget, and the order they are shown in (rag/answer/selection.py)."""
from __future__ import annotations

import numpy as np

from rag.answer.rendering import render_units
from rag.answer.selection import Scored, arrange, take_within_budget
from rag.answer.unit_lists import introducer, leads_above
from rag.reading.units import STATING, split_units

_TEXT = ("LoRA 在模型旁路加入两个低秩矩阵，只训练它们。\n\n"
         "优点：\n\n- 显存占用小，单卡即可微调大模型\n- 推理时可以把权重合并回原模型\n\n"
         "秩越大，可训练参数越多，效果通常更接近全量微调。")


def _scored(scores: list[float]) -> tuple[Scored, list]:
    units = split_units(1, _TEXT)
    at = {(u.n, u.order): u for u in units}
    stating = [u for u in units if u.kind in STATING]
    score = np.array(scores)
    order = [int(i) for i in np.argsort(-score, kind="stable")]
    return Scored(stating, score, order, lambda u: introducer(u, at)), stating


def test_a_list_item_is_taken_with_the_line_introducing_its_list_and_shown_under_it():
    scored, stating = _scored([0.2, 1.0, 0.1, 0.1])  # the first item is the best unit
    chosen = take_within_budget(scored, [1], 500, ((0.45, 500),))
    shown = arrange(chosen, scored)
    assert [u.text for u in shown[:2]] == ["优点：", stating[1].text]


def test_nothing_is_taken_past_the_budget_and_a_best_unit_too_long_alone_is_cut():
    scored, stating = _scored([1.0, 0.9, 0.9, 0.9])
    chosen = take_within_budget(scored, [0], 40, ((0.0, 40),))
    assert len(render_units(arrange(chosen, scored))) <= 40 + 8  # markers: the caller drops the last to fit
    tiny = take_within_budget(scored, [0], 12, ((0.0, 12),))
    assert len(tiny) == 1 and tiny[0].text != stating[0].text and stating[0].text.startswith(tiny[0].text[:6])


def test_units_below_the_floor_are_left_out():
    scored, stating = _scored([1.0, 0.1, 0.1, 0.2])
    chosen = take_within_budget(scored, [0], 500, ((0.45, 500),))
    assert [u.text for u in chosen] == [stating[0].text]


def _scored_text(text: str, scores: list[float]) -> tuple[Scored, list]:
    units = split_units(1, text)
    at = {(u.n, u.order): u for u in units}
    stating = [u for u in units if u.kind in STATING]
    order = [int(i) for i in np.argsort(-np.array(scores), kind="stable")]
    return Scored(stating, np.array(scores), order, lambda u: introducer(u, at)), stating


def test_a_sentence_the_answer_already_says_with_a_word_or_two_more_or_less_is_said_once():
    text = ("注意：当ZeRO-DP与PP结合时，它通常只启用ZeRO第1阶段。\n\n当ZeRO-DP与PP结合时，它通常只启用ZeRO第1阶段。\n\n"
            "ZeRO第2阶段还会切分梯度，通信量随之增加。")
    scored, stating = _scored_text(text, [1.0, 0.9, 0.8])
    shown = [u.text for u in take_within_budget(scored, [0], 500, ((0.45, 500),))]
    assert shown == [stating[0].text, stating[2].text]


def test_a_sentence_that_a_shown_list_lead_repeats_is_left_for_the_list():
    text = ("对于企业级数据，我们需要关注以下两个阶段：加载与处理，分块\n\n## 难点\n\n对于企业级数据，我们需要关注以下两个阶段：\n\n"
            "- 加载与处理：数据的格式和结构各不相同，需要高效地加载。\n- 分块：将数据分割成多个部分，以便模型理解。")
    scored, stating = _scored_text(text, [1.0, 0.9, 0.8])
    shown = [u.text for u in take_within_budget(scored, [0], 500, ((0.45, 500),))]
    assert "对于企业级数据，我们需要关注以下两个阶段：加载与处理，分块" not in shown
    assert shown.count("对于企业级数据，我们需要关注以下两个阶段：") == 1 and stating[1].text in shown and stating[2].text in shown


def test_an_item_shown_after_another_lead_s_list_is_not_shown_as_one_of_its_items():
    text = ("Prefix-tuning:\n\n- 前缀向量附加到自回归过程的隐藏状态。\n\n## 应用场景\n\n"
            "- Prompt-tuning由于其灵活性,更适合频繁更改提示的场景。")
    units = split_units(1, text)
    at = {(u.n, u.order): u for u in units}
    lead_of = lambda u: introducer(u, at)  # noqa: E731
    lead, mine, other = units[0], units[1], units[2]
    assert lead.kind == "lead" and lead_of(mine) is lead and lead_of(other) is None
    shown = render_units([lead, mine, other], lead_of)
    assert shown.splitlines() == ["Prefix-tuning:", f"- {mine.text} [1]", f"{other.text} [1]"]
    assert render_units([lead, mine, other]).splitlines()[-1] == f"- {other.text} [1]"  # without leads known


def test_the_lines_above_an_item_are_the_label_or_lead_that_introduces_it_and_none_above_a_lead():
    units = split_units(1, "缺点：\n\n- 推理慢\n  - 每步都要重新计算注意力。\n- 显存占用大,长序列尤其明显。")
    at = {(u.n, u.order): u for u in units}
    lead, label, nested, plain = units
    assert [lead.kind, label.kind, nested.kind, plain.kind] == ["lead", "label", "item", "item"]
    assert leads_above(nested, lambda u: introducer(u, at)) == [label]
    assert leads_above(plain, lambda u: introducer(u, at)) == [lead]
    assert leads_above(lead, lambda u: introducer(u, at)) == []


def test_a_sentence_that_points_back_is_shown_right_after_the_sentence_it_points_at():
    text = ("AdapterFusion 为每个任务加适配器层。这种方法实现了任务之间的信息共享。\n\n"
            "AdapterDrop 在训练中随机丢弃适配器层。这种方法减少了计算量。")
    # The second sentences score higher than the first ones they point back at, and the two
    # things interleave by score: shown by score alone, "这种方法" would point at the wrong thing.
    scored, stating = _scored_text(text, [0.9, 0.5, 1.0, 0.6])
    shown = [u.text for u in arrange(take_within_budget(scored, [2], 500, ((0.0, 500),)), scored)]
    assert shown == [stating[2].text, stating[3].text, stating[0].text, stating[1].text], shown
    scored, stating = _scored_text(text, [1.0, 0.5, 0.9, 0.6])
    shown = [u.text for u in arrange(take_within_budget(scored, [0], 500, ((0.0, 500),)), scored)]
    assert shown == [stating[0].text, stating[1].text, stating[2].text, stating[3].text], shown


def test_lines_of_code_are_shown_in_the_order_the_note_has_them():
    text = ("前馈网络由两个线性层和一个激活函数组成。\n\n"
            "self.feed_forward = nn.Sequential(\nnn.Linear(embed_size, 4 * embed_size),\nnn.ReLU(),\n"
            "nn.Linear(4 * embed_size, embed_size),\n)\n")
    scored, stating = _scored_text(text, [0.9, 0.5, 0.6, 1.0, 0.7])
    assert [u.kind for u in stating] == ["sentence", "code", "code", "code", "code"]
    shown = [u.text for u in arrange(take_within_budget(scored, [3], 500, ((0.0, 500),)), scored)]
    # The best line (nn.ReLU) opens the answer; the rest of its run follows in the note's order.
    assert shown == ["nn.ReLU(),", "self.feed_forward = nn.Sequential(", "nn.Linear(embed_size, 4 * embed_size),",
                     "nn.Linear(4 * embed_size, embed_size),", stating[0].text], shown
