"""Scoped questions: the dev sets' answerable questions, each limited to its gold note's folder.

    python bench/scoped.py --set ../shared/eval/dev-md.jsonl INDEX_DIR [--set ../shared/eval/dev.jsonl INDEX_DIR2]

The scope of a question is the folder of the note that answers it (the note itself when it
sits at the top of the notes folder), given as ``"in"`` exactly as a user would. Per set:
recall@5 and MRR asked inside the scope beside the same questions unscoped, the share of
hits outside the scope (must be 0), and retrieval p50 scoped against unscoped (same run,
alternating; the target is at most 1.2x).

Beside them, the hand-written scoped questions of that corpus (``--questions``, default
bench/data/ask_about_notes.jsonl; bench/ask_about_notes.py): recall@5, MRR, hits outside.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ask_about_notes import DEFAULT, corpus_key, load, score_scoped  # noqa: E402
from rag.batch import request_scope  # noqa: E402
from rag.evaluation import evaluate  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402


def scoped(items: list[dict], sources: set[str]) -> list[dict]:
    out = []
    for item in items:
        gold = item.get("file")
        if not gold or item.get("kind") == "unanswerable":
            continue
        if gold not in sources:  # the seed set names notes by file name only
            gold = next((s for s in sources if PurePosixPath(s).name == gold), gold)
        folder = str(PurePosixPath(gold).parent)
        out.append({**item, "in": [gold if folder == "." else folder]})
    return out


def _hand(retriever, path: Path, questions: str) -> str:
    r = score_scoped(retriever, load(path, corpus_key(questions), "scoped"))
    if not r["n"]:
        return "0 | - | - | - |"
    return f"{r['n']} | {r['recall@5']:.3f} | {r['mrr']:.3f} | {r['stray']}/{r['total']} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--set", nargs=2, action="append", metavar=("QUESTIONS", "INDEX"), required=True)
    ap.add_argument("--questions", type=Path, default=DEFAULT, help="hand-written questions (kind scoped)")
    args = ap.parse_args()
    print("| set | questions | recall@5 scoped / unscoped | MRR scoped / unscoped | hits outside the scope | "
          "p50 ms scoped / unscoped | hand-written: questions | recall@5 | MRR | hits outside |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for questions, index in args.set:
        settings = Settings().model_copy(update={"index_dir": Path(index)})
        retriever = Retriever.from_settings(settings)
        sources = {c.source for c in retriever._current_view().index.chunks}
        items = scoped([json.loads(line) for line in Path(questions).read_text(encoding="utf-8").splitlines()
                        if line.strip()], sources)
        plain = [{k: v for k, v in it.items() if k != "in"} for it in items]
        retriever.retrieve("warm up")
        inside = evaluate(retriever, items)["overall"]
        outside = evaluate(retriever, plain)["overall"]
        stray = total = 0
        t_scoped, t_plain = [], []
        for item in items:
            scope = request_scope(item)
            t0 = time.perf_counter()
            result = retriever.retrieve(item["question"], k=5, scope=scope)
            t_scoped.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            retriever.retrieve(item["question"], k=5)
            t_plain.append(time.perf_counter() - t0)
            total += len(result.hits)
            stray += sum(not scope.allows(h.source, (), "") for h in result.hits)
        print(f"| {Path(questions).name} | {len(items)} | {inside['recall@5']:.3f} / {outside['recall@5']:.3f} | "
              f"{inside['mrr@10']:.3f} / {outside['mrr@10']:.3f} | {stray}/{total} | "
              f"{1000 * statistics.median(t_scoped):.1f} / {1000 * statistics.median(t_plain):.1f} | "
              + _hand(retriever, args.questions, questions), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
