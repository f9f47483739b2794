"""Answer units (rag/reading/units.py): what an extractive answer may quote, and what it never may."""
from __future__ import annotations

import re

import pytest

from rag.reading.units import STATING, split_units, unit_key


def stating(text: str) -> list[str]:
    return [u.text for u in split_units(1, text) if u.kind in STATING]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_numbered_question_lines_of_plain_text_notes_are_headings_never_answer_units():
    text = ("5.2.2 适配器微调(Adapter-tuning)思路?\n\n适配器微调的思路是在预训练模型中添加适配器层。\n\n"
            "8 Layer Normalization的作用是什么?\n\nLayer Normalization有助于稳定深层网络的训练。\n"
            "2、指示微调(Prompt-tuning)与 Prefix-tuning 区别 是什么\n两者都是参数高效的微调方法。")
    units = split_units(1, text)
    texts = [u.text for u in units if u.kind in STATING]
    assert texts == ["适配器微调的思路是在预训练模型中添加适配器层。", "Layer Normalization有助于稳定深层网络的训练。",
                     "两者都是参数高效的微调方法。"]
    # Each unit knows the heading it stands under: the sub-question it answers.
    assert [u.title for u in units] == ["5.2.2 适配器微调(Adapter-tuning)思路?", "8 Layer Normalization的作用是什么?",
                                        "指示微调(Prompt-tuning)与 Prefix-tuning 区别 是什么"]


def test_a_question_sentence_inside_a_paragraph_is_never_an_answer_unit():
    assert stating("为什么要这样做？因为梯度会下溢。") == ["因为梯度会下溢。"]


def test_what_a_rhetorical_question_states_before_it_asks_is_an_answer_unit():
    text = ("如果想进一步降低KV缓存的占用，从数量上思考已经不行了，那就势必得从KV本身思考，有没有可能每个缓存的KV都比之前小？\n\n"
            "但这有一个问题，缓存的意义就是减少计算。")
    assert stating(text) == ["如果想进一步降低KV缓存的占用，从数量上思考已经不行了，那就势必得从KV本身思考",
                             "但这有一个问题，缓存的意义就是减少计算。"]


def test_a_question_that_asserts_by_denying_the_opposite_is_an_answer_unit_whole():
    text = ("那如果我把一个K或者V矩阵拆成两个小矩阵的乘积，缓存的时候显存占用不就变小了吗？\n\n"
            "这边，不就是原来的query矩阵乘上了一个旋转矩阵吗？\n\n那么，显存占用会变小吗？")
    assert stating(text) == ["那如果我把一个K或者V矩阵拆成两个小矩阵的乘积，缓存的时候显存占用不就变小了吗？",
                             "这边，不就是原来的query矩阵乘上了一个旋转矩阵吗？"]


def test_a_question_that_asks_from_its_first_clause_or_is_short_states_nothing():
    assert stating("为什么有了MHA，还需要MQA，又为什么还要GQA，它们有什么区别？\n\n两者都减少缓存。") == ["两者都减少缓存。"]
    assert stating("如果让你开发一个智能客服，你会怎么设计？\n\n先理清需求。") == ["先理清需求。"]


def test_label_only_items_introduce_the_items_under_them_and_are_never_answer_units():
    text = ("LoRA的思路可以分为以下几个步骤:\n\n  • 原始模型\n  • 参数矩阵分解:LoRA通过对模型参数矩阵进行低秩分解。\n"
            "  • 重构模型\n\n- Prompt-tuning:\n- 主要关注于输入序列的修改。\n- 保持关键特征\n  - 低秩矩阵保留了主要的方向。")
    units = split_units(1, text)
    kinds = {u.text: u.kind for u in units}
    assert kinds["原始模型"] == kinds["重构模型"] == kinds["保持关键特征"] == "label"
    assert kinds["Prompt-tuning:"] == "lead"
    assert [u.text for u in units if u.kind in STATING] == [
        "参数矩阵分解:LoRA通过对模型参数矩阵进行低秩分解。", "主要关注于输入序列的修改。", "低秩矩阵保留了主要的方向。"]


