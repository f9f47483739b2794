"""Milvus's own BM25 against the in-app BM25, on both development sets, in one run.

    python bench/milvus_bm25.py                 # both sets, Milvus Lite in a temporary folder
    python bench/milvus_bm25.py --sets md --milvus-uri http://127.0.0.1:19530

Both rank the same passages by the same terms: the jieba/identifier tokens `rag index`
already produces (rag/index/bm25.py `tokenize`). Milvus gets them as one space-separated text per
passage in a VARCHAR field with its "standard" analyzer and a BM25 function into a sparse
field (SPARSE_INVERTED_INDEX, metric BM25, the same k1=1.2 and b=0.75 as the in-app index);
characters the analyzer would split on inside a token (``gpt-3.5``) become ``_`` first, on
both sides, so that the two see the same terms.

Measured per set:
- keyword-only agreement: the top 10 passages of each, overlap and same-first;
- the whole retrieval (`Retriever.retrieve`, the same fusion, follow-ups and relevance
  decision) with the keyword signal from each: recall@5, MRR@10, recall@3000ch, declines;
- keyword search latency per question, p50/p95.
Milvus returns only its top `--keyword-limit` passages (the rest score 0); the in-app index
scores every passage.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from embed_cache import CachedEmbedder  # noqa: E402
from retrieval_quality import SETS, load_items  # noqa: E402

from rag.index.bm25 import tokenize  # noqa: E402
from rag.index.embedders.factory import make_embedder  # noqa: E402
from rag.evaluation import evaluate  # noqa: E402
from rag.index.builder import build_index  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

# The in-app BM25's parameters (rag/index/bm25.py BM25Index.build defaults).
K1, B = 1.2, 0.75
TOP = 10
# The standard analyzer keeps \w runs; anything else inside one of our tokens is joined.
_NON_WORD = re.compile(r"\W+")
# Milvus VARCHAR limit; a passage's token text is far below it.
MAX_TEXT = 65_535


def as_text(tokens: list[str]) -> str:
    return " ".join(_NON_WORD.sub("_", t) for t in tokens if t)


class MilvusBM25:
    """The in-app BM25's two members the retriever uses (``scores``, ``vocab``), answered by Milvus."""

    def __init__(self, client, collection: str, n_rows: int, vocab: dict[str, int], limit: int) -> None:
        self.client, self.collection, self.n_rows, self.vocab, self.limit = client, collection, n_rows, vocab, limit
        self.latencies: list[float] = []

    @classmethod
    def build(cls, client, collection: str, token_lists: list[list[str]], vocab: dict[str, int],
              limit: int) -> "MilvusBM25":
        from pymilvus import DataType, Function, FunctionType

        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["sparse"]))
        index_params = client.prepare_index_params()
        index_params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                               params={"bm25_k1": K1, "bm25_b": B})
        client.create_collection(collection, schema=schema, index_params=index_params)
        rows = [{"id": i, "text": as_text(t)[:MAX_TEXT]} for i, t in enumerate(token_lists)]
        for start in range(0, len(rows), 2000):
            client.insert(collection, rows[start:start + 2000])
        client.flush(collection)
        client.load_collection(collection)
        return cls(client, collection, len(token_lists), vocab, limit)

    def scores(self, query_tokens) -> np.ndarray:
        out = np.zeros(self.n_rows, dtype=np.float32)
        text = as_text(list(dict.fromkeys(query_tokens)))
        if not text:
            return out
        t0 = time.perf_counter()
        hits = self.client.search(self.collection, data=[text], anns_field="sparse", limit=min(self.limit, self.n_rows),
                                  search_params={"metric_type": "BM25"}, output_fields=[])
        self.latencies.append((time.perf_counter() - t0) * 1000)
        for hit in hits[0]:
            # Milvus Lite 3.2 reports BM25 as a negative distance (smaller is better); a
            # Milvus server reports the positive score. Either way the magnitude is the score.
            out[int(hit["id"])] = abs(float(hit["distance"]))
        return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else 0.0


