"""The extractive answer's last two steps: which scored units fit the budget, and their order.

``rag.answer.extractive`` scores every candidate unit; this module takes them from there:

* ``take_within_budget``: the picked units first (the best unit, then each part's best for a
  two-part question), then, for each of ``floors``, the best units above its share of the best
  score while the answer is shorter than its length (the extractive answer gives two: the answer's
  floor, then a lower one while the answer is short); every list item comes with the line introducing its
  list; nothing passes ``budget_chars`` (the best unit alone cut at a clause end if it must);
* ``arrange``: the best unit first, under its lead, its sibling items after it; then each
  block (a list with the line introducing it, or a sentence) where its best unit ranks, in
  reading order inside the block (relevance before reading order: a neighbouring question of
  a note read whole no longer comes second because it comes first in the note); a sentence that
  points back ("这种方法…", "它…") is shown right after the sentence before it in its passage when that
  one is shown too, so it points at what it means.

Invariant: ``arrange`` returns the units ``take_within_budget`` chose, reordered; the caller
renders them and drops the last ones while joins and marks pass the budget.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rag.answer.rendering import fit_unit, shown_len
from rag.answer.two_part import goes_on_from
from rag.core.text import word_chars
from rag.answer.unit_lists import leads_above
from rag.reading.units import STATING, Unit

__all__ = ["Scored", "arrange", "take_within_budget"]

# Shorter texts are compared for repeats only whole (a short phrase inside a sentence is no repeat).
SAID_AGAIN_CHARS = 15


@dataclass(frozen=True)
class Scored:
    """Candidate units with their scores, best first by ``order``, and their list leads."""

    units: Sequence[Unit]
    score: np.ndarray  # the unit's own score
    order: list[int]  # indexes into units, best first (passage gap included)
    lead_of: Callable[[Unit], Unit | None]  # the line introducing a list item's list


def take_within_budget(scored: Scored, picks: Sequence[int], budget_chars: int,
                       floors: Sequence[tuple[float, float]]) -> list[Unit]:
    """The units shown, in the order taken: ``picks`` first, then for each (share of the best
    score, characters the answer may reach) in ``floors`` the best units above that share."""
    chosen: list[Unit] = []
    used = 0
    lead_of = scored.lead_of

    def cost(u: Unit) -> int:
        """Characters ``u`` adds, with the line introducing its list when that is not shown yet."""
        lead = lead_of(u)
        return shown_len(u) + (shown_len(lead) if lead is not None and lead not in chosen else 0)

    def take(u: Unit) -> None:  # an item comes with the line introducing its list
        nonlocal used
        lead = lead_of(u)
        if lead is not None and lead not in chosen:
            chosen.append(lead)
            used += shown_len(lead)
        chosen.append(u)
        used += shown_len(u)

    for i in dict.fromkeys(picks):
        u = scored.units[i]
        if said_again(u, chosen):
            continue
        if used + cost(u) <= budget_chars:
            take(u)
        elif not chosen:  # the best unit alone is too long: its first clauses
            chosen.append(fit_unit(u, budget_chars))
            used += shown_len(chosen[-1])
    best_score = float(scored.score.max())
    for share, up_to in floors:
        for i in scored.order:
            u = scored.units[i]
            if (u in chosen or scored.score[i] < share * best_score or used >= up_to or used + cost(u) > budget_chars
                    or said_again(u, chosen)):
                continue
            take(u)
    # A list item shown without the line that introduces it ("缺点：") loses its meaning.
    for u in list(chosen):
        lead = lead_of(u)
        if lead is not None and lead not in chosen and used + shown_len(lead) <= budget_chars:
            chosen.append(lead)
            used += shown_len(lead)
    # A sentence that a list's lead repeats ("…关注以下两个阶段：Load & Process，Split/Chunking" where
    # the lead "…关注以下两个阶段：" shows the two items) says nothing the list does not.
    leads = [u for u in chosen if u.kind not in STATING]
    return [u for u in chosen if u.kind not in STATING or not said_again(u, leads)]


def said_again(u: Unit, shown: Sequence[Unit]) -> bool:
    """Does a unit of ``shown`` say ``u`` already, or ``u`` all of it (one holds the other, both at
    least ``SAID_AGAIN_CHARS`` long)? Notes repeat a sentence with a word or two more ("注意：当ZeRO-DP与PP
    结合时，…" and "当ZeRO-DP与PP结合时，…"); the answer says it once."""
    own = word_chars(u.text)
    if len(own) < SAID_AGAIN_CHARS:
        return False
    return any(v is not u and len(other) >= SAID_AGAIN_CHARS and (own in other or other in own)
               for v in shown for other in (word_chars(v.text),))


def arrange(chosen: Sequence[Unit], scored: Scored) -> list[Unit]:
    """``chosen`` in the order shown: the best unit (not the lead a list item brings with it)
    under its lead, the other units under that lead after it, then the blocks by relevance."""
    lead_of = scored.lead_of
    best = next((u for u in chosen if u.kind in STATING), chosen[0])
    lead = lead_of(best)
    head = [lead, best] if lead in chosen else [best]
    position = {id(scored.units[i]): p for p, i in enumerate(scored.order)}
    last = len(scored.order)

    # A sentence that points back ("这种方法可以…") is shown right after the sentence before it when that
    # one is shown: elsewhere it points at whatever happens to precede it.
    at = {(u.n, u.order): u for u in chosen}

    def antecedent(u: Unit) -> Unit:
        before = at.get((u.n, u.order - 1))
        while before is not None and goes_on_from(u, before):
            u, before = before, at.get((before.n, before.order - 1))
        return u

    # Lines of code are shown in the order the note has them: a run of code lines is one block.
    every = {(u.n, u.order): u for u in scored.units}

    def code_run(u: Unit) -> Unit:
        while u.kind == "code" and (before := every.get((u.n, u.order - 1))) is not None and before.kind == "code":
            u = before
        return u

    def block(u: Unit) -> int:  # the block a unit is shown in: its list's first lead, its code run's first line, or itself
        u = code_run(antecedent(u))
        return id((leads_above(u, lead_of) or [u])[-1])

    block_rank: dict[int, int] = {}
    for u in chosen:
        b = block(u)
        block_rank[b] = min(block_rank.get(b, last), position.get(id(u), last))
    # The best unit's own continuation ("它直接影响…" after "批处理大小是指…") comes right after it.
    head += sorted((u for u in chosen if u not in head and antecedent(u) is best), key=lambda u: u.order)
    rest = sorted((u for u in chosen if u not in head), key=lambda u: (block_rank[block(u)], u.n, u.order))
    if lead in chosen:
        rest = [u for u in rest if lead_of(u) is lead] + [u for u in rest if lead_of(u) is not lead]
    return head + rest