def test_a_short_item_with_a_verb_is_an_answer_unit_not_a_label():
    assert stating("- 推理时要合并权重\n- 秩太小会欠拟合") == ["推理时要合并权重", "秩太小会欠拟合"]


def test_a_numbered_line_that_states_something_is_an_answer_unit_even_where_the_chunker_starts_a_section():
    text = ("优点：\n\n1. **改进的权重衰减处理**：AdamW把权重衰减应用于参数更新步骤，效果更一致；\n\n"
            "2. **减少过拟合**：权重衰减是一种正则化技术，有助于减少过拟合；\n\n3. AdamW算法的主要特点\n\n它是一种流行的优化算法。")
    units = split_units(1, text)
    assert [u.text for u in units if u.kind in STATING] == [
        "**改进的权重衰减处理**：AdamW把权重衰减应用于参数更新步骤，效果更一致；",
        "**减少过拟合**：权重衰减是一种正则化技术，有助于减少过拟合；", "它是一种流行的优化算法。"]
    assert units[-1].title == "AdamW算法的主要特点"


def test_every_unit_is_a_verbatim_piece_of_its_passage_and_keyed_without_whitespace():
    text = ("## 原理\n\nWrapped English prose goes on\nacross lines, as notes do. 第二句在这里。\n\n"
            "| 方法 | 参数量 |\n|---|---|\n| LoRA | 0.1% |\n")
    for u in split_units(1, text):
        assert squash(u.text) in squash(text)
    assert unit_key("LoRA  是\n一种方法") == unit_key("LoRA是一种方法") != unit_key("LoRA是另一种方法")


def test_a_passage_that_begins_inside_a_code_block_reads_its_prose_as_prose():
    # The chunker cut the note inside a fence: the passage opens with code and its first
    # fence closes that block, so the prose after it is answer material and the next
    # fenced block is code.
    text = ("reward = np.random.rand()\nucb.update(chosen_arm, reward)\n```\n\n6.1 Beta分布\n\n"
            "Beta 分布是定义在区间 [0,1] 上的连续概率分布。\n\n```python\nimport numpy as np\nx = np.zeros(3)\n```\n")
    texts = stating(text)
    assert "Beta 分布是定义在区间 [0,1] 上的连续概率分布。" in texts
    assert not any("import" in t or "np.zeros" in t for t in texts)


def test_a_passage_whose_only_fence_opens_a_block_keeps_its_prose():
    text = "先看一个例子，这段代码计算平均值。\n\n```\nmean = sum(xs) / len(xs)\n"
    assert stating(text) == ["先看一个例子，这段代码计算平均值。"]


def test_a_short_line_standing_alone_is_a_title_unless_it_states_something():
    text = "2. 指数加权平均\n\n描述：系统根据大模型的输出，选择不同的路径\n\n典型应用：基于大模型的意图识别\n"
    units = split_units(1, text)
    assert [u.text for u in units if u.kind in STATING] == ["描述：系统根据大模型的输出，选择不同的路径",
                                                            "典型应用：基于大模型的意图识别"]
    assert units[0].title == "指数加权平均"


def test_a_line_of_code_that_only_closes_brackets_is_not_an_answer_unit():
    text = "def f(x):\n    return g(\n        x,\n    )\n})"
    assert stating(text) == ["def f(x):", "return g("]


def test_an_item_that_names_the_nested_list_under_it_is_a_label_not_an_answer_unit():
    text = ("- AUC(Area Under the Curve)\n  - 定义:ROC曲线下的面积,用于衡量模型的整体性能。\n"
            "  - 应用:AUC值越大,表示模型性能越好。\n- 训练时要先冻结主干网络\n")
    kinds = {u.text: u.kind for u in split_units(1, text)}
    assert kinds["AUC(Area Under the Curve)"] == "label"
    assert kinds["定义:ROC曲线下的面积,用于衡量模型的整体性能。"] == "item"
    assert kinds["训练时要先冻结主干网络"] == "item"  # no nested list under it: it says something


