"""Time from question to the moment the prompt is handed to the LLM.

Covers retrieval and prompt assembly (token counting with the model's tokenizer
included), not the follow-up rewrite and not generation. Target: p50 <= 100 ms.

    python bench/answer_latency.py [--index index/] [--backend llamacpp] [--repeat 3]

Needs an index of the sample notes (`rag index`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.chat import ChatEngine  # noqa: E402
from rag.search.conversation import Message  # noqa: E402
from rag.core.settings import Settings  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).parent / "data" / "dev.jsonl"))
    ap.add_argument("--corpus")
    ap.add_argument("--index")
    ap.add_argument("--backend", default="llamacpp", choices=["auto", "openai", "llamacpp"],
                    help="whose tokenizer fits the prompt to the window (default: llamacpp)")
    ap.add_argument("--base-url", help="OpenAI-compatible server for --backend openai")
    ap.add_argument("--model", help="model name on that server")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the question set")
    args = ap.parse_args()

    overrides: dict = {"llm_backend": args.backend}
    if args.corpus:
        overrides["corpus_dir"] = Path(args.corpus)
    if args.index:
        overrides["index_dir"] = Path(args.index)
    if args.base_url:
        overrides["llm_base_url"] = args.base_url
    if args.model:
        overrides["llm_model"] = args.model
    settings = Settings(**overrides)
    engine = ChatEngine.from_settings(settings)
    if engine.llm is None:
        print(f"no LLM backend: {engine.backend_reason}", file=sys.stderr)
        return 2
    items = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [(it["question"], [Message.from_dict(d) for d in it.get("history") or []]) for it in items]

    t0 = time.perf_counter()
    engine.prepare(*questions[0], rewrite=False)  # loads the embedder and the tokenizer
    warmup = time.perf_counter() - t0

    total: list[float] = []
    retrieval: list[float] = []
    prompt_tokens: list[int] = []
    for _ in range(args.repeat):
        for question, history in questions:
            t0 = time.perf_counter()
            prep = engine.prepare(question, history, rewrite=False)
            total.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.retriever.retrieve(question, history, k=settings.top_k)
            retrieval.append(time.perf_counter() - t0)
            if prep.prompt is not None:
                prompt_tokens.append(prep.prompt.tokens)

    status = engine.status()
    print(f"index: {status.index.files} files, {status.index.chunks} chunks ({status.index.embedder})")
    print(f"LLM tokenizer: {engine.llm.name}; window {engine.llm.context_tokens} tokens, "
          f"context_chars {settings.context_chars}")
    print(f"questions: {len(questions)} x {args.repeat} passes; warm-up (model loads) {warmup * 1000:.0f} ms")
    ms = lambda v: f"{v * 1000:6.1f} ms"  # noqa: E731
    print(f"question -> prompt handed to LLM: p50 {ms(statistics.median(total))}  p95 {ms(percentile(total, 95))}"
          f"  max {ms(max(total))}")
    print(f"  of which retrieval:            p50 {ms(statistics.median(retrieval))}  p95 {ms(percentile(retrieval, 95))}")
    if prompt_tokens:
        print(f"prompt size: median {statistics.median(prompt_tokens):.0f} tokens, max {max(prompt_tokens)}; "
              f"{len(prompt_tokens)}/{len(total)} prepared an LLM prompt (the rest: not in the notes)")
    print(f"target p50 <= 100 ms: {'met' if statistics.median(total) <= 0.1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
