"""Retrieval latency at scale, and recall of the approximate (HNSW) index against exact search.

    python bench/scale.py --chunks 100000

Embedding 100k real passages would take hours on a laptop CPU, so the synthetic corpus
is built from the real index of corpus/ (run `rag index` first): each synthetic passage
is a real passage's text with its sentences shuffled and mixed with another's, and its
vector is the real vector plus noise, re-normalised. That keeps the clustered shape of
real embeddings and a realistic keyword vocabulary. Queries are real questions from
bench/data/dev.jsonl, embedded by the real model; latency is the whole
`Retriever.retrieve` call in process (query embedding + FAISS + BM25 + fusion).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.bm25 import BM25Index, tokenize  # noqa: E402
from rag.chunking import Chunk  # noqa: E402
from rag.retrieval import Retriever  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.store import IndexStore, Manifest, FileEntry, build_dense, new_version_name  # noqa: E402


def synthesize(real, n: int, rng: random.Random, noise: float) -> tuple[list[Chunk], list[list[str]], np.ndarray, np.ndarray]:
    chunks, tokens = [], []
    base = np.random.default_rng(0)
    picks = [rng.randrange(len(real.chunks)) for _ in range(n)]
    vectors = real.vectors[picks] + base.normal(0, noise, (n, real.vectors.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    titles = real.title_vectors[picks] + base.normal(0, noise, (n, real.vectors.shape[1])).astype(np.float32)
    titles /= np.linalg.norm(titles, axis=1, keepdims=True)
    for i, p in enumerate(picks):
        a, b = real.chunks[p], real.chunks[rng.randrange(len(real.chunks))]
        sentences = re.split(r"(?<=[。！？.!?])", a.text) + re.split(r"(?<=[。！？.!?])", b.text)[:2]
        rng.shuffle(sentences)
        text = "".join(sentences)
        chunks.append(Chunk(f"synthetic/{i // 100:04d}.md", a.heading, 1, 1 + text.count("\n"), text, f"{i:064x}"))
        tokens.append(tokenize(text) if i < 2000 else real.tokens[p] + real.tokens[rng.randrange(len(real.chunks))][:20])
    return chunks, tokens, vectors.astype(np.float32), titles.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--noise", type=float, default=0.04)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    settings = Settings()
    real = IndexStore(settings.index_dir).load()
    rng = random.Random(0)
    t0 = time.perf_counter()
    chunks, tokens, vectors, titles = synthesize(real, args.chunks, rng, args.noise)
    print(f"synthesised {len(chunks)} chunks in {time.perf_counter() - t0:.1f}s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        s = settings.model_copy(update={"index_dir": Path(tmp)})
        t0 = time.perf_counter()
        dense = build_dense(vectors, s.ann_min_chunks, s.hnsw_m, s.hnsw_ef_search)
        title_dense = build_dense(titles, s.ann_min_chunks, s.hnsw_m, s.hnsw_ef_search)
        bm25 = BM25Index.build(tokens)
        kind = "hnsw" if len(chunks) >= s.ann_min_chunks else "flat"
        print(f"built {kind} FAISS x2 + BM25 in {time.perf_counter() - t0:.1f}s", flush=True)
        manifest = Manifest(new_version_name(), time.time(), real.manifest.embedder, real.manifest.dim,
                            real.manifest.chunker, kind, {"synthetic": FileEntry("-", len(chunks))})
        store = IndexStore(Path(tmp))
        with store.lock():
            store.write(manifest, chunks, tokens, vectors, dense, bm25, titles, title_dense)
        t0 = time.perf_counter()
        retriever = Retriever(s)
        print(f"index load {time.perf_counter() - t0:.1f}s", flush=True)

        items = [json.loads(line) for line in (ROOT / "bench/data/dev.jsonl").read_text(encoding="utf-8").splitlines()]
        questions = [it["question"] for it in items][: args.queries]
        retriever.retrieve(questions[0])  # warm: model load, first FAISS call
        latencies = []
        for q in questions:
            t0 = time.perf_counter()
            retriever.retrieve(q)
            latencies.append((time.perf_counter() - t0) * 1000)
        latencies.sort()
        print(f"retrieve latency at {len(chunks)} chunks: p50 {latencies[len(latencies) // 2]:.1f} ms, "
              f"p95 {latencies[int(len(latencies) * 0.95)]:.1f} ms")

        # Recall of the approximate index: its top 10 vs exact inner-product search.
        qv = retriever.embedder.embed_queries(questions)
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, truth = exact.search(qv, 10)
        for ef in (32, 64, 128, 256):
            if hasattr(dense, "hnsw"):
                dense.hnsw.efSearch = ef
            t0 = time.perf_counter()
            _, approx = dense.search(qv, 10)
            ms = (time.perf_counter() - t0) * 1000 / len(questions)
            recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approx, truth)])
            print(f"{kind} efSearch={ef}: recall@10 vs exact {recall:.3f}, {ms:.2f} ms/query")


if __name__ == "__main__":
    main()
