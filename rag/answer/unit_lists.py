"""Lists inside a passage, as the extractive answer (rag/answer/extractive.py) reads them.

``introducer``: the line that introduces a list item or table row: the lead ("缺点：") above
its list, or the label ("原始模型") of the list it is nested in; never across a heading (a
later subsection's items are not under an earlier subsection's lead).

``leads_above``: the lines introducing a unit, nearest first, each the introducer of the one
before it, as the answer's order (rag/answer/selection.py) and rendering (rag/answer/rendering.py)
walk them.
"""
from __future__ import annotations

from typing import Callable

from rag.reading.units import Unit

__all__ = ["MAX_LIST_DEPTH", "introducer", "leads_above"]

# Lists nest a few levels at most: the walk up from an item to its list's first lead stops there.
MAX_LIST_DEPTH = 8

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


def leads_above(u: Unit, lead_of: Callable[[Unit], Unit | None]) -> list[Unit]:
    """The lines introducing ``u`` (``lead_of`` each one's introducer), nearest first, at most
    ``MAX_LIST_DEPTH``; [] for a unit no line introduces."""
    chain: list[Unit] = []
    while len(chain) < MAX_LIST_DEPTH:
        above = lead_of(chain[-1] if chain else u)
        if above is None:
            break
        chain.append(above)
    return chain
