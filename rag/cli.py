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
    except FileNotFoundError as exc:  # no corpus folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the index being built is never served; the next `rag index` cleans it up",
              file=sys.stderr)
        return 130
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
    from .retrieval import IndexMismatch, IndexNotFound, Retriever

    try:
        retriever = Retriever.from_settings(settings)
    except (IndexNotFound, IndexMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    k = args.k or settings.top_k
    if args.batch:
        with open(args.batch, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                try:
                    history = [Message.from_dict(d) for d in item.get("history") or []]
                    result = retriever.retrieve(item.get("question", ""), history, k=k)
                except ValueError as exc:  # one bad line must not lose the answers to the others
                    print(json.dumps({"id": item.get("id"), "relevant": False, "hits": [], "error": str(exc)},
                                     ensure_ascii=False), flush=True)
                    continue
                print(json.dumps(_result_json(item.get("id"), result), ensure_ascii=False), flush=True)
        return 0
    if not args.question:
        print("error: give a question, or --batch FILE", file=sys.stderr)
        return 2
    try:
        result = retriever.retrieve(args.question, _read_history(args.history), k=k)
    except ValueError as exc:  # a blank question or a malformed --history
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
def _answer_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    if getattr(args, "backend", None):
        settings = settings.model_copy(update={"llm_backend": args.backend})
    return settings


def _open_engine(settings: Settings):
    from .chat import ChatEngine
    from .retrieval import IndexMismatch, IndexNotFound

    try:
        return ChatEngine.from_settings(settings)
    except (IndexNotFound, IndexMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _answer_live(engine, question: str, history: list, on_event) -> "object":
    """Run one answer in a worker thread so that Ctrl-C reaches this (main) thread.

    The first Ctrl-C sets the cancel event and the answer ends at the next token with
    what was said so far; a second one raises KeyboardInterrupt to the caller.
    Raises QuestionError (before anything is printed) for a question that cannot be asked.
    """
    import queue
    import threading

    from .chat import DoneEvent

    cancel = threading.Event()
    events = engine.stream(question, history, cancel)  # validates the question here
    box: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            for event in events:
                box.put(event)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread to report
            box.put(exc)
        finally:
            box.put(None)

    threading.Thread(target=work, name="rag-answer", daemon=True).start()
    answer = None
    while True:
        try:
            item = box.get(timeout=0.1)
            if item is None:
                return answer
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, DoneEvent):
                answer = item.answer
            on_event(item)
        except queue.Empty:
            continue
        except KeyboardInterrupt:
            if cancel.is_set():
                raise
            cancel.set()
            print("\n(stopping…)", file=sys.stderr, flush=True)


def _print_event(event) -> None:
    from .chat import TokenEvent

    if isinstance(event, TokenEvent):
        print(event.text, end="", flush=True)


def _print_sources(answer) -> None:
    if not answer.sources:
        return
    print("\n\nSources:" if answer.mode != "not-in-notes" else "\n\nClosest passages:")
    for source in answer.sources:
        hit = source.hit
        mark = "*" if source.n in answer.cited else " "
        heading = f"  {hit.heading.replace(' > ', ' › ')}" if hit.heading else ""
        print(f"{mark}[{source.n}] {hit.source}, lines {hit.line_start}–{hit.line_end}{heading}")


@command("ask")
def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from .chat import QuestionError

    engine = _open_engine(_answer_settings(args, settings))
    if engine is None:
        return 2
    try:
        history = _read_history(args.history)
        answer = _answer_live(engine, args.question, history, (lambda e: None) if args.json else _print_event)
    except (QuestionError, ValueError) as exc:  # ValueError: a malformed --history
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        _print_sources(answer)
        print()
    return 0


@command("chat")
def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from .chat import QuestionError
    from .conversation import Message

    engine = _open_engine(_answer_settings(args, settings))
    if engine is None:
        return 2
    status = engine.status()
    index = f"{status.index.files} notes, {status.index.chunks} passages" if status.index else status.index_error
    print(f"notes: {index}\nanswers: {status.model or 'retrieval-only'} ({status.reason})", file=sys.stderr)
    print("Ask a question. Ctrl-C stops an answer; Ctrl-C at the prompt or Ctrl-D quits.", file=sys.stderr)
    history: list[Message] = []
    while True:
        try:
            question = input("\n> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not question.strip():
            continue
        try:
            answer = _answer_live(engine, question, history, _print_event)
        except QuestionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 130
        if answer.cancelled:
            print("\n(stopped)", file=sys.stderr)
        _print_sources(answer)
        history += [Message("user", question.strip()), Message("assistant", answer.text)]


@command("serve")
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """The web UI (ui/app.py). Refuses a non-loopback address without RAG_USERNAME/RAG_PASSWORD."""
    overrides = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.no_watch:
        overrides["watch_corpus"] = False
    settings = _answer_settings(args, settings.model_copy(update=overrides))
    from ui.bind import ServeError, check_bind

    try:
        check_bind(settings)  # before loading Gradio and the models: refuse at once
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ui.app import serve

    return serve(settings)




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
    backends = ["auto", "openai", "llamacpp", "none"]
    p = add("ask", "answer a question from the notes, with cited sources")
    p.add_argument("question")
    p.add_argument("--backend", choices=backends, help="LLM backend (default: settings, RAG_LLM_BACKEND)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--history", help="JSON list of {role, content} turns")
    p = add("chat", "talk with your notes in the terminal (follow-up questions work)")
    p.add_argument("--backend", choices=backends, help="LLM backend (default: settings, RAG_LLM_BACKEND)")
    p = add("serve", "chat with your notes in the browser (http://127.0.0.1:7860)")
    p.add_argument("--backend", choices=backends, help="LLM backend (default: settings, RAG_LLM_BACKEND)")
    p.add_argument("--host", help="address to listen on (default: settings, RAG_HOST=127.0.0.1); any other "
                                  "than loopback needs RAG_USERNAME and RAG_PASSWORD")
    p.add_argument("--port", type=int, help="port (default: settings, RAG_PORT=7860)")
    p.add_argument("--no-watch", action="store_true", help="do not re-index when files in the notes folder change")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = settings_from(args)
    from .errors import RagError

    try:
        return COMMANDS[args.command](args, settings)
    except RagError as exc:  # one clean line for what the user can fix (a server down, a bad setting)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