def test_a_piece_of_html_pasted_into_a_note_is_markup_not_an_answer_unit():
    text = ("| <ol><li>Improving the quality of life in cities.</li><li>The meeting of two presidents.</li></ol> |\n\n"
            "GraphRAG 可以回答这些问题，因为知识图谱的结构告诉我们整个数据集的结构。")
    assert stating(text) == ["GraphRAG 可以回答这些问题，因为知识图谱的结构告诉我们整个数据集的结构。"]


def test_a_question_mark_inside_quotes_does_not_cut_the_sentence_that_goes_on_after_it():
    text = "诸如“数据中的前 5 个主题是什么？”之类的查询表现不佳，因为它依赖向量搜索。他说：“好。” 然后走了。"
    assert [u.text for u in split_units(1, text)] == [
        "诸如“数据中的前 5 个主题是什么？”之类的查询表现不佳，因为它依赖向量搜索。", "他说：“好。”"]


def test_an_item_that_only_names_a_thing_and_its_english_name_is_a_label():
    units = split_units(1, "参数高效微调的方法分为几类。\n\n- 重新参数化方法(Reparameterization Methods)\n\n"
                           "- 召回率(Recall)\n\n- 原理:把权重矩阵分解成两个较小的矩阵,只训练它们。")
    assert [u.kind for u in units] == ["sentence", "label", "label", "item"], [(u.kind, u.text) for u in units]


def test_a_name_on_a_line_of_its_own_is_a_label_even_outside_a_list():
    units = split_units(1, "3. 重新参数化方法\nb. AdaLoRA\n- 原理:AdaLoRA 是 LoRA 的升级版,自适应地调整秩。\n\n"
                           "优点\n- 减少内存占用:FP16 的位宽是 FP32 的一半。")
    assert [u.text for u in units if u.kind in STATING] == ["原理:AdaLoRA 是 LoRA 的升级版,自适应地调整秩。",
                                                           "减少内存占用:FP16 的位宽是 FP32 的一半。"]
    assert [u.text for u in units if u.kind == "label"][-2:] == ["b. AdaLoRA", "优点"]


def test_a_unit_knows_the_headings_above_its_own_inside_the_passage():
    units = split_units(1, "2、Prompt-tuning与Prefix-tuning区别是什么\n\n1. 操作位置与方式\n\n"
                           "Prompt-tuning 主要关注于输入序列的修改。")
    point = units[-1]
    assert (point.title, point.outer) == ("操作位置与方式", "2、Prompt-tuning与Prefix-tuning区别是什么")


def test_a_link_line_or_an_aside_left_from_the_sentence_before_says_nothing():
    text = ("为了实现这一目标，***我们需要确保参与归一化的数据点在本质上是可比的。***(记住这句话就可以了)\n\n"
            "GitHub: LLMForEverybody: https://github.com/luhengshiwo/LLMForEverybody\n\n"
            "- [DeepSpeed](https://deepspeed.readthedocs.io/en/latest/)\n\n"
            "详见 vLLM 的文档，它说明了每个参数的作用。")
    assert stating(text) == ["为了实现这一目标，***我们需要确保参与归一化的数据点在本质上是可比的。",
                             "详见 vLLM 的文档，它说明了每个参数的作用。"]


def test_the_period_of_an_initial_does_not_end_a_sentence():
    assert stating("这一结论来自 Awni Hannun 和 Andrew Y. Ng 的论文。它说明了数据规模的作用。") == [
        "这一结论来自 Awni Hannun 和 Andrew Y. Ng 的论文。", "它说明了数据规模的作用。"]


def test_a_section_numbered_in_chinese_numerals_or_a_dotted_number_is_a_heading_commas_or_not():
    text = ("MQA 让所有 query 共享一组 KV。\n\n四，MLA：山穷水尽疑无路，柳暗花明又一村\n\nMLA 把 KV 压缩成低秩的潜在向量。\n\n"
            "3.2 对于需要很长对话的对话应用程序，总结或过滤以前的对话分段\n\n可以在后台异步总结之前的对话。")
    units = split_units(1, text)
    assert [u.text for u in units if u.kind in STATING] == ["MQA 让所有 query 共享一组 KV。", "MLA 把 KV 压缩成低秩的潜在向量。",
                                                           "可以在后台异步总结之前的对话。"]
    assert units[1].title == "四，MLA：山穷水尽疑无路，柳暗花明又一村"


