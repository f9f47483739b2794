"""Vector stores at scale: build time, memory, latency, and recall of approximate search.

    python bench/scale.py --store faiss,milvus --chunks 100000
    python bench/scale.py --store faiss --chunks 100000 --sweep "32:80,32:200,48:200" --ef 64,128,256,512

Embedding 100k real passages would take hours on a laptop CPU, so the synthetic corpus
is built from the real index of corpus/ (run `rag index` first): each synthetic passage
is a real passage's text with its sentences shuffled and mixed with another's, and its
vector is the real vector plus noise, re-normalised. That keeps the clustered shape of
real embeddings (hundreds of near-copies of each real passage: a hard case for HNSW,
whose top 10 must be picked among near-ties) and a realistic keyword vocabulary.
Queries are real questions from bench/data/dev.jsonl, embedded by the real model.

Per store: the time to build both dense indexes (passages and titles), the process's
RSS growth, retrieval p50/p95 of the whole `Retriever.retrieve` call (query embedding +
dense + BM25 + fusion), and dense-search-only latency and recall@10 against exact search.
``--sweep M:efConstruction,...`` builds FAISS HNSW variants to choose the defaults.
Milvus runs Milvus Lite in this process unless ``--milvus-uri http://host:port`` names a server.
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
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.index.bm25 import BM25Index, tokenize  # noqa: E402
from rag.reading.chunking import Chunk  # noqa: E402
from rag.index.embedders.factory import make_embedder  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.index.store import IndexStore, new_version_name  # noqa: E402
from rag.index.version_files import DENSE, TITLE_DENSE, FileEntry, Manifest
from rag.index.vectors import build_vector_index  # noqa: E402
from rag.index.vectors.faiss_index import FaissIndex  # noqa: E402

K = 10
# Rows synthesised at a time in --vectors-only mode (keeps the float64 noise at ~300 MB).
VECTOR_BLOCK = 100_000


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


def synthesize_vectors(real, n: int, rng: random.Random, noise: float) -> np.ndarray:
    """Only the passage vectors of ``synthesize`` (same picks and noise), in blocks: for --vectors-only."""
    base = np.random.default_rng(0)
    picks = np.array([rng.randrange(len(real.chunks)) for _ in range(n)])
    out = np.empty((n, real.vectors.shape[1]), dtype=np.float32)
    for start in range(0, n, VECTOR_BLOCK):
        block = real.vectors[picks[start:start + VECTOR_BLOCK]]
        block = block + base.normal(0, noise, block.shape).astype(np.float32)
        out[start:start + VECTOR_BLOCK] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def recall(approx: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(t)) / K for a, t in zip(approx, truth)]))


def search_profile(index, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@10) with one query per call, as a user's question is searched."""
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = index.search(q[None, :], K)
        times.append((time.perf_counter() - t0) * 1000)
        found.append(ids[0])
    return percentile(times, 0.5), percentile(times, 0.95), recall(np.array(found), truth)


