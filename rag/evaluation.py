"""Retrieval metrics on a question set (format: bench/data/dev.jsonl, described in bench/README.md)."""
from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from rag.batch import request_scope
from rag.search.conversation import Message
from rag.search.retrieval import Hit, RetrievalResult

CONTEXT_BUDGET = 3000


class SupportsRetrieve(Protocol):
    def retrieve(self, question: str, history: Sequence[Message] = (), k: int | None = None) -> RetrievalResult: ...


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@dataclass(frozen=True)
class Gold:
    """One section an answer needs, in either of the two gold formats.

    Anchors (``bench/data/dev.jsonl``): a passage is right when its text, whitespace
    removed, contains one of the phrases. File + span (``dev-md.jsonl``): a passage is
    right when it comes from ``file`` and its lines overlap ``[line_start, line_end]``.
    """

    anchors: tuple[str, ...] = ()
    file: str | None = None
    line_start: int = 0
    line_end: int = 0

    def matches(self, source: str, line_start: int, line_end: int, text: str) -> bool:
        if self.file is not None:
            return source == self.file and line_start <= self.line_end and line_end >= self.line_start
        squashed = _squash(text)
        return any(a and a in squashed for a in self.anchors)


def gold_of(item: dict) -> list[Gold]:
    """The sections a question needs (several for `multi`); [] for an unanswerable one."""
    if item.get("gold"):
        return [Gold(tuple(_squash(a) for a in g["anchors"])) for g in item["gold"]]
    if item.get("anchors"):
        return [Gold(tuple(_squash(a) for a in item["anchors"]))]
    if item.get("file") and item.get("line_start"):
        return [Gold(file=item["file"], line_start=int(item["line_start"]), line_end=int(item["line_end"]))]
    return []


def first_hit_rank(hits: Sequence[Hit], gold: Gold) -> int | None:
    return next((h.rank for h in hits if gold.matches(h.source, h.line_start, h.line_end, h.text)), None)


def within_budget(hits: Sequence[Hit], gold: Gold, budget: int = CONTEXT_BUDGET) -> bool:
    """Is the gold among the passages an LLM would read, in rank order, within ``budget`` characters?

    Each hit is read as the answer prompt reads it (``Hit.reading``: its window past the
    budget, rag/search/windows.py); the last passage is cut to what is left of the budget,
    and its line span with it.
    """
    used = 0
    for hit in hits:
        read = hit.reading
        text = read.text[: budget - used]
        line_end = read.line_end
        if len(text) < len(read.text):
            line_end = min(read.line_end, read.line_start + text.count("\n"))
        if gold.matches(read.source, read.line_start, line_end, text):
            return True
        used += len(text)
        if used >= budget:
            return False
    return False


