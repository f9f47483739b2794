"""Retrieval quality on bench/data/dev.jsonl: this system at several chunk sizes vs a plain baseline.

    python bench/retrieval_quality.py                 # sizes sweep + baseline
    python bench/retrieval_quality.py --only default  # just the configured settings

The baseline is what a quick RAG script does: fixed 500-character chunks of the raw
files, dense search only, no history. Embeddings are shared between runs (same
model, cached by text) so the sweep costs one embedding pass per distinct passage.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.chunking import Chunk  # noqa: E402
from rag.embeddings import make_embedder  # noqa: E402
from rag.evaluation import evaluate  # noqa: E402
from rag.indexing import build_index  # noqa: E402
from rag.ingest import discover  # noqa: E402
from rag.retrieval import Hit, RetrievalResult, Retriever  # noqa: E402
from rag.settings import Settings  # noqa: E402


class CachingEmbedder:
    """The real embedder, memoised by text: the sweep re-embeds identical passages otherwise."""

    def __init__(self, inner) -> None:
        self.inner, self.identity, self.dim = inner, inner.identity, inner.dim
        self.cache: dict[tuple[bool, str], np.ndarray] = {}

    def _embed(self, texts, query: bool) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (query, t) not in self.cache]
        if missing:
            fn = self.inner.embed_queries if query else self.inner.embed_passages
            for t, v in zip(missing, fn(missing)):
                self.cache[(query, t)] = v
        return np.stack([self.cache[(query, t)] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_passages(self, texts):
        return self._embed(list(texts), False)

    def embed_queries(self, texts):
        return self._embed(list(texts), True)


class FixedSizeBaseline:
    """Fixed 500-character windows of the raw notes, dense only, no follow-up handling."""

    def __init__(self, corpus: Path, embedder, size: int = 500) -> None:
        self.embedder = embedder
        self.chunks: list[Chunk] = []
        for path in discover(corpus, (".md", ".markdown", ".txt")):
            text = path.read_text(encoding="utf-8", errors="replace")
            for start in range(0, len(text), size):
                piece = text[start : start + size]
                line = text.count("\n", 0, start) + 1
                self.chunks.append(Chunk(path.name, "", line, line + piece.count("\n"), piece))
        self.vectors = embedder.embed_passages([c.text for c in self.chunks])

    def retrieve(self, question, history=(), k=None) -> RetrievalResult:
        scores = self.vectors @ self.embedder.embed_queries([question])[0]
        order = np.argsort(-scores)[: k or 5]
        hits = [Hit(r + 1, float(scores[i]), self.chunks[i]) for r, i in enumerate(order)]
        return RetrievalResult(question, question, True, hits)


def row(name: str, report: dict, extra: str = "") -> str:
    o, pk = report["overall"], report["per_kind"]
    return (f"{name:<22} R@5 {o['recall@5']:.3f}  MRR@10 {o['mrr@10']:.3f}  R@3000ch {o['recall@3000ch']:.3f}  "
            f"follow-up R@5 {pk['followup']['recall@5']:.3f}  english R@5 {pk['english']['recall@5']:.3f}  "
            f"unanswerable flagged {pk.get('unanswerable', {}).get('abstained', float('nan')):.2f}  "
            f"answerable wrongly flagged {o.get('wrongly_abstained', 0):.3f} {extra}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", default=str(ROOT / "bench/data/dev.jsonl"))
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--only", choices=["default", "all"], default="all")
    args = parser.parse_args()
    items = [json.loads(line) for line in Path(args.questions).read_text(encoding="utf-8").splitlines() if line]
    base = Settings(corpus_dir=Path(args.corpus))
    embedder = CachingEmbedder(make_embedder(base))
    print(f"embedder: {embedder.identity}; {len(items)} questions", flush=True)

    sizes = [(base.chunk_target_chars, base.chunk_max_chars)]
    if args.only == "all":
        sizes = [(300, 600), (500, 900), (700, 1200), (1000, 1600)]
        t0 = time.perf_counter()
        baseline = FixedSizeBaseline(Path(args.corpus), embedder)
        print(row("baseline 500ch dense", evaluate(baseline, items, k=10),
                  f"({len(baseline.chunks)} chunks, built {time.perf_counter() - t0:.0f}s)"), flush=True)
    for target, max_chars in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            settings = base.model_copy(update={"index_dir": Path(tmp), "chunk_target_chars": target,
                                               "chunk_max_chars": max_chars})
            t0 = time.perf_counter()
            report = build_index(settings, embedder=embedder)
            retriever = Retriever(settings, embedder)
            print(row(f"hybrid {target}/{max_chars}", evaluate(retriever, items, k=10),
                      f"({report.chunks} chunks, built {time.perf_counter() - t0:.0f}s)"), flush=True)


if __name__ == "__main__":
    main()
