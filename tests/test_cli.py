"""The `rag` command run for real (`python -m rag.cli`) on notes and indexes in temporary folders."""
from __future__ import annotations

import json

import pytest

from rag.index.builder import build_index
from tests.conftest import clean_env, make_settings, rag_cli, write_notes

NOTES = {
    "微调/LoRA.md": """# LoRA

## 原理

LoRA 冻结预训练权重，只训练旁路的两个低秩矩阵 A 和 B，可训练参数很少。

## 缺点

秩的选择很敏感，秩太小时复杂任务上的效果不如全参数微调。
""",
    "解码.txt": """解码策略

1、贪心解码和束搜索有什么区别？

贪心解码每步只取概率最大的词；束搜索同时保留若干条得分最高的候选序列。

2、温度参数有什么作用？

温度越高，采样分布越平坦，生成的文本越多样。
""",
    "code/norm.md": """# RMSNorm

```python
def rms_norm(x, weight, eps=1e-6):
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).rsqrt()
    return x * scale * weight
```
""",
    "坏.md": b"\x00\x01\x02 not a note",
}
HIT_KEYS = {"rank", "score", "source", "heading", "line_start", "line_end", "text"}
BATCH = [
    {"id": "q1", "question": "束搜索和贪心解码的区别是什么？"},
    {"id": "q2", "question": "那它的缺点呢？",
     "history": [{"role": "user", "content": "束搜索是怎么工作的？"},
                 {"role": "assistant", "content": "束搜索每一步保留得分最高的几条候选序列。"}]},
    {"id": "q2-alone", "question": "那它的缺点呢？"},
    {"id": 3, "question": "rms_norm"},
    {"id": "q4", "question": "How do I make a good espresso at home?"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = write_notes(root / "corpus", NOTES)
    index = root / "index"
    first = rag_cli("index", "--corpus", str(corpus), "--index", str(index))
    return root, corpus, index, first


def paths(built) -> list[str]:
    _, corpus, index, _ = built
    return ["--corpus", str(corpus), "--index", str(index)]


def test_index_prints_a_summary_and_reports_skipped_files(built):
    _, _, index, first = built
    assert first.returncode == 0, first.stderr
    out = first.stdout.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("full build: 3 files (3 new or changed, 0 removed, 1 skipped), ")
    assert " embedded, " in out[0] and (index / "CURRENT").read_text() in out[0]
    assert "skipped 坏.md: binary" in first.stderr  # on stderr, with the reason
    assert "embedding passages:" in first.stderr and "embedding passages" not in first.stdout


def test_index_again_is_up_to_date(built):
    again = rag_cli("index", *paths(built))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("index is up to date: 3 files, ")


@pytest.fixture(scope="module")
def batch_run(built):
    root = built[0]
    questions = root / "Q.jsonl"
    lines = [json.dumps(item, ensure_ascii=False) for item in BATCH]
    questions.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", encoding="utf-8")  # a blank line too
    return rag_cli("-v", "retrieve", *paths(built), "--batch", str(questions), "--k", "3", "--json")


def test_batch_prints_exactly_one_json_line_per_question(batch_run):
    assert batch_run.returncode == 0, batch_run.stderr
    assert batch_run.stdout.endswith("\n")
    rows = [json.loads(line) for line in batch_run.stdout.splitlines()]  # every stdout line is JSON
    assert [r["id"] for r in rows] == [item["id"] for item in BATCH]
    for row in rows:
        assert set(row) == {"id", "relevant", "hits"}
        assert isinstance(row["relevant"], bool)
        assert 1 <= len(row["hits"]) <= 3
        for rank, hit in enumerate(row["hits"], 1):
            assert set(hit) == HIT_KEYS
            assert hit["rank"] == rank and 0 <= hit["score"] <= 1
            assert hit["source"] in NOTES and hit["text"] and isinstance(hit["heading"], str)
            assert 1 <= hit["line_start"] <= hit["line_end"]
    # Logs went to stderr (-v turns them on), not into the JSON stream.
    assert "INFO" in batch_run.stderr


def test_batch_answers_are_the_right_passages(batch_run):
    rows = {r["id"]: r for r in map(json.loads, batch_run.stdout.splitlines())}
    # These notes are short, so a hit is read as the whole note (rag/reading/sections.py).
    assert rows["q1"]["relevant"] and rows["q1"]["hits"][0]["source"] == "解码.txt"
    assert "束搜索同时保留若干条得分最高的候选序列" in rows["q1"]["hits"][0]["text"]
    # The same follow-up lands on the subject of its history, and elsewhere without one.
    assert rows["q2"]["hits"][0]["source"] == "解码.txt"
    assert rows["q2-alone"]["hits"][0]["source"] == "微调/LoRA.md" and "秩的选择很敏感" in rows["q2-alone"]["hits"][0]["text"]
    assert rows[3]["hits"][0]["source"] == "code/norm.md" and "def rms_norm" in rows[3]["hits"][0]["text"]
    assert rows["q4"]["relevant"] is False


def test_hit_lines_point_into_the_note(batch_run, built):
    corpus = built[1]
    for row in map(json.loads, batch_run.stdout.splitlines()):
        for hit in row["hits"]:
            lines = (corpus / hit["source"]).read_text(encoding="utf-8").split("\n")
            last = [ln for ln in hit["text"].split("\n") if ln.strip()][-1]
            assert last.strip() in lines[hit["line_end"] - 1]


def test_single_question_json_is_the_same_object(batch_run, built):
    one = rag_cli("retrieve", *paths(built), "束搜索和贪心解码的区别是什么？", "--k", "3", "--json")
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["id"] is None and set(row) == {"id", "relevant", "hits"}
    from_batch = json.loads(batch_run.stdout.splitlines()[0])
    assert row["hits"] == from_batch["hits"] and row["relevant"] == from_batch["relevant"]


def test_single_question_with_history_json(built):
    history = json.dumps(BATCH[1]["history"], ensure_ascii=False)
    run = rag_cli("retrieve", *paths(built), "那它的缺点呢？", "--history", history, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["hits"][0]["heading"] == "1、贪心解码和束搜索有什么区别？"


def test_human_readable_output_lists_ranked_passages(built):
    run = rag_cli("retrieve", *paths(built), "温度参数有什么作用？", "--k", "2")
    assert run.returncode == 0, run.stderr
    ranked = [ln for ln in run.stdout.splitlines() if ln.startswith("[")]
    assert len(ranked) == 2
    assert ranked[0].startswith("[1] ") and "解码.txt:1-" in ranked[0]
    assert "温度越高" in run.stdout


def test_settings_come_from_the_environment_and_arguments_win(built):
    _, corpus, index, _ = built
    env = clean_env(RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(index), RAG_TOP_K="2")
    run = rag_cli("retrieve", "温度参数有什么作用？", "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["hits"]) == 2
    run = rag_cli("retrieve", "温度参数有什么作用？", "--json", "--k", "1", env=env)
    assert len(json.loads(run.stdout)["hits"]) == 1
    # --index beats RAG_INDEX_DIR.
    run = rag_cli("retrieve", "温度参数有什么作用？", "--index", str(index.parent / "elsewhere"), env=env)
    assert run.returncode == 2 and "elsewhere" in run.stderr


def test_missing_index_is_a_clear_error(tmp_path):
    run = rag_cli("retrieve", "--corpus", str(tmp_path), "--index", str(tmp_path / "none"), "任何问题", "--json")
    assert run.returncode == 2
    assert run.stdout == ""
    assert "no index" in run.stderr and "rag index" in run.stderr and "Traceback" not in run.stderr


def test_missing_corpus_is_a_clear_error(tmp_path):
    run = rag_cli("index", "--corpus", str(tmp_path / "nowhere"), "--index", str(tmp_path / "index"))
    assert run.returncode == 2
    assert "corpus folder not found" in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize("question", [None, "   "], ids=["none", "blank"])
def test_missing_or_blank_question_is_an_error(built, question):
    run = rag_cli("retrieve", *paths(built), *([question] if question is not None else []))
    assert run.returncode == 2
    assert run.stderr.startswith("error:") and "Traceback" not in run.stderr
    assert run.stdout == ""


def test_index_built_with_another_embedder_is_a_clear_error(tmp_path, st_embedder):
    settings = make_settings(write_notes(tmp_path / "corpus", {"a.md": "# 标题\n\n内容。\n"}), tmp_path / "index")
    build_index(settings, st_embedder)
    run = rag_cli("retrieve", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "标题")
    assert run.returncode == 2
    assert "rag index" in run.stderr and "Traceback" not in run.stderr


def test_retrieve_on_an_empty_index_returns_no_hits(tmp_path):
    corpus = write_notes(tmp_path / "corpus", {})
    built = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    assert built.returncode == 0 and "0 files" in built.stdout
    run = rag_cli("retrieve", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "LoRA 是什么", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"id": None, "relevant": False, "hits": []}