def test_a_name_numbered_next_after_a_numbered_title_is_the_next_title_even_right_under_a_list():
    text = ("2. 选择性方法\n\n原理:只微调一部分参数。\n- 应用:如 BitFit,只改偏置项。\n"
            "3. 重新参数化方法(Reparameterization Methods)\na. 低秩分解\n- 原理:把权重矩阵分解成两个较小的矩阵。")
    units = split_units(1, text)
    point = next(u for u in units if u.text.startswith("原理:把权重"))
    assert point.title == "重新参数化方法(Reparameterization Methods)"
    assert "重新参数化方法(Reparameterization Methods)" not in [u.text for u in units]


def test_an_item_that_states_something_before_its_lead_is_that_statement_then_the_lead():
    units = split_units(1, "1. 主位宽 Q4表示主量化位宽为4-bit，即权重大部分以4位存储。常见的位宽包括：\n\n- Q2（2-bit）、Q3（3-bit）")
    assert [(u.kind, u.text) for u in units] == [("item", "主位宽 Q4表示主量化位宽为4-bit，即权重大部分以4位存储。"),
                                                 ("lead", "常见的位宽包括："), ("item", "Q2（2-bit）、Q3（3-bit）")]


def test_a_period_between_chinese_characters_ends_a_sentence_and_emphasis_alone_says_nothing():
    assert stating("在 S4 中参数是常数.但是，Mamba 会让这些参数根据输入而变化.\n\n***成功！***") == [
        "在 S4 中参数是常数.", "但是，Mamba 会让这些参数根据输入而变化."]


def test_a_paragraph_opening_with_a_bold_term_and_a_colon_is_a_list_entry():
    text = ("向量数据库需要将文档分割成块。\n\n**均等大小的块**：最简单的方法是将文档分割成大小大致均等的块。"
            "这会导致相似的内容被分割成多个块。\n\n**按原子元素分块**：通过识别原子元素来分块。\n\n"
            "**注意**这一段没有冒号，是普通的一句话。")
    kinds = {u.text: u.kind for u in split_units(1, text)}
    assert kinds["**均等大小的块**：最简单的方法是将文档分割成大小大致均等的块。"] == "item"
    assert kinds["这会导致相似的内容被分割成多个块。"] == "item"
    assert kinds["**按原子元素分块**：通过识别原子元素来分块。"] == "item"
    assert kinds["向量数据库需要将文档分割成块。"] == "sentence"
    assert kinds["**注意**这一段没有冒号，是普通的一句话。"] == "sentence"


def test_front_matter_and_html_comments_are_never_answer_units_but_a_rule_above_prose_is_no_front_matter():
    note = ("---\ntitle: KV cache notes\ntags: [llm, inference]\n---\n\n# KV cache\n\n<!-- TODO: add numbers -->\n\n"
            "The KV cache stores the keys and values of earlier tokens.\n<!-- YAML\nadded: v10.12.0\n-->\n"
            "It grows with sequence length.\n\n```html\n<!-- a comment inside code is code -->\n```\n")
    texts = [u.text for u in split_units(1, note)]
    assert texts[:2] == ["The KV cache stores the keys and values of earlier tokens.", "It grows with sequence length."]
    assert not any("title:" in t or "TODO" in t or "YAML" in t or "added:" in t for t in texts)
    ruled = "---\n\nA rule opens this note, and this sentence is its text.\n\n---\n"
    assert [u.text for u in split_units(1, ruled)] == ["A rule opens this note, and this sentence is its text."]


