"""`rag status --files`: the state of every note, read from the serving index and the folder."""
from __future__ import annotations

import json
import os

from rag.index.file_status import file_states, index_summary
from tests.conftest import indexed_notes, rag_cli

NOTES = {
    "lora.md": "# LoRA\n\nLoRA 冻结原模型权重，只训练两个低秩矩阵 A 和 B，可训练参数减少上万倍。\n",
    "子目录/混合精度.md": "# 混合精度\n\n混合精度训练用 FP16 存储激活和梯度，显存减半，配合损失缩放防止下溢。\n",
    "empty.md": "\n\n\n",
    "blob.txt": b"\x00\x01\x02 not text \x00\xff" * 20,
}


def test_each_note_is_indexed_skipped_or_failed_with_its_reason_and_changes_are_pending(tmp_path, embedder):
    settings = indexed_notes(tmp_path, NOTES, embedder)
    os.symlink("/etc/hostname", settings.corpus_dir / "outside.md")
    states = {s.source: s for s in file_states(settings)}
    assert states["lora.md"].state == "indexed" and states["lora.md"].passages == 1
    assert states["lora.md"].indexed_at is not None
    assert states["子目录/混合精度.md"].state == "indexed"
    assert states["empty.md"].state == "skipped" and "empty" in states["empty.md"].reason
    assert states["blob.txt"].state == "failed" and states["blob.txt"].reason
    assert states["outside.md"].state == "skipped" and "outside the notes folder" in states["outside.md"].reason

    (settings.corpus_dir / "lora.md").write_text(NOTES["lora.md"] + "\n秩 r 一般取 8。\n", encoding="utf-8")
    (settings.corpus_dir / "子目录/混合精度.md").unlink()
    (settings.corpus_dir / "new.md").write_text("# 新笔记\n\n一段新的内容。\n", encoding="utf-8")
    states = {s.source: s for s in file_states(settings)}
    assert states["lora.md"].state == states["new.md"].state == states["子目录/混合精度.md"].state == "pending"
    assert "changed" in states["lora.md"].reason and "new" in states["new.md"].reason
    assert "deleted" in states["子目录/混合精度.md"].reason
    summary = index_summary(settings)
    assert summary.notes == 2 and summary.counts["pending"] == 3


def test_rag_status_files_json_lists_every_note_with_its_state(tmp_path, embedder):
    settings = indexed_notes(tmp_path, NOTES, embedder)
    res = rag_cli("status", "--files", "--json", "--corpus", str(settings.corpus_dir), "--index",
                  str(settings.index_dir))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {f["source"]: f["state"] for f in out["files"]} == {
        "lora.md": "indexed", "子目录/混合精度.md": "indexed", "empty.md": "skipped", "blob.txt": "failed"}
    assert out["notes"] == 2 and out["passages"] == 2
    res = rag_cli("status", "--files", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir))
    assert res.returncode == 0 and "skipped  empty.md: empty" in res.stdout, res.stdout
