"""The `rag` command: a thin shell over the library.

Every subcommand parses its arguments, builds Settings, calls one library function
and prints. Logs and progress go to stderr so that `--json` output stays clean.

Errors: everything a user can cause is a ``rag.core.errors.RagError``; ``main`` is the one
place that reports it — one line on stderr, ``error: …``, and the error's exit code. No
traceback unless ``--debug`` (or ``RAG_DEBUG=1``) asks for one.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from rag.core.errors import EXIT_ERROR, IndexUnavailable, InputError, RagError, one_line
from rag.core.settings import Settings, load_settings, with_overrides

log = logging.getLogger("rag")

Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {}
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C
DEBUG_ENV = "RAG_DEBUG"


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
    return load_settings(**overrides)


# --- index & retrieval commands ----------------------------------------------------
@command("index")
def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from rag.index.builder import build_index
    from rag.core.progress import ProgressLines

    try:
        # On a terminal one line rewritten in place; in a log a line every 10% or 30 s.
        report = build_index(settings, progress=ProgressLines(sys.stderr), full=args.full)
    except KeyboardInterrupt:
        print("\ninterrupted: the index being built is never served; the next `rag index` cleans it up",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    for skipped in report.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(report.summary())
    return 0


def _read_history(raw: str | None) -> list:
    """``--history`` as Messages; raises InputError for anything but a JSON list of turns."""
    from rag.batch import parse_request

    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"--history is not JSON ({exc.msg} at column {exc.colno})") from None
    return parse_request("-", history, "--history").history


def _scope_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="within", action="append", default=[], metavar="FOLDER_OR_FILE",
                   help="only notes in this folder or this note (repeatable)")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG",
                   help="only notes with this tag: front matter tags: or an inline #tag (repeatable)")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="only notes dated this day or later")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="only notes dated this day or earlier")


def _scope(args: argparse.Namespace):
    """The scope given with --in/--tag/--since/--until (rag/reading/scope.py), or None."""
    from rag.reading.scope import Scope

    scope = Scope.parse(args.within, args.tags, args.since, args.until)
    return scope or None


def _retriever(settings: Settings):
    """The Retriever of the current index; raises IndexUnavailable when there is none to use."""
    from rag.search.retrieval import IndexMismatch, Retriever

    try:
        return Retriever.from_settings(settings)
    except IndexMismatch as exc:
        raise IndexUnavailable(str(exc)) from exc


@command("retrieve")
def cmd_retrieve(args: argparse.Namespace, settings: Settings) -> int:
    if args.k is not None and args.k < 1:
        raise InputError(f"--k must be at least 1, not {args.k}")
    if not args.batch and not (args.question or "").strip():
        raise InputError("give a question, or --batch FILE")
    retriever = _retriever(settings)
    k = args.k or settings.top_k
    scope = _scope(args)
    if args.batch:
        from rag.batch import BatchLineError, open_batch, read_batch

        with open_batch(args.batch) as fh:
            for item in read_batch(fh):
                if isinstance(item, BatchLineError):  # one bad line must not lose the answers to the others
                    out = {"id": item.item_id, "line": item.line, "relevant": False, "hits": [], "error": str(item)}
                else:
                    try:
                        out = _result_json(item.id, retriever.retrieve(item.question, item.history, k=k,
                                                                       scope=item.scope or scope))
                    except (ValueError, InputError) as exc:
                        out = {"id": item.id, "line": item.line, "relevant": False, "hits": [], "error": str(exc)}
                print(json.dumps(out, ensure_ascii=False), flush=True)
        return 0
    try:
        result = retriever.retrieve(args.question, _read_history(args.history), k=k, scope=scope)
    except ValueError as exc:  # a blank question
        raise InputError(str(exc)) from None
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
    from rag.evaluation import evaluate_file, format_report

    if not Path(args.questions).is_file():
        raise InputError(f"question file not found: {args.questions}")
    retriever = _retriever(settings)
    report = evaluate_file(retriever, Path(args.questions), k=10, topic_switch=args.topic_switch)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    return 0


@command("status")
def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from rag.index.file_status import file_states, index_summary

    states = file_states(settings)
    summary = index_summary(settings, states)
    if args.json:
        out = summary.to_dict() | ({"files": [s.to_dict() for s in states]} if args.files else {})
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    if args.files:
        for s in states:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.indexed_at)) if s.indexed_at else "-"
            detail = f"{s.passages} passages, indexed {when}" if s.state == "indexed" else s.reason
            print(f"{s.state:<8} {s.source}: {detail}")
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.built_at)) if summary.built_at else "never"
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items())) or "no notes"
    print(f"index {summary.version or '(none)'} built {built}: {summary.notes} notes, {summary.passages} passages; "
          f"notes folder: {counts}")
    if summary.warning:
        print(f"warning: {summary.warning}", file=sys.stderr)
    return 0


# --- answer commands (ask, chat, serve) ---------------------------------------------
def _answer_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    if getattr(args, "backend", None):
        settings = settings.model_copy(update={"llm_backend": args.backend})
    return settings


def _open_engine(settings: Settings):
    """The chat engine over the current index; raises IndexUnavailable when there is none to use."""
    from rag.answer.chat import ChatEngine
    from rag.search.retrieval import IndexMismatch

    try:
        return ChatEngine.from_settings(settings)
    except IndexMismatch as exc:
        raise IndexUnavailable(str(exc)) from exc


def _answer_live(engine, question: str, history: list, on_event, scope=None) -> "object":
    """Run one answer in a worker thread so that Ctrl-C reaches this (main) thread.

    The first Ctrl-C sets the cancel event and the answer ends at the next token with
    what was said so far; a second one raises KeyboardInterrupt to the caller.
    Raises QuestionError (before anything is printed) for a question that cannot be asked.
    """
    import queue
    import threading

    from rag.answer.chat import DoneEvent

    cancel = threading.Event()
    events = engine.stream(question, history, cancel, scope)  # validates the question here
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
    from rag.answer.chat import TokenEvent

    if isinstance(event, TokenEvent):
        if event.replace:  # a terminal cannot take back what it printed: the replacement follows it
            print("\n", flush=True)
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


def _ask_batch(engine, path: str, scope=None) -> int:
    """One contract object per line of ``path`` ({id, question, history} and the scope keys
    in, tags, since, until; without them ``scope``), in order; a bad line becomes {"id",
    "line", "error"} and every other line is still answered."""
    from rag.batch import BatchLineError, open_batch, read_batch
    from rag.answer.chat import QuestionError

    with open_batch(path) as fh:
        for item in read_batch(fh):
            if isinstance(item, BatchLineError):  # unparsable: its line number stands for its id
                out = {"id": item.line if item.item_id is None else item.item_id, "line": item.line,
                       "error": str(item)}
            else:
                item_id = item.raw.get("id", item.line)
                try:
                    out = engine.ask(item.question, item.history, scope=item.scope or scope).to_contract(item_id)
                except (QuestionError, ValueError, InputError) as exc:
                    out = {"id": item_id, "line": item.line, "error": str(exc)}
            print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


@command("ask")
def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.answer.chat import QuestionError

    if not args.batch and args.question is None:
        print("error: give a question, or --batch FILE", file=sys.stderr)
        return 2
    engine = _open_engine(_answer_settings(args, settings))
    if engine is None:
        return 2
    scope = _scope(args)
    if args.batch:
        return _ask_batch(engine, args.batch, scope)
    try:
        history = _read_history(args.history)
        answer = _answer_live(engine, args.question, history, (lambda e: None) if args.json else _print_event,
                              scope)
    except (QuestionError, ValueError) as exc:  # ValueError: a malformed --history
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(answer.to_contract(None), ensure_ascii=False))
    else:
        _print_sources(answer)
        print()
    return 0


@command("chat")
def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from rag.answer.chat import QuestionError
    from rag.search.conversation import Message

    engine = _open_engine(_answer_settings(args, settings))
    if engine is None:
        return 2
    scope = _scope(args)
    status = engine.status()
    index = f"{status.index.files} notes, {status.index.chunks} passages" if status.index else status.index_error
    print(f"notes: {index}\n{status.line}\n(why: {status.reason})", file=sys.stderr)
    if scope:
        print(f"scope: {scope.describe()}", file=sys.stderr)
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
            answer = _answer_live(engine, question, history, _print_event, scope)
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
    if args.port is not None:
        overrides["port"] = args.port
    if args.no_watch:
        overrides["watch_corpus"] = False
    settings = _answer_settings(args, with_overrides(settings, **overrides))
    from ui.bind import check_listen

    # Before loading Gradio and the models, and before "Notes chat on http://…" is printed:
    # a refused login rule, a port in use or an address not of this machine fails at once.
    check_listen(settings)
    from ui.app import serve

    return serve(settings)




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Answer questions from your own notes.")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an error (also: {DEBUG_ENV}=1)")
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
    _scope_arguments(p)
    p = add("status", "what the index holds: every note indexed, pending, skipped or failed")
    p.add_argument("--files", action="store_true", help="one line per note, with its state")
    p.add_argument("--json", action="store_true")
    p = add("eval", "measure retrieval on a question set")
    p.add_argument("questions")
    p.add_argument("--json", action="store_true")
    p.add_argument("--topic-switch", action="store_true",
                   help="ask every question without history after an unrelated exchange (a new topic mid-chat)")
    # --- answer command arguments ---
    backends = ["auto", "openai", "llamacpp", "none"]
    p = add("ask", "answer a question from the notes, with cited sources")
    p.add_argument("question", nargs="?")
    p.add_argument("--batch", help="JSONL file of {id, question, history}: one JSON answer per line")
    p.add_argument("--backend", choices=backends, help="LLM backend (default: settings, RAG_LLM_BACKEND)")
    p.add_argument("--json", action="store_true",
                   help='print {"id", "mode", "answer", "citations", "relevant"} as JSON')
    p.add_argument("--history", help="JSON list of {role, content} turns")
    _scope_arguments(p)
    p = add("chat", "talk with your notes in the terminal (follow-up questions work)")
    p.add_argument("--backend", choices=backends, help="LLM backend (default: settings, RAG_LLM_BACKEND)")
    _scope_arguments(p)
    p = add("serve", "chat with your notes in the browser (http://127.0.0.1:7860)")
    p.add_argument("--backend", choices=backends, help="LLM backend (default: settings, RAG_LLM_BACKEND)")
    p.add_argument("--host", help="address to listen on (default: settings, RAG_HOST=127.0.0.1); any other "
                                  "than loopback needs RAG_USERNAME and RAG_PASSWORD")
    p.add_argument("--port", type=int, help="port (default: settings, RAG_PORT=7860)")
    p.add_argument("--no-watch", action="store_true", help="do not re-index when files in the notes folder change")
    return parser


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    """``--debug`` or RAG_DEBUG set to anything but empty/0/false/no."""
    if args is not None and getattr(args, "debug", False):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def report_error(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as one ``error: …`` line on stderr (after its traceback when debugging); its exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, RagError):
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        return exc.exit_code
    hint = "" if debug else f" (run with --debug or {DEBUG_ENV}=1 for the details)"
    print(f"error: unexpected {type(exc).__name__}: {one_line(exc)}{hint}", file=sys.stderr, flush=True)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = debug_requested(args)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = settings_from(args)
        return COMMANDS[args.command](args, settings)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `rag retrieve --batch … | head`: the reader left; nothing to report
        return 0
    except Exception as exc:  # noqa: BLE001 - the one handler: one line, never a traceback unless asked
        return report_error(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