def evaluate(retriever: SupportsRetrieve, items: list[dict], k: int = 10) -> dict:
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    latencies = []
    failures = []
    for item in items:
        history = [Message.from_dict(d) for d in item.get("history") or []]
        t0 = time.perf_counter()
        scope = request_scope(item)  # "in", "tags", "since", "until" of a scoped question
        result = (retriever.retrieve(item["question"], history, k=k, scope=scope) if scope
                  else retriever.retrieve(item["question"], history, k=k))
        latencies.append(time.perf_counter() - t0)
        kind = item.get("kind", "all")
        m = per_kind[kind]
        groups = gold_of(item)
        if not groups:  # unanswerable
            m["abstained"].append(float(not result.relevant))
            continue
        m["wrongly_abstained"].append(float(not result.relevant))
        ranks = [first_hit_rank(result.hits, g) for g in groups]
        # For questions needing several sections every one must be found; rank is the worst.
        worst = None if any(r is None for r in ranks) else max(ranks)
        for cutoff in (1, 3, 5, 10):
            m[f"recall@{cutoff}"].append(float(worst is not None and worst <= cutoff))
        m["mrr@10"].append(1.0 / worst if worst and worst <= 10 else 0.0)
        m["recall@3000ch"].append(float(all(within_budget(result.hits, g) for g in groups)))
        if worst is None or worst > 5:
            failures.append({"id": item.get("id"), "kind": kind, "question": item["question"], "rank": worst,
                             "got": [f"{h.source}:{h.line_start}-{h.line_end}" for h in result.hits[:5]],
                             "want": f"{item.get('file')}:{item.get('lines') or [item.get('line_start'), item.get('line_end')]}"})
    overall: dict[str, list[float]] = defaultdict(list)
    for kind, metrics in per_kind.items():
        for name, values in metrics.items():
            overall[name].extend(values)
    summarise = lambda ms: {name: round(sum(v) / len(v), 3) for name, v in sorted(ms.items()) if v}  # noqa: E731
    latencies.sort()
    return {
        "questions": len(items),
        "overall": summarise(overall),
        "per_kind": {kind: {**summarise(ms), "n": max(len(v) for v in ms.values())} for kind, ms in sorted(per_kind.items())},
        "latency_ms": {"p50": round(1000 * latencies[len(latencies) // 2], 1),
                       "p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1)} if latencies else {},
        "failures": failures,
    }


def evaluate_file(retriever: SupportsRetrieve, path: Path, k: int = 10, topic_switch: bool = False) -> dict:
    items = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not topic_switch:
        return evaluate(retriever, items, k)
    switched = topic_switch_variant(items)
    report = evaluate(retriever, switched, k)
    # The same questions asked alone, for the comparison that matters.
    report["alone"] = evaluate(retriever, [it for it in items if not it.get("history")], k)["overall"]
    return report


def topic_switch_variant(items: list[dict]) -> list[dict]:
    """The questions asked without history, each after an unrelated exchange: the earlier
    turn is another answerable question of the set, about another note (or another
    section when the set has one note), and its answer is that question's gold phrases.

    A complete question on a new topic must be searched as if asked alone; questions that
    need their own history (follow-ups) are left out, since their history is the topic.
    """
    def where(item: dict) -> str:
        return str(item.get("file") or (item.get("gold") or [{}])[0].get("file") or item.get("anchors"))

    donors = [it for it in items if gold_of(it) and not it.get("history")]
    out = []
    for i, item in enumerate(items):
        if item.get("history"):
            continue
        # The donor half the set away, skipping any about the same note: deterministic and unrelated.
        start = (i + len(donors) // 2) % max(len(donors), 1)
        donor = next((donors[(start + j) % len(donors)] for j in range(len(donors))
                      if where(donors[(start + j) % len(donors)]) != where(item)), None)
        if donor is None:
            out.append(item)
            continue
        said = "；".join(donor.get("answer_points") or donor.get("anchors") or []) or donor["question"]
        out.append({**item, "history": [{"role": "user", "content": donor["question"]},
                                        {"role": "assistant", "content": said}]})
    return out


def format_report(report: dict) -> str:
    cols = ["recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "recall@3000ch", "wrongly_abstained",
            "abstained"]
    lines = [f"{'kind':<14}{'n':>4}  " + "  ".join(f"{c:>13}" for c in cols)]
    rows = list(report["per_kind"].items()) + [("OVERALL", {**report["overall"], "n": report["questions"]})]
    for kind, m in rows:
        cells = "  ".join(f"{m[c]:>13.3f}" if c in m else f"{'-':>13}" for c in cols)
        lines.append(f"{kind:<14}{m.get('n', ''):>4}  {cells}")
    if "alone" in report:
        alone = report["alone"]
        lines.append("after an unrelated exchange / asked alone: " + ", ".join(
            f"{c} {report['overall'].get(c, 0):.3f} / {alone.get(c, 0):.3f}" for c in ("recall@5", "mrr@10", "recall@3000ch")))
    lines.append(f"latency ms: {report['latency_ms']}")
    for f in report["failures"]:
        lines.append(f"  miss {f['id']} [{f['kind']}] rank={f['rank']} {f['question'][:40]} want {f['want']} got {f['got'][:3]}")
    return "\n".join(lines)
