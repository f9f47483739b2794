"""Scoped questions (rag/reading/scope.py): folders, tags and dates limit the search itself."""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from rag.index.builder import build_index
from rag.search.retrieval import Retriever
from rag.reading.scope import Scope, ScopeEmpty, ScopeError, note_metadata
from tests.conftest import make_settings, rag_cli, write_notes

NOTES = {
    "工作/rag/检索.md": "---\ntitle: 检索\ntags: [rag, 检索]\ndate: 2024-03-01\n---\n# 混合检索\n\n"
                     "混合检索把向量检索和 BM25 关键词检索的排名融合起来，召回更全。\n",
    "工作/rag/切分.md": "---\ntags:\n  - rag\n  - chunking\nupdated: 2024-06-15\n---\n# 文本切分\n\n"
                     "按标题切分笔记，每段带上它的标题，检索时更容易命中。检索前先切分。\n",
    "学习/微调.md": "# LoRA 微调 #peft\n\nLoRA 冻结原权重，只训练低秩矩阵。检索增强和微调可以一起用。 #finetune\n\n"
                "```python\n# not a tag: #codecomment\nx = 1  # #alsonot\n```\n",
    "日记.txt": "今天读了关于检索的论文，记下几个想法：检索质量决定答案质量。\n",
}


def test_front_matter_and_inline_tags_are_read_and_code_is_not_mistaken_for_tags(tmp_path):
    tags, date = note_metadata(NOTES["工作/rag/检索.md"])
    assert tags == ("rag", "检索") and date == "2024-03-01"
    tags, date = note_metadata(NOTES["工作/rag/切分.md"])
    assert tags == ("rag", "chunking") and date == "2024-06-15"
    tags, _ = note_metadata(NOTES["学习/微调.md"] + "inline `#notatag` here\n")
    assert tags == ("peft", "finetune")
    note = tmp_path / "n.txt"
    note.write_text(NOTES["日记.txt"], encoding="utf-8")
    os.utime(note, (0, dt.datetime(2023, 1, 2, 12).timestamp()))
    assert note_metadata(NOTES["日记.txt"], note) == ((), "2023-01-02")


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def retriever(request, tmp_path_factory, embedder) -> Retriever:
    root = tmp_path_factory.mktemp(f"scope-{request.param}")
    corpus = write_notes(root / "corpus", NOTES)
    os.utime(corpus / "日记.txt", (0, dt.datetime(2023, 1, 2, 12).timestamp()))
    os.utime(corpus / "学习/微调.md", (0, dt.datetime(2024, 9, 1, 12).timestamp()))
    extra = {"vector_store": "milvus", "milvus_uri": str(root / "milvus.db")} if request.param == "milvus" else {}
    settings = make_settings(corpus, root / "index", **extra)
    build_index(settings, embedder)
    return Retriever.from_settings(settings, embedder)


@pytest.mark.parametrize("scope, notes", [
    (Scope.parse(within=["工作/rag"]), {"工作/rag/检索.md", "工作/rag/切分.md"}),
    (Scope.parse(within=["学习/微调.md", "日记.txt"]), {"学习/微调.md", "日记.txt"}),
    (Scope.parse(tags=["chunking"]), {"工作/rag/切分.md"}),
    (Scope.parse(tags=["#PEFT"]), {"学习/微调.md"}),
    (Scope.parse(since="2024-04-01"), {"工作/rag/切分.md", "学习/微调.md"}),
    (Scope.parse(until="2023-12-31"), {"日记.txt"}),
    (Scope.parse(within=["工作"], since="2024-01-01", until="2024-05-01"), {"工作/rag/检索.md"}),
], ids=["folder", "files", "tag", "hash-tag", "since", "until", "folder-and-dates"])
def test_a_scoped_question_is_answered_only_from_notes_inside_the_scope(retriever, scope, notes):
    result = retriever.retrieve("检索", k=10, scope=scope)
    assert result.hits and {h.source for h in result.hits} <= notes
    # The scope filters the search, not its results: every note inside it can be found.
    assert {h.source for h in retriever.retrieve("检索 切分 微调 论文", k=10, scope=scope).hits} == notes


def test_a_scope_that_matches_no_note_says_so(retriever):
    with pytest.raises(ScopeEmpty, match="no note matches the scope"):
        retriever.retrieve("检索", scope=Scope.parse(tags=["nothing"]))
    with pytest.raises(ScopeError, match="not a date"):
        Scope.parse(since="yesterday")


@pytest.fixture(scope="module")
def faiss_settings(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("scope-cli")
    settings = make_settings(write_notes(root / "corpus", NOTES), root / "index")
    build_index(settings, embedder)
    return settings


def test_the_cli_and_batch_lines_take_a_scope(faiss_settings, tmp_path):
    base = ["--corpus", str(faiss_settings.corpus_dir), "--index", str(faiss_settings.index_dir)]
    res = rag_cli("retrieve", "检索", "--json", "--in", "学习", *base)
    assert res.returncode == 0, res.stderr
    assert {h["source"] for h in json.loads(res.stdout)["hits"]} == {"学习/微调.md"}
    res = rag_cli("retrieve", "检索", "--tag", "nothing", *base)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no note matches the scope" in res.stderr
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"id": 1, "question": "检索", "tags": ["rag"]}, ensure_ascii=False) + "\n"
                     + json.dumps({"id": 2, "question": "检索", "since": "someday"}) + "\n", encoding="utf-8")
    res = rag_cli("retrieve", "--batch", str(batch), *base)
    one, two = [json.loads(line) for line in res.stdout.splitlines()]
    assert {h["source"] for h in one["hits"]} <= {"工作/rag/检索.md", "工作/rag/切分.md"} and one["hits"]
    assert two["id"] == 2 and "not a date" in two["error"]
