"""Lists inside a passage, as the extractive answer (rag/answer/extractive.py) reads them.

* ``introducer``: the line that introduces a list item or table row: the lead ("缺点：")
  above its list, or the label ("原始模型") of the list it is nested in; never across a
  heading (a later subsection's items are not under an earlier subsection's lead);
* ``list_groups``: which items are siblings, the items of one list at one depth, so that
  once an answer takes one item of a list, the others of that list can follow it (a list in
  a note is usually the answer's enumeration: the reasons, the steps, the kinds).
"""
from __future__ import annotations

from typing import Sequence

from rag.reading.units import Unit

__all__ = ["introducer", "list_groups"]

_LIST_KINDS = ("item", "row")
_LIST_LINES = ("item", "row", "label", "lead")


def introducer(u: Unit, at: dict[tuple[int, int], Unit]) -> Unit | None:
    """The line that introduces list item or row ``u`` (``at``: every unit by (n, order))."""
    if u.kind not in _LIST_KINDS:
        return None
    before = at.get((u.n, u.order - 1))
    while before is not None and before.title == u.title:  # a heading between them ends the list
        if before.kind == "lead" and before.depth <= u.depth:
            return before
        if before.kind == "label" and before.depth < u.depth:
            return before
        if before.kind not in _LIST_LINES:
            return None
        before = at.get((before.n, before.order - 1))
    return None


def list_groups(units: Sequence[Unit]) -> dict[tuple[int, int], int]:
    """A list id for every item and row of ``units`` (reading order, passages one after the
    other): siblings share it. Items are siblings when only list lines (items, rows, labels,
    leads) deeper or as deep lie between them, under the same heading, with no lead or label
    at their own depth in between (that starts the next list)."""
    groups: dict[tuple[int, int], int] = {}
    for i, u in enumerate(units):
        if u.kind not in _LIST_KINDS:
            continue
        group = None
        for v in reversed(units[:i]):
            if v.n != u.n or v.title != u.title or v.kind not in _LIST_LINES or v.depth < u.depth:
                break
            if v.depth == u.depth:
                if v.kind in _LIST_KINDS:
                    group = groups[(v.n, v.order)]
                break
        groups[(u.n, u.order)] = len(groups) if group is None else group
    return groups
