"""Finding, decoding and cleaning notes: real files on disk, and one real index build."""
from __future__ import annotations

import hashlib
import logging

import pytest

from rag.reading.chunking import chunk_document
from rag.index.builder import build_index
from rag.reading.ingest import IngestError, decode, discover
from rag.reading.loaders import load_document
from rag.search.retrieval import Retriever
from rag.core.settings import Settings
from rag.index.store import IndexStore
from tests.conftest import assert_chunk_spans, file_lines, make_settings, write_notes

EXTENSIONS = Settings().extensions
GBK_TEXT = "梯度消失\n\n深层网络反向传播时，梯度逐层相乘变得越来越小，靠前的层几乎学不到东西。\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(range(256))


# --- discovery ------------------------------------------------------------------------------
def test_discover_finds_nested_and_chinese_named_notes_and_skips_hidden_ones(tmp_path):
    write_notes(tmp_path, {
        "根目录笔记.md": "a",
        "大模型/微调/LoRA 笔记.txt": "b",
        "大模型/Notes.MARKDOWN": "c",
        "UPPER.MD": "d",
        ".hidden.md": "hidden file",
        ".obsidian/workspace.md": "hidden folder",
        "大模型/.trash/old.md": "hidden folder deeper",
        "图片/diagram.png": PNG,
        "script.py": "print(1)",
        "notes.md.bak": "backup",
    })
    found = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path, EXTENSIONS)]
    assert found == sorted(["根目录笔记.md", "大模型/微调/LoRA 笔记.txt", "大模型/Notes.MARKDOWN", "UPPER.MD"])
    assert discover(tmp_path, EXTENSIONS) == discover(tmp_path, EXTENSIONS)  # stable order


def test_discover_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus folder not found"):
        discover(tmp_path / "nope", EXTENSIONS)


# --- decoding -----------------------------------------------------------------------------
def test_utf8_with_and_without_bom():
    text = "# 标题\n\nLoRA：低秩适配。\n"
    assert decode(text.encode("utf-8")) == (text, "utf-8")
    decoded, encoding = decode(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert decoded == text and encoding == "utf-8-sig"  # no U+FEFF left at the start


def test_gbk_chinese_is_decoded():
    text, encoding = decode(GBK_TEXT.encode("gbk"))
    assert text == GBK_TEXT
    assert encoding in ("gb18030", "gbk", "gb2312")


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b" \n\r\n\t \n", "empty"),
    (PNG, "binary"),
    (b"\x00\x01\x02\x03" * 100, "binary"),
])
def test_empty_and_binary_data_are_refused(data, reason):
    with pytest.raises(IngestError, match=reason):
        decode(data)


def test_load_document_keeps_file_line_numbers_for_any_line_ending(tmp_path):
    body = ["# 标题", "", "第一段。", "", "", "第二段。"]
    for name, sep in (("lf.md", "\n"), ("crlf.md", "\r\n"), ("cr.md", "\r")):
        data = sep.join(body).encode("utf-8")
        (tmp_path / name).write_bytes(data)
        doc = load_document(tmp_path / name, name, 10**6)
        assert doc.lines == tuple(body)
        assert doc.content_hash == hashlib.sha256(data).hexdigest()
        assert doc.source == name


def test_oversized_file_is_refused_with_its_size(tmp_path):
    (tmp_path / "big.md").write_bytes(b"x" * 2048)
    with pytest.raises(IngestError, match="2048 bytes"):
        load_document(tmp_path / "big.md", "big.md", 1024)


# --- clutter --------------------------------------------------------------------------------
ARTICLE = [
    "Bootstrap",
    "",
    "注意力机制笔记",
    "",
    "1、什么是自注意力？",
    "",
    "自注意力让序列中的每个位置都和其他所有位置计算相关性，再按权重汇总信息。",
    "",
    "2、为什么要除以根号 d？",
    "",
    "点积的方差随维度增大，除以根号 d 可以让 softmax 不至于饱和。",
    "",
    "3、多头注意力有什么好处？",
    "",
    "多个头可以在不同的子空间里关注不同的模式。",
    "",
]
TRAILER = ["相关文章:", "Transformer 详解（一）", "BERT 面试题汇总", "", "  • 点赞", "  • 收藏", "  • 评论 3", "举报"]
CHROME_ONLY = ["点赞", "收藏", "评论", "分享", "觉得还不错? 一键收藏", "12"]


