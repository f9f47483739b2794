"""The scope picker above the chat: ask only in some folders or notes, with some tags, in a date range.

The picker's four fields are the scope: every question of the session is asked inside
what they hold when it is sent (so a follow-up keeps the scope until the fields change),
and each answer names it in a line under it. What a scope means is the library's
(``rag.reading.scope.Scope``); this module offers the choices (the indexed notes' folders and
tags, from the manifest through ``rag.index.file_status``), turns the fields into a ``Scope``,
and says which one is active.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

import gradio as gr

from rag.index.file_status import FileState
from rag.reading.scope import Scope, ScopeError

from . import render
from .i18n import error_text, lang_of

__all__ = ["ScopePicker", "ScopeView", "folder_choices", "picker_scope", "tag_choices"]

# One level of the folder tree: plain spaces, kept in the open list (CSS ``white-space: pre``) and
# dropped at the start of a chosen entry's chip, which shows the path alone.
INDENT = "    "
OFFERED_STATES = ("indexed", "pending")  # notes a question can find now, or after the running build


@dataclass
class ScopeView:
    """The picker's components: its fields (the handlers' inputs), the Clear button, and the
    line under it that names the active scope."""

    within: gr.Dropdown
    tags: gr.Dropdown
    since: gr.Textbox
    until: gr.Textbox
    clear: gr.Button
    active: gr.HTML

    @property
    def fields(self) -> list:
        return [self.within, self.tags, self.since, self.until]


def _tree_key(path: str, is_folder: bool) -> tuple:
    """A folder's notes, then its subfolders, each folder right after its parent (the Notes tab's order)."""
    parts = path.rstrip("/").split("/")
    return (tuple(parts), "") if is_folder else (tuple(parts[:-1]), parts[-1])


def folder_choices(sources: Iterable[str]) -> list[tuple[str, str]]:
    """(label, value) for every folder ("ml/", "ml/lora/") and note of ``sources``, as a tree:
    each entry indented by its depth, named by its whole path (the chosen ones show as chips)."""
    entries: dict[str, bool] = {}
    for source in sources:
        parts = source.split("/")
        for depth in range(1, len(parts)):
            entries["/".join(parts[:depth]) + "/"] = True
        entries[source] = False
    ordered = sorted(entries, key=lambda p: _tree_key(p, entries[p]))
    return [(INDENT * (p.rstrip("/").count("/")) + p, p) for p in ordered]


def tag_choices(states: Iterable[FileState]) -> list[tuple[str, str]]:
    """("#tag", "tag") for every tag the indexed notes carry, in alphabetical order."""
    tags = sorted({tag for st in states for tag in (st.tags or ())}, key=lambda tag: (tag.casefold(), tag))
    return [("#" + tag, tag) for tag in tags]


def _day(value: str | None, field: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ScopeError(f"--{field} {value!r} is not a date (YYYY-MM-DD)", key="scope_bad_date", value=value,
                         field=field) from None


def picker_scope(within: Sequence[str] | None = None, tags: Sequence[str] | None = None, since: str | None = "",
                 until: str | None = "") -> Scope | None:
    """The scope the picker's fields hold, or None when they hold none; a date that is not
    YYYY-MM-DD raises ScopeError (with the page's ``scope_bad_date`` key)."""
    scope = Scope.parse([w for w in (within or []) if isinstance(w, str)],
                        [tag for tag in (tags or []) if isinstance(tag, str)], _day(since, "since"), _day(until, "until"))
    return scope or None


class ScopePicker:
    def __init__(self, notes) -> None:
        self.notes = notes  # ui.notes_panel.NotesPanel: every note's state, tags and date (cached)
        self.view: ScopeView | None = None

    def choices(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(folders and notes, tags) to offer: those of the notes the index holds or will."""
        states = [st for st in self.notes.states() if st.state in OFFERED_STATES]
        return folder_choices(st.source for st in states), tag_choices(states)

    def layout(self, i18n: gr.I18n) -> ScopeView:
        """The picker's components, made inside the page's Blocks."""
        folders, tags = self.choices()
        with gr.Accordion(i18n("scope_title"), open=False, elem_id="scope"):
            # Folders and notes on a row of their own (whole paths), then tags, the dates and Clear.
            # Custom values are allowed: a chosen note deleted meanwhile then reads as "no note
            # matches", not as Gradio's "not in the list of choices" error.
            within = gr.Dropdown(choices=folders, value=[], multiselect=True, allow_custom_value=True,
                                 label=i18n("scope_folders"), elem_id="scope-in")
            with gr.Row(equal_height=False, elem_id="scope-row"):
                tag_pick = gr.Dropdown(choices=tags, value=[], multiselect=True, allow_custom_value=True,
                                       label=i18n("scope_tags"), scale=2, min_width=160, elem_id="scope-tags")
                since = gr.Textbox(label=i18n("scope_since"), placeholder=i18n("scope_date_hint"), lines=1,
                                   max_lines=1, scale=1, min_width=130, elem_id="scope-since")
                until = gr.Textbox(label=i18n("scope_until"), placeholder=i18n("scope_date_hint"), lines=1,
                                   max_lines=1, scale=1, min_width=130, elem_id="scope-until")
                clear = gr.Button(i18n("scope_clear"), size="sm", scale=0, min_width=90, elem_id="scope-clear")
        active = gr.HTML("", elem_id="scope-active", js_on_load=None)
        return ScopeView(within, tag_pick, since, until, clear, active)

    def bind(self, view: ScopeView) -> None:
        self.view = view

    # --- handlers (each returns {component: update}) -------------------------------------
    def describe(self, within, tags, since, until, request: gr.Request | None = None) -> dict:
        """The line under the picker: the active scope, or why a date is not one."""
        lang = lang_of(request)
        try:
            scope = picker_scope(within, tags, since, until)
        except ScopeError as exc:
            return {self.view.active: render.message_html(error_text(lang, exc), error=True)}
        return {self.view.active: render.scope_html(scope, lang, key="scope_active")}

    def clear(self) -> dict:
        v = self.view
        return {v.within: [], v.tags: [], v.since: "", v.until: "", v.active: ""}

    def refresh(self) -> dict:
        """New choices after the notes or the index changed; what is chosen stays chosen."""
        folders, tags = self.choices()
        return {self.view.within: gr.Dropdown(choices=folders), self.view.tags: gr.Dropdown(choices=tags)}
