"""The scorer behind `rag eval` and bench/retrieval_quality.py, on hand-made rankings.

Both gold formats of ../shared/eval/README.md: anchor phrases (a passage hits when its
text, whitespace removed, contains one) and file + line span (a passage hits when it
comes from that file and its lines overlap the span).
"""
from __future__ import annotations

from rag.reading.chunking import Chunk
from rag.evaluation import Gold, evaluate, first_hit_rank, gold_of, within_budget
from rag.search.retrieval import Hit, RetrievalResult


def hit(rank: int, source: str, start: int, end: int, text: str = "x") -> Hit:
    return Hit(rank, 1.0 / rank, Chunk(source, "", start, end, text))


def test_span_gold_needs_the_same_file_and_overlapping_lines():
    gold = Gold(file="a/b.md", line_start=10, line_end=20)
    assert gold.matches("a/b.md", 20, 30, "")
    assert gold.matches("a/b.md", 1, 10, "")
    assert gold.matches("a/b.md", 12, 14, "")
    assert not gold.matches("a/b.md", 21, 30, "")
    assert not gold.matches("a/c.md", 10, 20, "")


def test_anchor_gold_ignores_whitespace_on_both_sides():
    [gold] = gold_of({"anchors": ["低秩 矩阵"]})
    assert gold.matches("any.txt", 1, 1, "只训练两个低\n秩矩阵")
    assert not gold.matches("any.txt", 1, 1, "只训练两个矩阵")


def test_gold_of_reads_every_format_and_none_for_unanswerable():
    assert gold_of({"file": "x.md", "line_start": 3, "line_end": 5}) == [Gold(file="x.md", line_start=3, line_end=5)]
    assert len(gold_of({"gold": [{"anchors": ["a"]}, {"anchors": ["b"]}]})) == 2
    assert gold_of({"kind": "unanswerable", "absent_terms": ["GRPO"]}) == []


def test_rank_is_the_first_hit_that_matches():
    gold = Gold(file="n.md", line_start=50, line_end=60)
    hits = [hit(1, "m.md", 50, 60), hit(2, "n.md", 1, 49), hit(3, "n.md", 55, 70)]
    assert first_hit_rank(hits, gold) == 3


def test_a_passage_cut_by_the_context_budget_keeps_only_the_lines_read():
    gold = Gold(file="n.md", line_start=40, line_end=45)
    long = "\n".join(f"line {i}" for i in range(1, 101))  # lines 1-100, about 800 characters
    hits = [hit(1, "other.md", 1, 1, "y" * 2900), hit(2, "n.md", 1, 100, long)]
    assert not within_budget(hits, gold)  # only ~100 characters of n.md fit: lines 1-13
    assert within_budget(hits, gold, budget=3400)


class Scripted:
    """Returns the rankings it is given, question by question (the scorer's input, not a model)."""

    def __init__(self, answers: dict[str, tuple[bool, list[Hit]]]) -> None:
        self.answers = answers

    def retrieve(self, question, history=(), k=None):
        relevant, hits = self.answers[question]
        return RetrievalResult(question, question, relevant, hits[:k])


def test_evaluate_reports_per_kind_and_declines_for_both_formats():
    items = [
        {"id": "a", "kind": "direct", "question": "q1", "file": "n.md", "line_start": 5, "line_end": 9},
        {"id": "b", "kind": "direct", "question": "q2", "anchors": ["低秩"]},
        {"id": "c", "kind": "paraphrase", "question": "q3", "file": "n.md", "line_start": 5, "line_end": 9},
        {"id": "d", "kind": "unanswerable", "question": "q4"},
    ]
    retriever = Scripted({
        "q1": (True, [hit(1, "n.md", 8, 12)]),
        "q2": (True, [hit(1, "m.md", 1, 2, "无关"), hit(2, "m.md", 3, 4, "低 秩")]),
        "q3": (False, [hit(r, "m.md", 1, 2) for r in range(1, 11)]),
        "q4": (False, [hit(1, "m.md", 1, 2)]),
    })
    report = evaluate(retriever, items, k=10)
    direct = report["per_kind"]["direct"]
    assert direct["recall@1"] == 0.5 and direct["recall@5"] == 1.0 and direct["mrr@10"] == 0.75
    assert report["per_kind"]["paraphrase"]["recall@10"] == 0.0
    assert report["per_kind"]["unanswerable"]["abstained"] == 1.0
    assert report["overall"]["wrongly_abstained"] == round(1 / 3, 3)
    assert [f["id"] for f in report["failures"]] == ["c"]
