"""Issue 9, "text that silently never reaches the index": footer removal, UTF-16, symlinks,
notes that give no passage. Real files, the real index, `rag` subprocesses."""
from __future__ import annotations

import json
import os

import pytest

from rag.index.builder import CLUTTER_WARN_SHARE, build_index
from rag.reading.ingest import IngestError, clean_lines, decode, discover, discover_notes
from rag.reading.loaders import load_document
from rag.notes import NoteError, delete_note, list_notes, note_path, read_note_lines
from rag.search.retrieval import Retriever
from rag.index.store import IndexStore
from tests.conftest import make_settings, rag_cli, write_notes

REPRO = ['# 推荐系统', '', 'a', '', '## 协同过滤', '', 'b', '', '相关推荐', '', 'item2vec UNIQUE', '', '## 冷启动', '',
         'c']


# --- footer removal ------------------------------------------------------------------------
def test_the_issue_reproduction_keeps_every_line_after_the_footer_that_is_not_clutter():
    cleaned = clean_lines(REPRO)
    assert len(cleaned) == len(REPRO)
    # Lines 9–15: only "相关推荐" (a chrome line by itself) may go.
    for i in range(8, 15):
        if REPRO[i] != "相关推荐":
            assert cleaned[i] == REPRO[i], (i + 1, REPRO[i])
    assert cleaned[:8] == REPRO[:8]


def test_a_section_appended_after_a_scraped_footer_is_kept():
    article = ["# 注意力", ""] + [f"第{i}段：自注意力让每个位置都和其他位置计算相关性。" for i in range(12)]
    footer = ["", "  • 12", "    点赞", "  • 11", "    收藏", "    觉得还不错? 一键收藏", "  • 0", "    评论", ""]
    mine = ["## 我的补充", "", "多头注意力 APPENDEDMARKER 可以在不同子空间关注不同模式。", "", "点赞", "",
            "第二段补充：这段是我自己写的内容。"]
    lines = article + footer + mine
    cleaned = clean_lines(lines)
    for i, line in enumerate(lines):
        if i >= len(article) + len(footer):
            assert cleaned[i] == (line if line != "点赞" else ""), line  # only the button line itself
        elif line.strip() and i >= len(article):
            assert cleaned[i] == "", line  # the widget is still removed
        else:
            assert cleaned[i] == line


def test_a_sentence_between_a_footer_head_and_the_like_buttons_is_kept():
    body = ["# 推荐系统", ""] + [f"第{i}段：协同过滤用用户和物品的交互来推荐。" for i in range(8)]
    footer = ["", "相关推荐", "", "item2vec 把物品序列当句子训练词向量。", "", "  • 12", "    点赞", "  • 3", "    收藏"]
    cleaned = clean_lines(body + footer)
    assert cleaned[len(body) + 3] == "item2vec 把物品序列当句子训练词向量。"  # prose: content
    assert all(not cleaned[len(body) + i] for i in (1, 5, 6, 7, 8))  # the head, counters and buttons


def test_ordinary_lines_that_mention_likes_and_shares_are_content():
    lines = ["# 分享会笔记", ""] + [f"要点{i}：今天分享了推荐系统的召回。" for i in range(8)] + [
        "", "点赞", "", "大家觉得点赞和收藏功能的推荐权重应该怎么定？我认为收藏更重要。", "",
        "评论区有人问冷启动怎么做。"]
    # One button-like word is no page footer: nothing is blanked.
    assert clean_lines(lines) == lines


def test_a_related_articles_list_with_teasers_is_still_removed():
    article = [f"第{i}段：正文内容，关于大模型微调的方法与细节。" for i in range(10)]
    footer = ["相关文章:", "", "大模型算法面试题(十八)",
              "本系列收纳各种大模型面试题及答案。 1、P-tuning v2 思路、优缺点是什么 P-tuning v2是…...", "",
              "Rust 开发环境搭建", "环境搭建 1、开发工具RustRover 或者vs code 2、Cygwin64 安装 在工具终端…..."]
    cleaned = clean_lines(article + footer)
    assert cleaned[:10] == article
    assert all(not line for line in cleaned[10:])


