"""How chosen answer units are shown: sentences of one passage run on as a paragraph, list
items and table rows as list lines, code in backticks, each claim followed by its citation
marker. ``shown_len`` is what a unit costs of the answer's budget, marks included, so the
extractive answer (rag/answer/extractive.py) never renders past it.
"""
from __future__ import annotations

from typing import Sequence

from rag.reading.units import Unit, cut_long, join_lines

__all__ = ["shown_len", "fit_unit", "render_units"]


def _marker(u: Unit) -> int:
    return len(f" [{u.n}]") if u.kind != "lead" and u.kind != "label" else 0


def shown_len(u: Unit) -> int:
    """Characters ``u`` takes in the answer: its text, its citation and its list mark."""
    if u.kind in ("item", "row", "label"):
        return len(u.text) + 3 + 2 * u.depth + _marker(u)  # "- ", nesting and the line break
    if u.kind == "code":
        return len(u.text) + 3 + _marker(u)  # backticks and the line break
    return len(u.text) + 1 + _marker(u)


def fit_unit(u: Unit, budget_chars: int) -> Unit:
    """``u`` cut at a clause end so that it fits ``budget_chars`` with its marks."""
    room = budget_chars - (shown_len(u) - len(u.text))
    return Unit(u.n, u.order, cut_long(u.text, max(room, 1)), u.kind, u.depth, u.title, u.outer)


def render_units(units: Sequence[Unit]) -> str:
    """Sentences of one passage run on as a paragraph; items and rows are list lines."""
    lines: list[str] = []
    paragraph: list[str] = []
    last_n = None
    depths: dict[int, int] = {}  # depth of the last item shown, per passage
    rows = {(u.n, u.order - 1) for u in units if u.kind == "row"}

    def at_table_header(u: Unit) -> bool:
        return (u.n, u.order) in rows and "|" in u.text

    def close() -> None:
        if paragraph:
            text = paragraph[0]
            for sentence in paragraph[1:]:
                text = join_lines(text, sentence)
            lines.append(text)
            paragraph.clear()

    for u in units:
        if u.n != last_n:
            close()
        last_n = u.n
        if u.kind in ("item", "row"):
            close()
            # Nesting is kept only under a shown parent: an orphan sub-item becomes top level.
            depth = min(u.depth, depths.get(u.n, -1) + 1)
            depths[u.n] = depth
            lines.append(f"{'  ' * depth}- {u.text} [{u.n}]")
        elif u.kind == "lead":
            close()
            lines.append(f"{'  ' * u.depth}- {u.text}" if at_table_header(u) or u.depth else u.text)
        elif u.kind == "label":  # the name of the nested list below it, shown as its parent item
            close()
            depths[u.n] = u.depth
            lines.append(f"{'  ' * u.depth}- {u.text}")
        elif u.kind == "code":
            close()
            lines.append(f"`{u.text}` [{u.n}]")
        else:
            paragraph.append(f"{u.text} [{u.n}]")
    close()
    return "\n".join(lines)
