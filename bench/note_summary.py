"""Whole-note answers ("总结一下《X》这篇笔记") against each note's own top-level sections.

    python bench/note_summary.py --set corpus INDEX_DIR [--set ../shared/corpora/LLMForEverybody INDEX_DIR2]

Questions are made from each corpus: 10 notes with two or more top-level sections, every
k-th in path order, asked by file name, in Chinese and English by turns. The gold of a note
is read from its raw text, not from the index: Markdown headings of the shallowest level
that occurs twice or more; in plain-text notes, the numbered questions ("1、…", "4 …") of
at most 60 characters.

Per set: the share of a note's top-level sections whose heading the answer shows (target
≥ 0.80), whether every citation is to that note, the answer's length and mode. Beside them,
the hand-written whole-note questions of that corpus (``--questions``, default
bench/data/ask_about_notes.jsonl): the share of the note's top-level sections the answer
cites (a cited passage inside the section; target ≥ 0.80) and the share whose heading it shows.
"""
from __future__ import annotations

import os
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ask_about_notes import DEFAULT, corpus_key, load, score_whole  # noqa: E402
from bench.corpus_sets import main_over_sets  # noqa: E402
from rag.answer.chat import ChatEngine  # noqa: E402
from rag.reading.ingest import discover_notes  # noqa: E402
from rag.answer.llm import select_backend  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.reading.units import ITEM  # noqa: E402

NOTES = 10
_MD = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_NUMBERED = re.compile(r"^\d{1,2}(?:、|\s)\s*\S.{0,60}$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def top_sections(text: str, markdown: bool) -> list[str]:
    headings: list[tuple[int, str]] = []
    in_code = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        elif markdown and not in_code and (m := _MD.match(line)):
            headings.append((len(m.group(1)), m.group(2)))
        elif not markdown and (m := _NUMBERED.match(line)):
            headings.append((10, m.group(0)))
    for level in sorted({lv for lv, _ in headings}):
        titles = [t for lv, t in headings if lv == level]
        if len(titles) >= 2:
            return titles
    return []


def squash(text: str) -> str:
    return re.sub(r"[\s*`#]+", "", ITEM.sub("", text, count=1)).lower()


def run_set(corpus: Path, index: Path, questions: Path = DEFAULT) -> dict:
    # BENCH_LLM=llamacpp|openai (the backend's RAG_* settings apply): the summaries the LLM
    # writes section by section (rag/answer/note_summary_llm.py) instead of the extractive outline.
    backend = os.environ.get("BENCH_LLM", "none")
    settings = Settings().model_copy(update={"corpus_dir": corpus, "index_dir": index, "llm_backend": backend})
    llm = select_backend(settings).model if backend != "none" else None
    engine = ChatEngine(settings, Retriever.from_settings(settings), llm)
    notes = []
    for path in discover_notes(corpus, settings.extensions).paths:
        sections = top_sections(path.read_text(encoding="utf-8", errors="replace"), path.suffix == ".md")
        if len(sections) >= 2:
            notes.append((path.relative_to(corpus).as_posix(), sections))
    step = max(1, len(notes) // NOTES)
    shares, alone, lengths, modes = [], 0, [], []
    for i, (source, sections) in enumerate(notes[::step][:NOTES]):
        stem = Path(source).stem
        question = f"总结一下《{stem}》这篇笔记" if i % 2 == 0 else f"Summarize my note “{stem}”"
        answer = engine.ask(question)
        shown = squash(answer.text)
        shares.append(sum(squash(s) in shown for s in sections) / len(sections))
        alone += all(s.hit.source == source for s in answer.sources) and bool(answer.sources)
        lengths.append(len(answer.text))
        modes.append(answer.mode)
        print(f"  {question}: {shares[-1]:.2f} of {len(sections)} sections, {len(answer.text)} chars, {answer.mode}",
              file=sys.stderr)
    hand = score_whole(engine, load(questions, corpus_key(corpus), "whole_note"),
                       log=lambda line: print(line, file=sys.stderr))
    return {"n": len(shares), "share": statistics.mean(shares), "alone": alone, "max_len": max(lengths),
            "modes": {m: modes.count(m) for m in set(modes)}, "hand": hand}


HEADER = ["notes", "questions", "top-level sections shown", "cites only that note", "longest answer", "modes",
          "hand-written: questions", "sections cited", "headings shown", "cites only that note", "longest", "modes"]


def row(corpus: str, r: dict) -> list[str]:
    h = r["hand"]
    hand = [str(h["n"]), f"{h['cited']:.3f}", f"{h['shown']:.3f}", f"{h['alone']}/{h['n']}", str(h["max_len"]),
            str(h["modes"]) + (f", {h['by_llm']} written by the LLM" if h["by_llm"] else "")] if h["n"] else ["0", "-", "-", "-", "-", "-"]
    return [corpus, str(r["n"]), f"{r['share']:.3f}", f"{r['alone']}/{r['n']}", str(r["max_len"]), str(r["modes"])] + hand


def main() -> int:
    return main_over_sets(__doc__, HEADER, run_set, row, questions=DEFAULT)


if __name__ == "__main__":
    sys.exit(main())
