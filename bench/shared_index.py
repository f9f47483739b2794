"""What sharing the index through Milvus costs (rag/index/shared_index.py): upload, fetch, switch.

    python bench/shared_index.py                 # the Markdown dev corpus, a Milvus Lite gRPC server
    python bench/shared_index.py --corpus corpus --milvus-uri http://127.0.0.1:19530

Replica A builds the corpus into its own folder with ``shared_index`` on and off (the
difference is the upload into Milvus); replica B, with an empty folder, starts a Retriever
(fetching the version from Milvus) and answers; then A adds one note and rebuilds, and the
time until B serves the new version is measured (bounded by POLL_S). Embeddings come from
bench/embed_cache.py, so the builds time everything but the model.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from embed_cache import CachedEmbedder  # noqa: E402

from rag.index.embedders.factory import make_embedder  # noqa: E402
from rag.index.builder import build_index  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

SHARED = ROOT.parent / "shared"


def start_lite_server(data: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the Milvus Lite server did not start")


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(SHARED / "corpora" / "LLMForEverybody"))
    parser.add_argument("--milvus-uri", default=None, help="default: a Milvus Lite gRPC server started here")
    args = parser.parse_args()
    embedder = CachedEmbedder(make_embedder(Settings()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server, uri = (None, args.milvus_uri) if args.milvus_uri else start_lite_server(tmp / "milvus")
        try:
            corpus = tmp / "corpus"
            subprocess.run(["cp", "-r", args.corpus, str(corpus)], check=True)
            prefix = "b" + uuid.uuid4().hex[:8]

            def replica(name: str, shared: bool) -> Settings:
                return Settings(corpus_dir=corpus, index_dir=tmp / name, vector_store="milvus", milvus_uri=uri,
                                milvus_prefix=prefix + ("s" if shared else "p"), shared_index=shared)

            build_index(replica("warm", False), embedder=embedder, full=True)  # fills the embedding cache
            t0 = time.perf_counter()
            plain = build_index(replica("plain", False), embedder=embedder, full=True)
            plain_s = time.perf_counter() - t0
            a = replica("a", True)
            t0 = time.perf_counter()
            built = build_index(a, embedder=embedder, full=True)
            shared_s = time.perf_counter() - t0
            size = folder_mib(tmp / "a" / "versions" / built.version)

            b = replica("b", True)
            t0 = time.perf_counter()
            reader = Retriever(b, embedder)
            fetch_s = time.perf_counter() - t0
            assert reader.status().version == built.version
            reader.retrieve("什么是大模型的位置编码")

            (corpus / "zz-shared-index-bench.md").write_text("# 新笔记\n\n共享索引的切换测试。\n", encoding="utf-8")
            t0 = time.perf_counter()
            new = build_index(a, embedder=embedder).version
            rebuilt_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            while reader.status().version != new:
                time.sleep(0.05)
            switch_s = time.perf_counter() - t0

            print(f"corpus {args.corpus}: {plain.chunks} passages; version folder {size:.1f} MiB; Milvus at {uri}")
            print("| step | seconds |\n|---|---|")
            print(f"| full build, Milvus vectors, folder on this replica only | {plain_s:.1f} |")
            print(f"| full build, shared index (+ upload of the version) | {shared_s:.1f} |")
            print(f"| empty replica: first Retriever (fetch + load) | {fetch_s:.1f} |")
            print(f"| one note added: incremental build on replica A | {rebuilt_s:.1f} |")
            print(f"| from A's switch to replica B serving it (fetch included) | {switch_s:.1f} |")
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)


if __name__ == "__main__":
    main()