def keyword_agreement(app, milvus: MilvusBM25, questions: list[str]) -> dict:
    overlap, same_first, app_ms = [], [], []
    for q in questions:
        tokens = tokenize(q)
        t0 = time.perf_counter()
        a = app.scores(tokens)
        app_ms.append((time.perf_counter() - t0) * 1000)
        m = milvus.scores(tokens)
        top_a = [int(i) for i in np.argsort(-a, kind="stable")[:TOP] if a[i] > 0]
        top_m = [int(i) for i in np.argsort(-m, kind="stable")[:TOP] if m[i] > 0]
        if not top_a and not top_m:
            continue
        overlap.append(len(set(top_a) & set(top_m)) / max(len(top_a), len(top_m)))
        same_first.append(float(bool(top_a) and bool(top_m) and top_a[0] == top_m[0]))
    return {"overlap@10": float(np.mean(overlap)), "same_first": float(np.mean(same_first)),
            "app_ms": (percentile(app_ms, 0.5), percentile(app_ms, 0.95)),
            "milvus_ms": (percentile(milvus.latencies, 0.5), percentile(milvus.latencies, 0.95))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="seed,md")
    parser.add_argument("--milvus-uri", default=None, help="default: Milvus Lite in a temporary folder")
    parser.add_argument("--keyword-limit", type=int, default=200, help="passages Milvus returns per keyword search")
    args = parser.parse_args()
    from rag.index.vectors.milvus_index import client_for

    embedder = CachedEmbedder(make_embedder(Settings()))
    with tempfile.TemporaryDirectory() as tmp:
        client = client_for(args.milvus_uri or str(Path(tmp) / "bm25.db"))
        for set_name in args.sets.split(","):
            questions_path, corpus = SETS[set_name]
            items = load_items(questions_path)
            settings = Settings(corpus_dir=corpus, index_dir=Path(tmp) / set_name)
            build_index(settings, embedder=embedder, full=True)
            retriever = Retriever(settings, embedder)
            loaded = retriever._refresh()
            t0 = time.perf_counter()
            milvus = MilvusBM25.build(client, f"bm25_{set_name}", loaded.tokens, loaded.bm25.vocab, args.keyword_limit)
            built = time.perf_counter() - t0
            agreement = keyword_agreement(loaded.bm25, milvus, [it["question"] for it in items])
            in_app = evaluate(retriever, items, k=10)
            view = retriever.served._view
            retriever.served._view = replace(view, index=replace(view.index, bm25=milvus))
            retriever.served._index = retriever.served._view.index
            through_milvus = evaluate(retriever, items, k=10)
            print(f"\n### {set_name} ({questions_path.name}, {len(items)} questions, {len(loaded.chunks)} passages; "
                  f"Milvus BM25 collection built in {built:.1f}s)")
            print(f"keyword top-{TOP}: overlap {agreement['overlap@10']:.3f}, same first passage "
                  f"{agreement['same_first']:.3f}")
            print(f"keyword search p50/p95 ms: in-app {agreement['app_ms'][0]:.2f} / {agreement['app_ms'][1]:.2f}, "
                  f"Milvus {agreement['milvus_ms'][0]:.2f} / {agreement['milvus_ms'][1]:.2f}")
            print(f"{'':<16}{'in-app BM25':>14}{'Milvus BM25':>14}")
            for metric in ("recall@5", "mrr@10", "recall@3000ch", "wrongly_abstained"):
                print(f"{metric:<16}{in_app['overall'].get(metric, 0):>14.3f}"
                      f"{through_milvus['overall'].get(metric, 0):>14.3f}")
            declined = [r["per_kind"].get("unanswerable", {}).get("abstained", 0) for r in (in_app, through_milvus)]
            print(f"{'uncovered decl.':<16}{declined[0]:>14.3f}{declined[1]:>14.3f}")
            print(f"{'retrieve p50 ms':<16}{in_app['latency_ms']['p50']:>14.1f}"
                  f"{through_milvus['latency_ms']['p50']:>14.1f}")


if __name__ == "__main__":
    main()
