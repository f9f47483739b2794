"""The `rag` command: a thin shell over the library.

Every subcommand parses its arguments, builds Settings, calls one library function
and prints. Logs and progress go to stderr so that `--json` output stays clean.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from .settings import Settings

log = logging.getLogger("rag")

Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {}


def command(name: str):
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index", None):
        overrides["index_dir"] = Path(args.index)
    return Settings(**overrides)


def _progress(stage: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        print(f"\r{stage}: {done}/{total}", end=end, file=sys.stderr, flush=True)
    elif done >= total or done == 0:
        print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)


# --- index & retrieval commands ----------------------------------------------------
@command("index")
def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from .indexing import IndexLocked, build_index

    try:
        report = build_index(settings, progress=_progress, full=args.full)
    except IndexLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    for skipped in report.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    print(report.summary())
    return 0


def _read_history(raw: str | None) -> list:
    from .conversation import Message

    if not raw:
        return []
    return [Message.from_dict(d) for d in json.loads(raw)]


@command("retrieve")
def cmd_retrieve(args: argparse.Namespace, settings: Settings) -> int:
    from .conversation import Message
    from .retrieval import IndexNotFound, Retriever

    try:
        retriever = Retriever.from_settings(settings)
    except IndexNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    k = args.k or settings.top_k
    if args.batch:
        with open(args.batch, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                history = [Message.from_dict(d) for d in item.get("history") or []]
                result = retriever.retrieve(item["question"], history, k=k)
                print(json.dumps(_result_json(item.get("id"), result), ensure_ascii=False), flush=True)
        return 0
    if not args.question:
        print("error: give a question, or --batch FILE", file=sys.stderr)
        return 2
    result = retriever.retrieve(args.question, _read_history(args.history), k=k)
    if args.json:
        print(json.dumps(_result_json(None, result), ensure_ascii=False))
        return 0
    if not result.relevant:
        print("(the notes do not seem to cover this; closest passages follow)")
    for hit in result.hits:
        print(f"[{hit.rank}] {hit.score:.3f}  {hit.source}:{hit.line_start}-{hit.line_end}  {hit.heading}")
        print("    " + hit.text[:300].replace("\n", "\n    "))
    return 0


def _result_json(item_id, result) -> dict:
    return {
        "id": item_id,
        "relevant": result.relevant,
        "hits": [hit.to_dict() for hit in result.hits],
    }


@command("eval")
def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from .evaluation import evaluate_file, format_report
    from .retrieval import Retriever

    retriever = Retriever.from_settings(settings)
    report = evaluate_file(retriever, Path(args.questions), k=10)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    return 0


# --- answer commands (ask, chat, serve) ---------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Answer questions from your own notes.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--corpus", help="folder of notes (default: corpus/)")
        p.add_argument("--index", help="index folder (default: index/)")
        return p

    p = add("index", "build or update the index of the notes")
    p.add_argument("--full", action="store_true", help="re-embed everything")
    p = add("retrieve", "show the passages that answer a question")
    p.add_argument("question", nargs="?")
    p.add_argument("--k", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", help="JSONL file of {id, question, history}")
    p.add_argument("--history", help="JSON list of {role, content} turns")
    p = add("eval", "measure retrieval on a question set")
    p.add_argument("questions")
    p.add_argument("--json", action="store_true")
    # --- answer command arguments ---
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = settings_from(args)
    return COMMANDS[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