def test_a_note_that_loses_much_to_clutter_is_named_by_rag_index(tmp_path):
    article = ["# 短文", "", "CLUTTERMARKER 说的是注意力。"] + [f"第{i}行正文，讲自注意力的计算。" for i in range(11)]
    related = ["相关文章:"] + [x for i in range(6) for x in (f"标题{i}", f"这是第{i}篇无关文章的开头摘要，被截断了…...")]
    corpus = write_notes(tmp_path / "notes", {"scraped.txt": "\n".join(article + related),
                                             "clean.md": "# 干净\n\n一篇干净的笔记，没有任何页面杂物，内容完整。\n"})
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    assert res.returncode == 0, res.stderr
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "scraped.txt" in warnings[0] and "clutter" in warnings[0], res.stderr
    doc = load_document(corpus / "scraped.txt", "scraped.txt", 10**6)
    assert doc.clutter_share > CLUTTER_WARN_SHARE
    # The writing itself is indexed.
    hits = Retriever.from_settings(make_settings(corpus, tmp_path / "index")).retrieve("CLUTTERMARKER").hits
    assert hits and hits[0].source == "scraped.txt" and "CLUTTERMARKER" in hits[0].text


# --- UTF-16 ------------------------------------------------------------------------------
TEXT16 = "# 笔记\n\nUTF16MARKER 这是一篇用记事本保存的 UTF-16 笔记，讲的是对比学习。\n"


@pytest.mark.parametrize("bom, codec", [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
                                        (b"\xff\xfe\x00\x00", "utf-32-le")])
def test_utf16_and_utf32_notes_with_a_byte_order_mark_are_decoded(bom, codec):
    text, encoding = decode(bom + TEXT16.encode(codec))
    assert text == TEXT16 and encoding == codec


@pytest.mark.parametrize("data", [
    b"\xff\xfe" + os.urandom(4096),  # random bytes behind a UTF-16 mark
    b"\xff\xfe" + b"\x01\x00\x02\x00" * 500,  # control characters when read as UTF-16
    b"\xfe\xff" + b"\xd8\x00" * 300,  # unpaired surrogates
    b"\xff\xfeabc",  # odd length
])
def test_binaries_behind_a_utf16_mark_are_still_refused(data):
    with pytest.raises(IngestError, match="binary"):
        decode(data)


def test_a_utf16_note_is_indexed_found_and_shown(tmp_path):
    data = b"\xff\xfe" + TEXT16.replace("\n", "\r\n").encode("utf-16-le")
    corpus = write_notes(tmp_path / "notes", {"notepad.txt": data})
    settings = make_settings(corpus, tmp_path / "index")
    report = build_index(settings)
    assert not report.skipped and report.chunks >= 1
    hit = Retriever.from_settings(settings).retrieve("UTF16MARKER").hits[0]
    assert hit.source == "notepad.txt" and "UTF16MARKER" in hit.text
    assert read_note_lines(settings, "notepad.txt")[2].startswith("UTF16MARKER")
    assert IndexStore(settings.index_dir).read_manifest().files["notepad.txt"].encoding == "utf-16-le"


# --- symlinks ----------------------------------------------------------------------------
@pytest.fixture
def linked(tmp_path):
    outside = write_notes(tmp_path / "outside", {"secret.md": "# 秘密\n\nOUTSIDEMARKER 不在笔记文件夹里的文件内容。\n"})
    corpus = write_notes(tmp_path / "notes", {"real.md": "# 真的\n\nINSIDEMARKER 笔记文件夹里的一篇真实笔记内容。\n"})
    (corpus / "out.md").symlink_to(outside / "secret.md")
    (corpus / "alias.md").symlink_to(corpus / "real.md")
    (corpus / "broken.md").symlink_to(tmp_path / "gone.md")
    (corpus / "outdir").symlink_to(outside, target_is_directory=True)
    return corpus, make_settings(corpus, tmp_path / "index")


def test_discovery_follows_links_inside_the_folder_and_skips_the_others_naming_them(linked):
    corpus, _ = linked
    found = discover_notes(corpus, (".md",))
    assert [p.name for p in found.paths] == ["alias.md", "real.md"]
    reasons = {s.source: s.reason for s in found.skipped}
    assert set(reasons) == {"out.md", "broken.md", "outdir"}
    assert "outside the notes folder" in reasons["out.md"] and "broken" in reasons["broken.md"]
    assert "outside the notes folder" in reasons["outdir"] and "not followed" in reasons["outdir"]
    assert discover(corpus, (".md",)) == found.paths


