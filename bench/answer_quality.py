"""Quality of the extractive answer (no LLM) against two ways of cutting passages.

    python bench/answer_quality.py --set bench/data/dev.jsonl INDEX_DIR [--set dev-md.jsonl INDEX_DIR2]

Each ``--set`` is a question file and the index built from its notes (`rag index
--corpus NOTES --index INDEX_DIR`); the script works on whatever index it is given, so
the figures can be re-run after retrieval or chunking change. Per set, one table:

* **coverage**: the share of a question's gold phrases (``anchors``, or the anchors of
  every section of a ``multi`` question, else ``answer_points``) found in the answer
  text with all whitespace removed, averaged over the answerable questions. An
  answerable question the system calls "not covered" scores 0, for every row alike
  (all three are built on the same retrieval and the same relevance decision);
* **length**: characters of answer text, passages and notices aside (mean without the
  citation markers; max as shown, markers and list marks included: the budget's measure);
* **citation precision**: the share of ``[n]`` whose passage contains the sentence it
  follows (the text since the previous citation or line start, without the list mark or
  the backticks around a line of code);
* **time**: the extractive step on top of retrieval, p50 and p95 (ms);
* **headings cited as claims**: citations whose sentence is a line the index reads as a heading
  (any level of a passage's heading path); a heading names a topic, it says nothing;
* **first claim holds a gold phrase**: the share of answers whose text before the first ``[n]``
  holds one of the question's gold phrases (the first line should be the most direct answer).

Rows: the extractive answer; (a) the old retrieval-only answer (passages quoted under
their numbers) cut to the extractive answer's length; (b) the first 500 characters of
the top passage; and, for reference only (no length limit), the first three passages
whole: what any answer built from them could cover at most.

With ``--topic-switch`` each question asked without history is asked after an unrelated exchange
(``rag.evaluation.topic_switch_variant``: another question of the set and its gold phrases as the
answer; follow-ups are left out), and one more row gives the same questions' answers asked alone:
a complete question on a new topic should be answered as if asked alone.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.embed_cache import CachedEmbedder  # noqa: E402
from rag.answer.chat import ChatEngine  # noqa: E402
from rag.index.embedders.factory import make_embedder  # noqa: E402
from rag.search.conversation import Message  # noqa: E402
from rag.answer.prompting import retrieval_only_text  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.evaluation import topic_switch_variant  # noqa: E402

TOP_PASSAGE_CHARS = 500
_CITE = re.compile(r"\[(\d{1,3})\]")
_SPACE = re.compile(r"\s+")


def gold_phrases(item: dict) -> list[str]:
    if item.get("anchors"):
        return list(item["anchors"])
    if item.get("gold"):
        return [a for g in item["gold"] for a in g.get("anchors", [])]
    return list(item.get("answer_points") or [])


def squash(text: str) -> str:
    return _SPACE.sub("", text)


def coverage(text: str, phrases: list[str]) -> float:
    body = squash(text)
    return sum(squash(p) in body for p in phrases) / len(phrases) if phrases else 0.0


def cited(text: str) -> list[tuple[str, int]]:
    """(the sentence before each ``[n]``, n): the text since the previous citation or line start,
    without the list mark."""
    out, last = [], 0
    for m in _CITE.finditer(text):
        segment = text[last : m.start()].rsplit("\n", 1)[-1].strip()
        last = m.end()
        out.append((re.sub(r"^[-*]\s+", "", segment), int(m.group(1))))
    return out


def citation_checks(text: str, passages: dict[int, str]) -> tuple[int, int]:
    """(citations whose passage contains the sentence before them, citations)."""
    good = total = 0
    for segment, n in cited(text):
        segment = re.sub(r"^`(.*)`$", r"\1", segment.strip())  # a line of code is shown as `code`
        total += 1
        if segment and n in passages and squash(segment) in squash(passages[n]):
            good += 1
    return good, total


def cited_headings(text: str, headings: set[str]) -> int:
    """Citations whose sentence is a heading of the notes: a heading names a topic, it says nothing."""
    return sum(squash(segment) in headings for segment, _ in cited(text))


def answer_body(text: str) -> str:
    """Answer text without citations: what the length counts."""
    return _CITE.sub("", text).strip()


def run_set(questions: Path, index: Path, settings: Settings, *, show: int = 0, topic_switch: bool = False) -> dict:
    settings = settings.model_copy(update={"index_dir": index, "llm_backend": "none"})
    print(f"{questions.name}: budget {settings.extractive_budget_chars} chars, unit vectors "
          f"{settings.unit_vectors}", file=sys.stderr)
    retriever = Retriever.from_settings(settings, CachedEmbedder(make_embedder(settings)))
    engine = ChatEngine(settings, retriever, None)
    items = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    if topic_switch:
        items = topic_switch_variant(items)
    rows = {"extractive": [], "(a) retrieval-only cut": [], "(b) top passage 500": [],
            "(ref) top 3 passages whole": []}
    if topic_switch:
        rows["extractive, asked alone"] = []
    lengths = {k: [] for k in rows}
    full_lengths = {k: [0] for k in rows}  # characters shown, citation markers and list marks included
    cites = {k: [0, 0] for k in rows}
    times: list[float] = []
    firsts: list[bool] = []  # the answer's first claim holds a gold phrase
    kinds: dict[str, list[float]] = {}
    engine.prepare("warm up the embedder and the tokenizer")
    # Every heading of the notes, as the index knows them (each level of each passage's path).
    headings = {squash(h) for c in retriever.served.view().index.chunks for h in c.heading.split(" > ") if squash(h)}
    headings_cited = 0
    for item in items:
        phrases = gold_phrases(item)
        if not phrases or item.get("kind") == "unanswerable":
            continue
        history = [Message.from_dict(d) for d in item.get("history") or []]
        prep = engine.prepare(item["question"], history)
        if prep.mode == "not-in-notes":
            texts = {k: "" for k in rows}
        else:
            t0 = time.perf_counter()
            answer = engine.extractive_text(prep)
            times.append(time.perf_counter() - t0)
            length = len(answer_body(answer))
            old = retrieval_only_text(prep.sources, prep.language)
            top = prep.sources[0].hit.text[:TOP_PASSAGE_CHARS]
            whole = "\n".join(s.hit.text for s in prep.sources[:3])
            texts = {"extractive": answer, "(a) retrieval-only cut": old[:length], "(b) top passage 500": top,
                     "(ref) top 3 passages whole": whole}
        if topic_switch:
            alone = engine.prepare(item["question"])
            texts["extractive, asked alone"] = "" if alone.mode == "not-in-notes" else engine.extractive_text(alone)
            passages_alone = {s.n: s.hit.text for s in alone.sources}
        passages = {s.n: s.hit.text for s in prep.sources}
        for k, text in texts.items():
            rows[k].append(coverage(text, phrases))
            lengths[k].append(len(answer_body(text)))
            full_lengths[k].append(len(text))
            if k.startswith("extractive"):
                good, total = citation_checks(text, passages if k == "extractive" else passages_alone)
                headings_cited += cited_headings(text, headings) if k == "extractive" else 0
                cites[k][0] += good
                cites[k][1] += total
        first_line = _CITE.split(texts["extractive"], maxsplit=1)[0]
        firsts.append(coverage(first_line, phrases) > 0)
        kinds.setdefault(item.get("kind", "?"), []).append(
            (rows["extractive"][-1], rows["(ref) top 3 passages whole"][-1]))
        if show and len(rows["extractive"]) <= show:
            missed = [p for p in phrases if squash(p) not in squash(texts["extractive"])]
            print(f"--- {item['id']} {item['question']}  cov={rows['extractive'][-1]:.2f} "
                  f"(top passage: {rows['(b) top passage 500'][-1]:.2f}) missed: {missed}\n{texts['extractive']}\n")
    return {"rows": rows, "lengths": lengths, "full_lengths": full_lengths, "cites": cites, "times": times,
            "kinds": kinds, "headings_cited": headings_cited, "firsts": firsts}


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else (values[0] if values else 0.0)


def format_table(name: str, r: dict) -> str:
    out = [f"### {name} ({len(r['rows']['extractive'])} answerable questions)", "",
           "| answer | coverage | length (mean / max chars) | citation precision | extractive time p50 / p95 |",
           "|---|---|---|---|---|"]
    for k, covs in r["rows"].items():
        good, total = r["cites"][k]
        precision = f"{good / total:.3f} ({good}/{total})" if total else "—"
        timing = (f"{1000 * statistics.median(r['times']):.1f} / {1000 * _pct(r['times'], 95):.1f} ms"
                  if k == "extractive" and r["times"] else "—")
        out.append(f"| {k} | {statistics.mean(covs):.3f} | {statistics.mean(r['lengths'][k]):.0f} / "
                   f"{max(r['full_lengths'][k]):.0f} | "
                   f"{precision} | {timing} |")
    out.append("")
    out.append("coverage by kind, extractive / top 3 passages whole: " + ", ".join(
        f"{kind} {statistics.mean(e for e, _ in v):.2f} / {statistics.mean(w for _, w in v):.2f} (n={len(v)})"
        for kind, v in sorted(r["kinds"].items())))
    out.append(f"headings cited as claims: {r['headings_cited']} of {r['cites']['extractive'][1]} citations")
    out.append(f"first claim holds a gold phrase: {sum(r['firsts'])} of {len(r['firsts'])} answers "
               f"({sum(r['firsts']) / max(len(r['firsts']), 1):.3f})")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--set", nargs=2, action="append", metavar=("QUESTIONS", "INDEX"), required=True)
    ap.add_argument("--show", type=int, default=0, help="print the first N answers")
    ap.add_argument("--topic-switch", action="store_true",
                    help="ask each question after an unrelated exchange, beside the same question asked alone")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a constant of rag/answer/extractive.py, opening.py or two_part.py for this run "
                         "(e.g. SEMANTIC_WEIGHT=1.0)")
    args = ap.parse_args()
    import rag.answer.extractive as extractive
    import rag.answer.opening as opening
    import rag.answer.two_part as two_part

    for pair in args.param:
        name, value = pair.split("=", 1)
        module = next((m for m in (extractive, opening, two_part) if hasattr(m, name)), None)
        if module is None:
            ap.error(f"none of rag/answer/extractive.py, opening.py, two_part.py has {name}")
        setattr(module, name, type(getattr(module, name))(json.loads(value)))
    settings = Settings()
    for questions, index in args.set:
        result = run_set(Path(questions), Path(index), settings, show=args.show, topic_switch=args.topic_switch)
        print(format_table(Path(questions).name, result))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
