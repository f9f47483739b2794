"""`make run` installs only the default's packages (no torch, sentence-transformers, transformers
or llama.cpp): the default path must index and answer without importing any of them. Here
they are made unimportable in a real `rag` process, which then indexes and answers."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT, clean_env, write_notes

EXTRAS = ("torch", "sentence_transformers", "transformers", "llama_cpp", "safetensors")
WITHOUT_EXTRAS = (
    "import sys\n"
    f"for name in {EXTRAS!r}:\n"
    "    sys.modules[name] = None  # import raises ImportError, as in a default install\n"
    "from rag.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def rag_without_extras(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, *args], capture_output=True, text=True,
                          encoding="utf-8", timeout=600, cwd=REPO_ROOT,
                          env=clean_env(RAG_LLM_BACKEND="none"))


def test_the_default_indexes_and_answers_without_the_extras(tmp_path):
    corpus = write_notes(tmp_path / "corpus", {
        "lora.md": "# LoRA\n\nLoRA 冻结预训练权重，只训练两个低秩矩阵，所以显存占用小、训练快。\n",
        "bread.md": "# Sourdough\n\nBake the sourdough at 250 degrees for twenty minutes with steam.\n",
    })
    where = ["--corpus", str(corpus), "--index", str(tmp_path / "index")]
    built = rag_without_extras("index", *where)
    assert built.returncode == 0, built.stderr
    asked = rag_without_extras("ask", "LoRA 为什么显存占用小？", "--json", *where)
    assert asked.returncode == 0, asked.stderr
    assert "lora.md" in asked.stdout and "低秩" in asked.stdout


def test_another_embedding_model_without_sentence_transformers_says_how_to_install_it(tmp_path):
    corpus = write_notes(tmp_path / "corpus", {"a.md": "# A\n\nSome text to index here.\n"})
    run = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "index", "--corpus", str(corpus),
                          "--index", str(tmp_path / "index")], capture_output=True, text=True, encoding="utf-8",
                         timeout=300, cwd=REPO_ROOT, env=clean_env(RAG_EMBEDDING_MODEL="BAAI/bge-m3"))
    assert run.returncode != 0
    assert "sentence-transformers, which is not installed" in run.stderr and "'.[st]'" in run.stderr