def test_the_note_list_delete_and_view_apply_the_same_link_rule(linked):
    corpus, settings = linked
    assert [n.source for n in list_notes(settings)] == ["alias.md", "real.md"]
    with pytest.raises(NoteError, match="outside the notes folder"):
        note_path(settings, "out.md")
    with pytest.raises(NoteError):
        delete_note(settings, "out.md")
    assert (corpus / "out.md").is_symlink()  # refused, not removed
    assert read_note_lines(settings, "alias.md")[2].startswith("INSIDEMARKER")
    assert delete_note(settings, "alias.md") == "alias.md"
    assert not (corpus / "alias.md").exists() and (corpus / "real.md").is_file()  # the link went, not the note


def test_rag_index_skips_a_link_out_of_the_folder_with_a_warning_and_never_indexes_it(linked, tmp_path):
    corpus, settings = linked
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(settings.index_dir))
    assert res.returncode == 0, res.stderr
    assert "skipped out.md: link to a file outside the notes folder" in res.stderr
    manifest = IndexStore(settings.index_dir).read_manifest()
    assert set(manifest.files) == {"alias.md", "real.md"} and "out.md" in manifest.skipped
    hits = Retriever.from_settings(settings).retrieve("OUTSIDEMARKER").hits
    assert all(h.source != "out.md" and "OUTSIDEMARKER" not in h.text for h in hits)
    again = rag_cli("index", "--corpus", str(corpus), "--index", str(settings.index_dir))
    assert "up to date" in again.stdout and "skipped out.md" in again.stderr


# --- notes that give no passage --------------------------------------------------------------
def test_a_note_that_yields_no_passage_is_listed_with_the_reason(tmp_path):
    corpus = write_notes(tmp_path / "notes", {
        "real.md": "# 真的\n\n一篇正常的笔记，有足够的内容可以成为一段。\n",
        "blank.md": "\n\n   \n\n\n",  # decodes, but has no text
        "chrome.txt": "点赞\n收藏\n评论\n分享\n",  # nothing but button words
    })
    settings = make_settings(corpus, tmp_path / "index")
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(settings.index_dir), "--full")
    assert res.returncode == 0, res.stderr
    manifest = IndexStore(settings.index_dir).read_manifest()
    assert "real.md" in manifest.files
    assert "blank.md" not in manifest.files and "blank.md" in manifest.skipped
    assert "skipped blank.md: " in res.stderr
    assert "no text" in manifest.skipped["blank.md"] or "empty" in manifest.skipped["blank.md"]
    # A note of button words is either a (tiny) passage or listed with why: never neither.
    assert ("chrome.txt" in manifest.files) != ("chrome.txt" in manifest.skipped)
    if "chrome.txt" in manifest.skipped:
        assert manifest.skipped["chrome.txt"].startswith("no passage")
    # The Notes tab calls indexed exactly what is in the index.
    notes = {n.source: n for n in list_notes(settings, manifest.files, manifest.built_at)}
    assert notes["real.md"].indexed
    assert notes["chrome.txt"].indexed == ("chrome.txt" in manifest.files)


def test_a_one_line_note_is_a_passage_that_is_found(tmp_path):
    """A one-line note is a passage of its own (rag/reading/chunking.py), so it is found, not skipped."""
    corpus = write_notes(tmp_path / "notes", {"short.md": "买牛奶 MILKMARKER\n",
                                             "real.md": "# 真的\n\n一篇正常的笔记，有足够的内容可以成为一段。\n"})
    settings = make_settings(corpus, tmp_path / "index")
    res = rag_cli("index", "--corpus", str(corpus), "--index", str(settings.index_dir))
    assert res.returncode == 0, res.stderr
    manifest = IndexStore(settings.index_dir).read_manifest()
    hits = Retriever.from_settings(settings).retrieve("MILKMARKER").hits
    assert hits[0].source == "short.md" and "MILKMARKER" in hits[0].text
    assert "short.md" in manifest.files and "short.md" not in manifest.skipped

