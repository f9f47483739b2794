"""Retrieval quality on both development sets: this project beside two baselines, in one run.

    python bench/retrieval_quality.py                      # both sets, all three systems
    python bench/retrieval_quality.py --sets md --only project --set chunk_min_chars=200

Sets (see ../shared/eval/README.md): ``seed`` = dev.jsonl over the sample notes (gold:
anchor phrases), ``md`` = dev-md.jsonl over LLMForEverybody (gold: file + line span).
Systems: ``dense500`` (fixed 500-character chunks, dense only), ``chatchat`` (the
Langchain-Chatchat-style hybrid in bench/baselines.py) and ``project`` (a fresh index
built with the current Settings, plus any ``--set name=value`` overrides).

Embeddings come through bench/embed_cache.py, so only passages never seen before are
embedded; a first run over both sets embeds about 4,000 passages (tens of minutes on a
2-core CPU), later runs take a minute or two.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from baselines import ChatchatHybrid, FixedDense  # noqa: E402
from embed_cache import CachedEmbedder  # noqa: E402

from rag.index.embedders.factory import make_embedder  # noqa: E402
from rag.evaluation import evaluate, topic_switch_variant  # noqa: E402
from rag.index.builder import build_index  # noqa: E402
from rag.search.retrieval import Retriever  # noqa: E402
from rag.core.settings import Settings  # noqa: E402

SHARED = ROOT.parent / "shared"
SETS = {
    "seed": (SHARED / "eval" / "dev.jsonl", ROOT / "corpus"),
    "md": (SHARED / "eval" / "dev-md.jsonl", SHARED / "corpora" / "LLMForEverybody"),
}
SYSTEMS = ("dense500", "chatchat", "project")
METRICS = ("recall@5", "mrr@10", "recall@3000ch")


def load_items(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        out[name] = json.loads(value) if value[:1] in "[{0123456789-tfn" and value not in ("none",) else value
    return out


def run_project(corpus: Path, embedder, items: list[dict], overrides: dict, keep_index: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = keep_index or Path(tmp)
        settings = Settings(corpus_dir=corpus, index_dir=index_dir, **overrides)
        t0 = time.perf_counter()
        report = build_index(settings, embedder=embedder, full=True)
        built = time.perf_counter() - t0
        retriever = Retriever(settings, embedder)
        result = evaluate(retriever, items, k=10)
        result["note"] = f"{report.chunks} passages, built in {built:.0f}s"
        # A new topic mid-conversation: each question without history, asked alone and after an
        # unrelated exchange (rag.evaluation.topic_switch_variant).
        switched = topic_switch_variant(items)
        result["topic_switch"] = {
            "n": len(switched),
            "alone": evaluate(retriever, [it for it in items if not it.get("history")], k=10)["overall"],
            "switched": evaluate(retriever, switched, k=10)["overall"]}
        return result


def table(set_name: str, reports: dict[str, dict]) -> str:
    names = list(reports)
    kinds = sorted({k for r in reports.values() for k in r["per_kind"]} - {"unanswerable"})
    lines = [f"\n### {set_name}: " + "; ".join(f"{n}: {r.get('note', '')}" for n, r in reports.items())]
    for metric in METRICS:
        lines.append(f"\n{metric:<16}" + "".join(f"{n:>11}" for n in names))
        for kind in kinds + ["OVERALL"]:
            cells = []
            for n in names:
                m = reports[n]["overall"] if kind == "OVERALL" else reports[n]["per_kind"].get(kind, {})
                cells.append(f"{m[metric]:>11.3f}" if metric in m else f"{'-':>11}")
            count = reports[names[0]]["per_kind"].get(kind, {}).get("n", "") if kind != "OVERALL" else ""
            lines.append(f"{kind + (f' ({count})' if count else ''):<16}" + "".join(cells))
    lines.append(f"\n{'declined':<16}" + "".join(f"{n:>11}" for n in names))
    unans = [reports[n]["per_kind"].get("unanswerable", {}) for n in names]
    lines.append(f"{'uncovered':<16}" + "".join(f"{u.get('abstained', 0):>11.3f}" for u in unans))
    lines.append(f"{'answerable':<16}" + "".join(f"{reports[n]['overall'].get('wrongly_abstained', 0):>11.3f}"
                                                  for n in names))
    lines.append(f"{'p50 ms':<16}" + "".join(f"{reports[n]['latency_ms'].get('p50', 0):>11.1f}" for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="seed,md")
    parser.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated subset of {SYSTEMS}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a Settings override for the project's index and retriever")
    parser.add_argument("--misses", action="store_true", help="list the project's misses")
    parser.add_argument("--json", help="write all reports to this file")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    systems = args.only.split(",")
    embedder = CachedEmbedder(make_embedder(Settings()))
    everything = {}
    for set_name in args.sets.split(","):
        questions, corpus = SETS[set_name]
        items = load_items(questions)
        reports: dict[str, dict] = {}
        for system in systems:
            t0 = time.perf_counter()
            if system == "project":
                reports[system] = run_project(corpus, embedder, items, overrides, None)
                continue
            baseline = FixedDense(corpus, embedder) if system == "dense500" else ChatchatHybrid(corpus, embedder)
            reports[system] = evaluate(baseline, items, k=10)
            reports[system]["note"] = f"{len(baseline.chunks)} passages, {time.perf_counter() - t0:.0f}s"
        print(table(f"{set_name} ({questions.name}, {len(items)} questions)", reports), flush=True)
        if "project" in reports:
            ts = reports["project"]["topic_switch"]
            print(f"topic switch ({ts['n']} questions), project asked alone / after an unrelated exchange: " + ", ".join(
                f"{m} {ts['alone'].get(m, 0):.3f} / {ts['switched'].get(m, 0):.3f}"
                for m in ("recall@5", "mrr@10", "recall@3000ch")), flush=True)
        if args.misses and "project" in reports:
            for f in reports["project"]["failures"]:
                print(f"  miss {f['id']} [{f['kind']}] rank={f['rank']} {f['question'][:50]} want {f['want']} "
                      f"got {f['got'][:3]}")
        everything[set_name] = reports
    print(f"\nembedder: {embedder.identity}; passages embedded this run: {embedder.misses}; overrides: {overrides}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