@pytest.mark.parametrize("clutter", [TRAILER, CHROME_ONLY], ids=["related-articles", "like-favourite-comment"])
def test_clutter_is_blanked_and_real_lines_keep_their_numbers(tmp_path, clutter):
    raw = ARTICLE + clutter
    path = tmp_path / "注意力.txt"
    path.write_text("\n".join(raw), encoding="utf-8")
    doc = load_document(path, "注意力.txt", 10**6)
    assert len(doc.lines) == len(raw)  # lines are blanked, never removed
    for i, line in enumerate(raw):
        if line.strip() and line != "Bootstrap" and line not in clutter:
            assert doc.lines[i] == line  # real content at its own line number
    assert all(doc.lines[len(ARTICLE) + i] == "" for i in range(len(clutter)))
    assert doc.lines[0] == ""  # page chrome on the first line

    chunks = chunk_document(doc)
    assert_chunk_spans(chunks, file_lines(path))
    text = "\n".join(c.text for c in chunks)
    for line in clutter + ["Bootstrap"]:
        if line.strip():
            assert line.strip() not in text
    last = next(c for c in chunks if "多个头" in c.text)
    assert last.line_end == raw.index("多个头可以在不同的子空间里关注不同的模式。") + 1
    assert last.heading == "3、多头注意力有什么好处？"


def test_a_note_that_discusses_the_clutter_words_keeps_its_content(tmp_path):
    # A real note about the red-envelope algorithm says 红包 on every line; it is not page chrome.
    raw = [
        "如何设计微信抢红包算法", "",
        "1、抢红包算法要满足什么要求？", "",
        "每个人抢到的金额随机，所有人抢到的总额等于红包总额。", "每个人至少抢到一分钱。", "",
        "2、二倍均值法怎么做？", "",
        "每次在 0.01 到剩余人均金额的两倍之间随机取一个数作为本次金额。",
        "这样每个人抢到红包的期望相同。",
        "剩下的最后一个人拿走红包里剩余的全部金额。",
        "红包金额用分来计算，避免浮点误差。", "",
        "3、线段切割法怎么做？", "",
        "把红包总额想象成一条线段，随机切 n-1 刀，每段就是一个人抢到的金额。", "",
        "我觉得这个方法一般，但是收藏一下以后看。", "",
    ]
    path = tmp_path / "红包.txt"
    path.write_text("\n".join(raw), encoding="utf-8")
    assert load_document(path, "红包.txt", 10**6).lines == tuple(raw)


def test_printed_numbers_in_the_second_half_are_not_mistaken_for_like_counters(tmp_path):
    raw = [
        "Python 基础", "",
        "1、range 怎么用？", "", "range(n) 生成 0 到 n-1 的整数。", "",
        "2、下面的代码输出什么？", "", "for i in range(3):", "    print(i)", "",
        "输出：", "0", "1", "2", "",
        "3、列表推导式是什么？", "", "[x * x for x in range(5)] 生成平方数列表。", "",
    ]
    path = tmp_path / "python.txt"
    path.write_text("\n".join(raw), encoding="utf-8")
    assert load_document(path, "python.txt", 10**6).lines == tuple(raw)


def test_a_repeated_copy_of_the_article_on_one_long_line_is_dropped(tmp_path):
    paragraphs = [f"第{i}段讨论位置编码的第{i}种做法以及它对长文本外推能力的影响，并给出相应的实验结论。" for i in range(40)]
    raw = ["位置编码", ""] + [p for para in paragraphs for p in (para, "")] + ["".join(paragraphs)]
    path = tmp_path / "位置编码.txt"
    path.write_text("\n".join(raw), encoding="utf-8")
    doc = load_document(path, "位置编码.txt", 10**6)
    assert doc.lines[-1] == "" and doc.lines[:-1] == tuple(raw[:-1])


