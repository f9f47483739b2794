"""How chosen answer units are shown: sentences of one passage run on as a paragraph, list
items and table rows as list lines, code in backticks, each claim followed by its citation
marker. ``shown_len`` is what a unit costs of the answer's budget, marks included, so the
extractive answer (rag/answer/extractive.py) never renders past it.
"""
from __future__ import annotations

from typing import Callable, Sequence

from rag.answer.unit_lists import leads_above
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


def render_units(units: Sequence[Unit], lead_of: Callable[[Unit], Unit | None] | None = None) -> str:
    """Sentences of one passage run on as a paragraph; items and rows are list lines. With
    ``lead_of``, an item shown right after another lead's list, but not under that lead ("Prompt-tuning
    由于其灵活性…" after "Prefix-tuning:" and its items), is shown as a line of its own, not as one more
    item of a list it does not belong to."""
    lines: list[str] = []
    lead_shown: Unit | None = None  # the lead whose list the last lines are
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
            if (lead_of is not None and lead_shown is not None and u.kind == "item"
                    and not any(above is lead_shown for above in leads_above(u, lead_of))):
                lead_shown = None
                lines.append(f"{u.text} [{u.n}]")  # out of the list above: it is not one of its items
                continue
            # Nesting is kept only under a shown parent: an orphan sub-item becomes top level.
            depth = min(u.depth, depths.get(u.n, -1) + 1)
            depths[u.n] = depth
            lines.append(f"{'  ' * depth}- {u.text} [{u.n}]")
        elif u.kind == "lead":
            close()
            lead_shown = u
            lines.append(f"{'  ' * u.depth}- {u.text}" if at_table_header(u) or u.depth else u.text)
        elif u.kind == "label":  # the name of the nested list below it, shown as its parent item
            close()
            lead_shown = u  # the items below it are its list's
            depths[u.n] = u.depth
            lines.append(f"{'  ' * u.depth}- {u.text}")
        elif u.kind == "code":
            close()
            lead_shown = None  # a line of code ends the list above
            lines.append(f"`{u.text}` [{u.n}]")
        else:
            lead_shown = None  # so does a sentence
            paragraph.append(f"{u.text} [{u.n}]")
    close()
    return "\n".join(lines)