def milvus_vectors_only(vectors: np.ndarray, qv: np.ndarray, truth: np.ndarray, efs: list[int], args,
                        settings: Settings) -> list[dict]:
    """--vectors-only with milvus: one passage collection, built and searched at each efSearch."""
    from rag.index.vectors.milvus_index import MilvusIndex

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before, t0 = rss_mib(), time.perf_counter()
        index = MilvusIndex.build(vectors, uri=args.milvus_uri or str(Path(tmp) / "bench.db"), token="",
                                  prefix="bench", version=new_version_name(), name=DENSE,
                                  index_type=args.milvus_index, hnsw_m=settings.hnsw_m,
                                  ef_construction=settings.hnsw_ef_construction, ef_search=efs[0])
        built, grown = time.perf_counter() - t0, rss_mib() - before
        print(f"milvus {args.milvus_index} M={settings.hnsw_m} efC={settings.hnsw_ef_construction}: built in "
              f"{built:.0f}s, RSS +{grown:.0f} MiB", flush=True)
        for ef in efs:
            index.set_search_effort(ef)
            p50, p95, rec = search_profile(index, qv, truth)
            rows.append({"store": "milvus", "index": f"{args.milvus_index} M={settings.hnsw_m} "
                         f"efC={settings.hnsw_ef_construction} ef={ef}", "build_s": built, "rss_mib": grown,
                         "p50_ms": p50, "p95_ms": p95, "recall": rec})
            print(f"milvus ef={ef}: recall@10 {rec:.3f}, p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="faiss,milvus", help="comma-separated: faiss, milvus")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--noise", type=float, default=0.04)
    parser.add_argument("--queries", type=int, default=53)
    parser.add_argument("--ef", default="64,128,256,512", help="efSearch values to measure recall at")
    parser.add_argument("--sweep", default="", help="FAISS HNSW variants M:efConstruction,... (dense only)")
    parser.add_argument("--milvus-uri", default=None)
    parser.add_argument("--milvus-index", default="HNSW")
    parser.add_argument("--ann-min-chunks", type=int, default=None,
                        help="FAISS switch point for this run (default: the setting; 0 forces HNSW)")
    parser.add_argument("--vectors-only", action="store_true",
                        help="synthesise vectors only (no texts, BM25 or stores): exact search and --sweep, "
                             "for sizes whose texts would not fit in memory (1M)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    settings = Settings()
    real = IndexStore(settings.index_dir, settings).load()
    rng = random.Random(0)
    t0 = time.perf_counter()
    if args.vectors_only:
        vectors = synthesize_vectors(real, args.chunks, rng, args.noise)
        chunks, vector_stores, args.store = [None] * len(vectors), args.store, ""
    else:
        chunks, tokens, vectors, titles = synthesize(real, args.chunks, rng, args.noise)
        bm25 = BM25Index.build(tokens)
    print(f"synthesised {len(chunks)} chunks in {time.perf_counter() - t0:.1f}s", flush=True)

    embedder = make_embedder(settings)
    items = [json.loads(line) for line in (ROOT / "bench/data/dev.jsonl").read_text(encoding="utf-8").splitlines()]
    questions = [it["question"] for it in items][: args.queries]
    qv = embedder.embed_queries(questions)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(qv, K)
    ex50, ex95, _ = search_profile(FaissIndex(exact), qv, truth)
    print(f"exact (flat) search at {len(chunks)}: p50 {ex50:.1f} ms, p95 {ex95:.1f} ms per query", flush=True)
    efs = [int(x) for x in args.ef.split(",") if x]
    rows: list[dict] = [{"store": "faiss", "index": "flat (exact)", "p50_ms": ex50, "p95_ms": ex95, "recall": 1.0}]

    for spec in [s for s in args.sweep.split(",") if s]:
        m, efc = (int(x) for x in spec.split(":"))
        before, t0 = rss_mib(), time.perf_counter()
        index = FaissIndex.build(vectors, ann_min_chunks=0, hnsw_m=m, ef_search=efs[0], ef_construction=efc)
        built, grown = time.perf_counter() - t0, rss_mib() - before
        for ef in efs:
            index.set_search_effort(ef)
            p50, p95, rec = search_profile(index, qv, truth)
            rows.append({"store": "faiss", "index": f"hnsw M={m} efC={efc} ef={ef}", "build_s": built,
                         "rss_mib": grown, "p50_ms": p50, "p95_ms": p95, "recall": rec})
            print(f"faiss hnsw M={m} efC={efc} (built {built:.0f}s, +{grown:.0f} MiB) ef={ef}: "
                  f"recall@10 {rec:.3f}, p50 {p50:.2f} ms, p95 {p95:.2f} ms", flush=True)
        del index

    if args.vectors_only and "milvus" in vector_stores.split(","):
        rows += milvus_vectors_only(vectors, qv, truth, efs, args, settings)

    with tempfile.TemporaryDirectory() as tmp:
        for store_name in [s for s in args.store.split(",") if s]:
            update = {"index_dir": Path(tmp) / store_name, "vector_store": store_name,
                      "milvus_uri": args.milvus_uri or str(Path(tmp) / "milvus" / "bench.db"),
                      "milvus_index_type": args.milvus_index, "milvus_prefix": "bench"}
            if args.ann_min_chunks is not None:
                update["ann_min_chunks"] = args.ann_min_chunks
            s = settings.model_copy(update=update)
            version = new_version_name()
            before, t0 = rss_mib(), time.perf_counter()
            dense = build_vector_index(vectors, s, version=version, name=DENSE)
            title_dense = build_vector_index(titles, s, version=version, name=TITLE_DENSE)
            built, grown = time.perf_counter() - t0, rss_mib() - before
            print(f"{store_name}: built {dense.kind} x2 in {built:.1f}s, RSS +{grown:.0f} MiB", flush=True)
            manifest = Manifest(version, time.time(), real.manifest.embedder, real.manifest.dim,
                                real.manifest.chunker, dense.kind, {"synthetic": FileEntry("-", len(chunks))})
            store = IndexStore(s.index_dir, s)
            with store.lock():
                store.write(manifest, chunks, tokens, vectors, dense, bm25, titles, title_dense)
            t0 = time.perf_counter()
            retriever = Retriever(s, embedder)
            loaded_s = time.perf_counter() - t0
            retriever.retrieve(questions[0])  # warm: first search, first BM25 call
            latencies = []
            for q in questions:
                t0 = time.perf_counter()
                retriever.retrieve(q)
                latencies.append((time.perf_counter() - t0) * 1000)
            r50, r95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            print(f"{store_name}: load {loaded_s:.1f}s; retrieve p50 {r50:.1f} ms, p95 {r95:.1f} ms", flush=True)
            served = retriever._refresh().dense
            for ef in efs if served.kind != "flat" else [0]:
                served.set_search_effort(ef)
                p50, p95, rec = search_profile(served, qv, truth)
                label = f"{served.kind} M={s.hnsw_m} efC={s.hnsw_ef_construction} ef={ef}" if ef else served.kind
                rows.append({"store": store_name, "index": label, "build_s": built,
                             "rss_mib": grown, "load_s": loaded_s, "retrieve_p50_ms": r50,
                             "retrieve_p95_ms": r95, "p50_ms": p50, "p95_ms": p95, "recall": rec})
                print(f"{store_name} {served.kind} ef={ef}: recall@10 {rec:.3f}, dense search p50 {p50:.2f} ms, "
                      f"p95 {p95:.2f} ms", flush=True)
            del retriever, served, dense, title_dense

    print("\n| store | index | build s (both) | RSS MiB | retrieve p50/p95 ms | search p50/p95 ms | recall@10 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        build = f"{r['build_s']:.0f}" if "build_s" in r else ""
        rss = f"{r['rss_mib']:.0f}" if "rss_mib" in r else ""
        ret = f"{r['retrieve_p50_ms']:.0f} / {r['retrieve_p95_ms']:.0f}" if "retrieve_p50_ms" in r else ""
        print(f"| {r['store']} | {r['index']} | {build} | {rss} | {ret} | {r['p50_ms']:.1f} / {r['p95_ms']:.1f} "
              f"| {r['recall']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
