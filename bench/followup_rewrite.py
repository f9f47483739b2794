"""Does rewriting follow-ups with the LLM help retrieval? And do retrieval-only answers behave?

1. recall@5 on the `followup` questions of the dev set, retrieving with the question
   as asked (plus history, which the retriever resolves by itself) and with the LLM's
   standalone rewrite (plus history). A hit: some passage among the top 5 contains one
   of the item's anchors (both with whitespace removed).
2. Retrieval-only mode over the whole dev set: every citation in every answer points
   at a shown passage; `unanswerable` questions get the "not in your notes" answer.

    python bench/followup_rewrite.py [--index index/] [--backend llamacpp|openai --base-url URL --model NAME]

Needs an index of the sample notes (`rag index`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.chat import ChatEngine  # noqa: E402
from rag.search.conversation import Message  # noqa: E402
from rag.answer.prompting import NOT_COVERED  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

K = 5


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def found(hits, anchors: list[str]) -> bool:
    wanted = [squash(a) for a in anchors]
    return any(a in squash(h.text) for h in hits[:K] for a in wanted)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).parent / "data" / "dev.jsonl"))
    ap.add_argument("--corpus")
    ap.add_argument("--index")
    ap.add_argument("--backend", default="llamacpp", choices=["auto", "openai", "llamacpp"])
    ap.add_argument("--base-url")
    ap.add_argument("--model")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every rewrite")
    args = ap.parse_args()

    overrides: dict = {"llm_backend": args.backend, "rewrite_followups": "always"}
    for key, value in (("corpus_dir", args.corpus), ("index_dir", args.index)):
        if value:
            overrides[key] = Path(value)
    if args.base_url:
        overrides["llm_base_url"] = args.base_url
    if args.model:
        overrides["llm_model"] = args.model
    settings = Settings(**overrides)
    engine = ChatEngine.from_settings(settings)
    items = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line.strip()]

    # --- 1. follow-ups, with and without the rewrite --------------------------------------
    followups = [it for it in items if it["kind"] == "followup"]
    plain_hits = rewrite_hits = rewritten = 0
    t_rewrite = 0.0
    if engine.llm is None:
        print(f"no LLM ({engine.backend_reason}): rewrite comparison skipped")
    else:
        print(f"rewriting with {engine.llm.name}")
        for it in followups:
            history = [Message.from_dict(d) for d in it["history"]]
            plain = engine.prepare(it["question"], history, rewrite=False)
            t0 = time.perf_counter()
            with_rw = engine.prepare(it["question"], history, rewrite=True)
            t_rewrite += time.perf_counter() - t0
            a, b = found(plain.retrieval.hits, it["anchors"]), found(with_rw.retrieval.hits, it["anchors"])
            plain_hits += a
            rewrite_hits += b
            rewritten += with_rw.standalone_question is not None
            if args.verbose:
                print(f"  {it['id']} {'+' if a else '-'}{'+' if b else '-'} {it['question']!r} -> "
                      f"{with_rw.standalone_question!r}")
        n = len(followups)
        print(f"follow-ups: {n}; rewrite used for {rewritten} (the rest: not elliptical, or the rewrite was "
              f"rejected as unfaithful)")
        print(f"recall@{K} without rewrite: {plain_hits}/{n} = {plain_hits / n:.2f}")
        print(f"recall@{K} with rewrite:    {rewrite_hits}/{n} = {rewrite_hits / n:.2f}"
              f"   (rewrite + retrieval: {t_rewrite / n:.2f} s per question)")

    # --- 2. retrieval-only answers over the whole set ------------------------------------------
    ro = ChatEngine(settings.model_copy(update={"llm_backend": "none"}), engine.retriever, None)
    valid = total = cited_any = 0
    unanswerable = [it for it in items if it["kind"] == "unanswerable"]
    said_not_covered = false_not_covered = 0
    for it in items:
        answer = ro.ask(it["question"], [Message.from_dict(d) for d in it.get("history") or []])
        shown = {s.n for s in answer.sources}
        numbers = {int(n) for n in re.findall(r"\[(\d{1,3})\]", answer.text)}
        total += 1
        valid += numbers <= shown
        cited_any += bool(numbers)
        not_covered = answer.mode == "not-in-notes" and answer.text.startswith(tuple(NOT_COVERED.values()))
        if it["kind"] == "unanswerable":
            said_not_covered += not_covered
        elif not_covered:
            false_not_covered += 1
    print(f"retrieval-only over {total} dev questions: citations all point at shown passages in {valid}/{total} "
          f"({cited_any} answers cite something)")
    print(f"unanswerable questions answered 'not in your notes': {said_not_covered}/{len(unanswerable)}; "
          f"answerable questions wrongly told so: {false_not_covered}/{total - len(unanswerable)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