def test_a_quoted_line_is_read_without_its_marks_and_a_callout_without_its_type():
    note = ("Intro sentence of the note goes here.\n\n> [!note] Use LoRA for small GPUs\n"
            "> LoRA trains two small matrices instead of the full weight.\n>注：这边的软件不考虑故意的随机性输出。\n")
    texts = [u.text for u in split_units(1, note)]
    assert texts == ["Intro sentence of the note goes here.", "Use LoRA for small GPUs",
                     "LoRA trains two small matrices instead of the full weight.", "注：这边的软件不考虑故意的随机性输出。"]
    squashed = re.sub(r"\s+", "", note)
    assert all(re.sub(r"\s+", "", t) in squashed for t in texts)  # still verbatim pieces of the passage


def test_a_display_formula_is_one_unit_whole_or_none_never_half_a_formula():
    note = ("Perplexity is defined as follows.\n\n$$\ny_3 = \n\\begin{pmatrix}\nC & D\n\\end{pmatrix}\n$$\n\n"
            "$$\\text{ReLU}(x) = \\max(0, x)$$\n\n$$\n" + " + ".join(f"x_{i}" for i in range(80)) + "\n$$\n")
    texts = [u.text for u in split_units(1, note)]
    assert texts == ["Perplexity is defined as follows.", "$$ y_3 = \\begin{pmatrix} C & D \\end{pmatrix} $$",
                     "$$\\text{ReLU}(x) = \\max(0, x)$$"]  # the formula over the unit limit is left out whole


def test_obsidian_comments_html_blocks_and_task_boxes_leave_only_what_the_note_says():
    note = ("- [ ] try QLoRA on the 4090\n- [x] measure memory with rank 8 and rank 64\n\n<details>\n"
            "<summary>Why rank 8?</summary>\nRank 8 was enough on our data; higher ranks gave no gain.\n</details>\n\n"
            "%% private: ask Bob about this %%\n%%\ntwo-line hidden comment\n%%\nVisible again after the comments.\n")
    assert [u.text for u in split_units(1, note)] == [
        "try QLoRA on the 4090", "measure memory with rank 8 and rank 64",
        "Rank 8 was enough on our data; higher ranks gave no gain.", "Visible again after the comments."]


@pytest.mark.parametrize("sentence", ["上图展示了一个简单的例子。", "下一篇，我们看看流水线并行。", "整个多模态的架构如下",
                                      "The figure below shows the pipeline."])
def test_a_short_sentence_pointing_at_a_figure_or_another_article_says_nothing(sentence):
    units = split_units(1, f"LoRA trains two small matrices instead of the full weight.\n\n{sentence}\n")
    assert [u.text for u in units if u.kind in STATING] == ["LoRA trains two small matrices instead of the full weight."]


def test_one_word_of_code_cut_from_a_call_is_no_unit_but_a_call_is():
    text = "model = TransformerBlock(\n    embed_size,\n)\nassert (\nout = nn.ReLU()\n"
    assert [u.text for u in split_units(1, text)] == ["model = TransformerBlock(", "out = nn.ReLU()"]


def test_an_item_that_is_a_chinese_name_and_its_english_one_is_a_label():
    text = "- 直接提示词注入 Direct prompt injection\n- 灰盒提示攻击 Gray box prompt attacks\n- 使用 LoRA 微调大模型的第一步是冻结原模型权重\n"
    assert [(u.kind, u.text) for u in split_units(1, text)] == [
        ("label", "直接提示词注入 Direct prompt injection"), ("label", "灰盒提示攻击 Gray box prompt attacks"),
        ("item", "使用 LoRA 微调大模型的第一步是冻结原模型权重")]


def test_a_list_mark_alone_on_its_line_makes_the_next_line_its_item():
    text = "P-tuning v2 的优点:\n-\n高效性:在降低微调步数的同时保持了高精度。\n-\n易于部署:提供了清晰的API接口。\n"
    assert [(u.kind, u.text) for u in split_units(1, text)] == [
        ("lead", "P-tuning v2 的优点:"), ("item", "高效性:在降低微调步数的同时保持了高精度。"),
        ("item", "易于部署:提供了清晰的API接口。")]
    # The passage's first line is no item of a mark that is not there.
    assert [u.kind for u in split_units(1, "Triplet Loss 是一种损失函数。")] == ["sentence"]
