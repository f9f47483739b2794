"""Follow-ups that name a thing by its place beside the earlier one (rag/answer/siblings.py)."""
from __future__ import annotations

import pytest

from rag.answer.siblings import asks_other, named_at, next_thing, other_thing, step_asked, strip_pointers


@pytest.mark.parametrize("question, other", [("那另一类呢？", True), ("另外一种方法呢？", True),
                                             ("What about the other one?", True), ("那它的缺点呢？", False),
                                             ("另一方面，LoRA 为什么省显存？", True)])
def test_a_follow_up_asking_about_the_other_thing_is_told_by_its_words(question, other):
    assert asks_other(question) is other


@pytest.mark.parametrize("earlier, text, thing", [
    ("绝对位置编码是怎么做的？", "位置编码通常分为两种类型：绝对位置编码和相对位置编码。", "相对位置编码"),
    ("绝对位置编码是怎么做的？", "常用的有相对位置编码与绝对位置编码两种", "相对位置编码"),
    ("MQA 是什么？", "业界先后发明了MQA和GQA。", "GQA"),
    ("数据并行是什么？", "我们比较数据并行与模型并行的区别", "模型并行"),
])
def test_the_other_thing_is_the_name_the_notes_set_beside_the_earlier_one(earlier, text, thing):
    found, named = other_thing(earlier, ["这句话没有并列的两个名字。", text])
    assert found == thing and named and named in earlier.replace(" ", "")


def test_no_pairing_that_names_the_earlier_thing_gives_nothing():
    assert other_thing("绝对位置编码是怎么做的？", ["注意力和前馈网络交替堆叠。", "LoRA 与 AdaLoRA"]) == ("", "")


def test_the_words_pointing_at_the_other_thing_are_no_words_of_the_question():
    assert "另一" not in strip_pointers("那另一类呢？")


def test_the_units_under_a_line_naming_the_thing_alone_are_found_and_no_others():
    from rag.reading.units import STATING, split_units
    text = ("绝对位置编码：\n\n为每个位置生成一个固定向量。\n\n相对位置编码：\n\n这种编码方式侧重于元素之间的距离信息。"
            "通过加入位置偏置项感知相对位置。\n\n相对位置编码的关键特点包括：\n\n- 动态计算：根据实际相对位置生成编码。")
    units = split_units(1, text)
    at = {(u.n, u.order): u for u in units}
    stating = [u for u in units if u.kind in STATING]
    under = [stating[i].text for i in named_at(stating, at, "相对位置编码")]
    assert under == ["这种编码方式侧重于元素之间的距离信息。", "通过加入位置偏置项感知相对位置。"]


@pytest.mark.parametrize("question, step", [("那再往上一个层级呢？", 1), ("那下一步呢？", 1), ("上一个阶段呢？", -1),
                                            ("那再往下一个层级呢？", -1), ("What about the next one?", 1),
                                            ("那它的缺点呢？", 0)])
def test_a_follow_up_asking_about_the_next_or_the_one_before_is_told_by_its_words(question, step):
    assert step_asked(question) == step


def test_the_next_thing_is_the_name_numbered_after_the_one_the_earlier_question_names():
    names = ["智能体的4个层级", "level 1 - 简单处理器", "level 2 - 路由", "level 3 - 使用工具"]
    assert next_thing("智能体的 level 2“路由”是什么意思？", 1, names) == ("level 3 - 使用工具", "level 2 - 路由")
    assert next_thing("智能体的 level 2“路由”是什么意思？", -1, names) == ("level 1 - 简单处理器", "level 2 - 路由")
    steps = ["第一步：SFT", "第二步：训练奖励模型", "第三步：PPO"]
    assert next_thing("RLHF 的第二步是什么？", 1, steps) == ("第三步：PPO", "第二步：训练奖励模型")
    assert next_thing("RLHF 的第三步是什么？", 1, steps) == ("", "")  # nothing numbered four
    assert next_thing("LoRA 是什么？", 1, steps) == ("", "")  # the earlier question numbers nothing