# --- a 5 MB one-line note ---------------------------------------------------------------------
def test_five_megabyte_single_line_note_is_chunked_with_bounded_sizes(tmp_path):
    sentence = "第{}句：长文本没有换行，分块器只能在句号处切开，每一块都不能超过上限。"
    parts, size = [], 0
    i = 0
    while size < 5 * 1024 * 1024:
        parts.append(sentence.format(i))
        size += len(parts[-1].encode("utf-8"))
        i += 1
    line = "".join(parts)
    path = tmp_path / "一行.txt"
    path.write_text(line, encoding="utf-8")
    assert path.stat().st_size >= 5 * 1024 * 1024

    s = Settings()
    doc = load_document(path, "一行.txt", s.max_file_bytes)
    assert len(doc.lines) == 1
    chunks = chunk_document(doc, s.chunk_target_chars, s.chunk_max_chars, s.code_max_chars)
    assert len(chunks) >= len(line) // s.chunk_max_chars
    assert all(0 < len(c.text) <= s.chunk_max_chars for c in chunks)
    assert all((c.line_start, c.line_end) == (1, 1) for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)  # cut at sentence ends
    assert "".join(c.text.replace("\n\n", "") for c in chunks) == line  # nothing lost


# --- through a real index build -----------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder):
    """A corpus mixing encodings, nested Chinese folders, hidden files and files that must be skipped."""
    root = tmp_path_factory.mktemp("ingest")
    corpus = write_notes(root / "corpus", {
        "笔记/无BOM.md": "# 残差连接\n\n残差连接把输入直接加到输出上，缓解深层网络的退化问题。\n",
        "笔记/有BOM.md": b"\xef\xbb\xbf" + "# 层归一化\n\n层归一化在每个样本的特征维度上做归一化，不依赖 batch 大小。\n".encode(),
        "深层/目录/梯度消失.txt": GBK_TEXT.encode("gbk"),
        "损坏/图片.md": PNG,
        "空白.txt": b"",
        ".隐藏.md": "# 隐藏\n\n这份笔记不应该被索引。\n",
    })
    settings = make_settings(corpus, root / "index")
    logger = logging.getLogger("rag.index.builder")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        report = build_index(settings, embedder)
    finally:
        logger.removeHandler(handler)
    return settings, report, [r.getMessage() for r in records]


def test_binary_and_empty_files_are_skipped_with_a_warning_naming_them(built):
    _, report, warnings = built
    assert {s.source: s.reason for s in report.skipped}.keys() == {"损坏/图片.md", "空白.txt"}
    reasons = {s.source: s.reason for s in report.skipped}
    assert "binary" in reasons["损坏/图片.md"] and "empty" in reasons["空白.txt"]
    assert any("损坏/图片.md" in w and "binary" in w for w in warnings), warnings
    assert any("空白.txt" in w and "empty" in w for w in warnings), warnings


def test_the_rest_still_indexes_with_the_right_encodings(built, embedder):
    settings, report, _ = built
    assert report.files == 3 and report.chunks == 3
    manifest = IndexStore(settings.index_dir).read_manifest()
    assert {s: f.encoding for s, f in manifest.files.items()} == {
        "笔记/无BOM.md": "utf-8", "笔记/有BOM.md": "utf-8-sig", "深层/目录/梯度消失.txt": "gb18030"}
    assert set(manifest.skipped) == {"损坏/图片.md", "空白.txt"}
    retriever = Retriever(settings, embedder)
    hit = retriever.retrieve("为什么会出现梯度消失？").hits[0]
    assert hit.source == "深层/目录/梯度消失.txt"
    assert "梯度逐层相乘变得越来越小" in hit.text  # decoded from GBK
    assert (hit.line_start, hit.line_end) == (1, 3)
    bom = retriever.retrieve("层归一化依赖 batch 吗").hits[0]
    assert bom.source == "笔记/有BOM.md" and bom.heading == "层归一化"  # the BOM did not hide the heading
    assert all("隐藏" not in c.text for c in retriever._refresh().chunks)


def test_unchanged_bad_files_are_not_retried(built, embedder):
    settings, _, _ = built
    again = build_index(settings, embedder)
    assert again.unchanged and again.chunks_embedded == 0
