"""'Which notes mention X?' answers against the notes that really contain X.

    python bench/which_notes.py --set corpus INDEX_DIR [--set ../shared/corpora/LLMForEverybody INDEX_DIR2]

Questions are made from each corpus, not written by hand, so no one tunes on them: the
terms (Latin technical terms: 3+ characters with two capitals or a digit, like LoRA, RLHF,
GPT-3; Chinese nouns of 3+ characters as jieba tags them) found in 2 to 8 notes, sorted by
how many notes hold them, every k-th of them up to 10; half asked in Chinese ("哪些笔记提到了
X？"), half in English ("Which notes mention X?"). The gold of a term is every note whose
text contains it (a Latin term as a whole word, case aside).

Per set: recall of the gold notes in the first 10 listed, precision of the notes listed,
how often a note is listed twice (must be 0), the answer mode, and the time per question.
Beside them, the hand-written which-notes questions of that corpus (``--questions``, default
bench/data/ask_about_notes.jsonl; gold: every note holding the term, by grep): recall in the
first 10 and precision.
"""
from __future__ import annotations

import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.index.bm25 import tokenize  # noqa: E402
from bench.ask_about_notes import DEFAULT, corpus_key, load, score_which  # noqa: E402
from bench.corpus_sets import main_over_sets  # noqa: E402
from rag.answer.chat import ChatEngine  # noqa: E402
from rag.reading.ingest import discover_notes  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

QUESTIONS = 10
LISTED = 10
_LATIN = re.compile(r"\b[A-Za-z][A-Za-z0-9\-]{2,}\b")


def notes_text(corpus: Path, settings: Settings) -> dict[str, str]:
    found = discover_notes(corpus, settings.extensions)
    return {p.relative_to(corpus).as_posix(): p.read_text(encoding="utf-8", errors="replace") for p in found.paths}


def _terms(text: str) -> set[str]:
    from jieba import posseg

    tokenize("")  # jieba loaded quietly
    latin = {t for t in _LATIN.findall(text) if sum(c.isupper() for c in t) >= 2 or any(c.isdigit() for c in t)}
    chinese = {w.word for w in posseg.lcut(text) if len(w.word) >= 3 and not w.word.isascii()
               and (w.flag.startswith("n") or w.flag == "vn")}
    return latin | chinese


def _holds(text: str, term: str) -> bool:
    if term.isascii():
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None
    return term in text


def make_questions(texts: dict[str, str]) -> list[tuple[str, str, set[str]]]:
    """(question, term, gold notes): terms held by 2-8 notes, spread over that range."""
    held: Counter[str] = Counter()
    for text in texts.values():
        held.update(_terms(text))
    candidates = sorted((t for t, n in held.items() if 2 <= n <= 8), key=lambda t: (held[t], t))
    step = max(1, len(candidates) // QUESTIONS)
    chosen = candidates[::step][:QUESTIONS]
    out = []
    for i, term in enumerate(chosen):
        gold = {source for source, text in texts.items() if _holds(text, term)}
        question = f"哪些笔记提到了 {term}？" if i % 2 == 0 else f"Which notes mention {term}?"
        out.append((question, term, gold))
    return out


def run_set(corpus: Path, index: Path, questions: Path = DEFAULT) -> dict:
    settings = Settings().model_copy(update={"corpus_dir": corpus, "index_dir": index, "llm_backend": "none"})
    engine = ChatEngine(settings, Retriever.from_settings(settings), None)
    engine.ask("哪些笔记提到了 warm up？")
    recalls, precisions, twice, modes, times = [], [], 0, Counter(), []
    for question, term, gold in make_questions(notes_text(corpus, settings)):
        t0 = time.perf_counter()
        answer = engine.ask(question)
        times.append(time.perf_counter() - t0)
        modes[answer.mode] += 1
        listed = [m.source for m in answer.notes][:LISTED]
        twice += len(listed) - len(set(listed))
        recalls.append(len(gold & set(listed)) / min(len(gold), LISTED))
        precisions.append(len(gold & set(listed)) / len(listed) if listed else 0.0)
        print(f"  {question}  gold {len(gold)}  listed {len(listed)}  recall {recalls[-1]:.2f}", file=sys.stderr)
    hand = score_which(engine, load(questions, corpus_key(corpus), "which_notes"),
                       log=lambda line: print(line, file=sys.stderr))
    return {"recall": statistics.mean(recalls), "precision": statistics.mean(precisions), "twice": twice,
            "modes": dict(modes), "p50_ms": 1000 * statistics.median(times), "n": len(recalls), "hand": hand}


HEADER = ["notes", "questions", "recall of gold notes in first 10", "precision", "listed twice", "modes", "p50 ms",
          "hand-written: questions", "recall in first 10", "precision", "listed twice"]


def row(corpus: str, r: dict) -> list[str]:
    return [corpus, str(r["n"]), f"{r['recall']:.3f}", f"{r['precision']:.3f}", str(r["twice"]), str(r["modes"]),
            f"{r['p50_ms']:.0f}"] + ([str(h["n"]), f"{h['recall']:.3f}", f"{h['precision']:.3f}", str(h["twice"])]
                                     if (h := r["hand"])["n"] else ["0", "-", "-", "-"])


def main() -> int:
    return main_over_sets(__doc__, HEADER, run_set, row, questions=DEFAULT)


if __name__ == "__main__":
    sys.exit(main())
