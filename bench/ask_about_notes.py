"""The hand-written questions of issue 17 (``bench/data/ask_about_notes.jsonl``), scored the
way bench/scoped.py, bench/which_notes.py and bench/note_summary.py score their generated ones.

One JSON object a line: ``id``, ``corpus`` ("dev": the sample notes, ``corpus/``; "md":
LLMForEverybody), ``kind``, ``question`` and the gold of its kind:

* ``scoped``: ``in`` (folders or notes, as a user picks them), and the section that answers it
  as the dev sets give it: ``file`` + ``lines`` + ``anchors`` (dev), ``file`` + ``heading`` +
  ``line_start``/``line_end`` (md). The notes carry no tags or dates of their own (every
  date is the copy's modification time), so only ``in`` scopes these questions.
* ``whole_note``: ``note`` and ``sections`` (each top-level content section: ``heading``, and
  ``line``, its heading line; a section runs to the line before the next one). References and
  the author's footer are not sections a summary must cover.
* ``which_notes``: ``term`` (a regular expression) and ``notes``: every note whose text holds
  it (Latin terms as whole words), found by grep over the corpus, so the gold is complete.

The gold was written by reading the notes; ``bench/data/make_ask_about_notes.py`` only looks up
line numbers and grep sets for the hand-picked sections and terms.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path, PurePosixPath

from rag.batch import request_scope
from rag.evaluation import evaluate
from rag.reading.units import ITEM

DEFAULT = Path(__file__).resolve().parent / "data" / "ask_about_notes.jsonl"
LISTED = 10


def corpus_key(path: Path | str) -> str:
    """"md" for LLMForEverybody (its notes folder or dev-md.jsonl), else "dev" (the sample notes)."""
    text = str(path)
    return "md" if "LLMForEverybody" in text or "dev-md" in text else "dev"


def load(path: Path | str, corpus: str, kind: str) -> list[dict]:
    items = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [it for it in items if it["corpus"] == corpus and it["kind"] == kind]


def score_scoped(retriever, items: list[dict]) -> dict:
    """recall@5 and MRR inside each question's scope, and hits outside it (must be 0)."""
    if not items:
        return {"n": 0}
    overall = evaluate(retriever, items)["overall"]
    stray = total = 0
    for item in items:
        scope = request_scope(item)
        hits = retriever.retrieve(item["question"], k=5, scope=scope).hits
        total += len(hits)
        stray += sum(not scope.allows(h.source, (), "") for h in hits)
    return {"n": len(items), "recall@5": overall["recall@5"], "mrr": overall["mrr@10"], "stray": stray,
            "total": total}


def score_which(engine, items: list[dict], log=None) -> dict:
    """Recall of the gold notes in the first 10 listed, precision, notes listed twice."""
    recalls, precisions, twice = [], [], 0
    for item in items:
        answer = engine.ask(item["question"])
        listed = [m.source for m in answer.notes][:LISTED]
        gold = set(item["notes"])
        twice += len(listed) - len(set(listed))
        recalls.append(len(gold & set(listed)) / min(len(gold), LISTED))
        precisions.append(len(gold & set(listed)) / len(listed) if listed else 0.0)
        if log:
            log(f"  [hand] {item['question']}  gold {len(gold)}  listed {len(listed)}  recall {recalls[-1]:.2f}"
                f"  missed {sorted(gold - set(listed))}")
    if not items:
        return {"n": 0}
    return {"n": len(items), "recall": statistics.mean(recalls), "precision": statistics.mean(precisions),
            "twice": twice}


def _squash(text: str) -> str:
    return re.sub(r"[\s*`#]+", "", ITEM.sub("", text, count=1)).lower()


def score_whole(engine, items: list[dict], log=None) -> dict:
    """Per question: the share of the note's top-level sections the answer cites (a cited
    passage overlaps the section's lines), the share whose heading it shows, whether every
    citation is from that note."""
    cited_shares, shown_shares, alone, lengths, modes, by_llm = [], [], 0, [], [], 0
    for item in items:
        answer = engine.ask(item["question"])
        secs = item["sections"]
        spans = [(s["line"], (secs[i + 1]["line"] - 1) if i + 1 < len(secs) else 10**9) for i, s in enumerate(secs)]
        by_n = {s.n: s.hit for s in answer.sources}
        cited = [by_n[n] for n in answer.cited if n in by_n]
        mine = [h for h in cited if h.source == item["note"]]
        covered = sum(any(h.line_start <= b and h.line_end >= a for h in mine) for a, b in spans)
        shown = _squash(answer.text)
        cited_shares.append(covered / len(spans))
        shown_shares.append(sum(_squash(s["heading"]) in shown for s in secs) / len(secs))
        alone += bool(answer.sources) and all(s.hit.source == item["note"] for s in answer.sources)
        lengths.append(len(answer.text))
        modes.append(answer.mode)
        by_llm += answer.backend != "none"
        if log:
            note = answer.sources[0].hit.source if answer.sources else None
            log(f"  [hand] {item['question']}: cites {cited_shares[-1]:.2f}, shows {shown_shares[-1]:.2f} of "
                f"{len(secs)} sections, {len(answer.text)} chars, {answer.mode} by {answer.backend}, note {PurePosixPath(note).name if note else None}")
    if not items:
        return {"n": 0}
    return {"n": len(items), "cited": statistics.mean(cited_shares), "shown": statistics.mean(shown_shares),
            "alone": alone, "max_len": max(lengths), "modes": {m: modes.count(m) for m in set(modes)},
            "by_llm": by_llm}
